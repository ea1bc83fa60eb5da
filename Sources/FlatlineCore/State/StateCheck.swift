/// Consistency checks for decoded state: a file that decodes but does not fit together is
/// reported as corrupt instead of crashing later.
package enum StateCheck {
    package static func sameLength(_ counts: [Int], _ what: String, _ path: [any CodingKey]) throws {
        guard let first = counts.first, counts.allSatisfy({ $0 == first }) else {
            throw DecodingError.dataCorrupted(
                .init(codingPath: path, debugDescription: "\(what) state arrays differ in length: \(counts)")
            )
        }
    }

    package static func require(_ condition: Bool, _ message: String, _ path: [any CodingKey]) throws {
        if !condition { throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: message)) }
    }
}
