#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

// The C library's elementary functions, named so they do not clash with Swift's own.

@inline(__always) func _exp2(_ x: Double) -> Double { exp2(x) }
@inline(__always) func _exp(_ x: Double) -> Double { exp(x) }
@inline(__always) func _log(_ x: Double) -> Double { log(x) }
@inline(__always) func _sin(_ x: Double) -> Double { sin(x) }
@inline(__always) func _cos(_ x: Double) -> Double { cos(x) }
@inline(__always) func _erfc(_ x: Double) -> Double { erfc(x) }
@inline(__always) func _pow(_ x: Double, _ y: Double) -> Double { pow(x, y) }

extension Int64 {
    /// `value` rounded toward zero, saturated at the type's bounds; NaN is 0. For numbers from
    /// outside (files, bodies, configuration), where `Int64(value)` would trap.
    package init(saturating value: Double) {
        if value.isNaN {
            self = 0
        } else if value >= 9_223_372_036_854_775_807.0 {
            self = .max
        } else if value <= -9_223_372_036_854_775_808.0 {
            self = .min
        } else {
            self = Int64(value)
        }
    }
}

extension Int {
    /// `value` rounded toward zero, saturated at the type's bounds; NaN is 0.
    package init(saturating value: Double) {
        self = Int(truncatingIfNeeded: Int64(saturating: value))
    }
}
