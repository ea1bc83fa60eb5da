import Testing
@testable import FlatlineCore
@Test func smoke() { #expect(Timestamp(milliseconds: 0).description == "1970-01-01T00:00:00.000Z") }
