import Foundation

extension SessionRules {
    /// Refuses a feed position that cannot be one: negative, or past the last change.
    package static func checkFeedPosition(_ sequence: Int64, last: Int64, field: String) throws(PaymentSessionError) {
        guard sequence >= 0 else { throw .invalidInput(field: field, value: String(sequence), reason: "must be 0 or more") }
        guard sequence <= last else {
            throw .invalidInput(field: field, value: String(sequence), reason: "is past the last change, \(last)")
        }
    }

    /// Refuses to read after `sequence` when the changes that follow it were trimmed: a
    /// consumer must learn that it missed some, never skip them silently.
    package static func checkNotTrimmed(after sequence: Int64, first: Int64?, last: Int64) throws(PaymentSessionError) {
        let oldest = first ?? last + 1
        if sequence + 1 < oldest && sequence < last {
            throw .changesTrimmed(after: sequence, oldestAvailable: oldest)
        }
    }
}
