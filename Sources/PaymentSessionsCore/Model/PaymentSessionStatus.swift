/// Where a payment session stands in its provider's flow, as the schema's `status` enum.
///
/// Moves follow ``canMove(to:)``:
///
/// | from | to |
/// |---|---|
/// | `pending` | `requires_more`, `authorized`, `error`, `canceled` |
/// | `requires_more` | `pending`, `authorized`, `error`, `canceled` |
/// | `error` | `pending`, `canceled` |
/// | `authorized` | `canceled` |
/// | `canceled` | nothing: final |
///
/// Setting the current status again is always allowed and only touches `updated_at`.
public enum PaymentSessionStatus: String, Sendable, Hashable, CaseIterable, Codable {
    /// The default: created, nothing decided yet.
    case pending
    /// The customer has more to do (3-D Secure, a redirect).
    case requiresMore = "requires_more"
    /// The provider authorized the payment; it will be promoted to a payment.
    case authorized
    /// The provider reported an error; the session may be retried.
    case error
    /// Given up; final. A canceled session can never be selected.
    case canceled

    /// Whether a session in this status may move to `next`.
    public func canMove(to next: PaymentSessionStatus) -> Bool {
        if next == self { return true }
        switch self {
        case .pending: return next != .pending
        case .requiresMore: return true
        case .error: return next == .pending || next == .canceled
        case .authorized: return next == .canceled
        case .canceled: return false
        }
    }

    /// The one-byte code of the stored record (stable: never renumber).
    package var storageCode: UInt8 {
        switch self {
        case .pending: 0
        case .requiresMore: 1
        case .authorized: 2
        case .error: 3
        case .canceled: 4
        }
    }

    package init?(storageCode: UInt8) {
        switch storageCode {
        case 0: self = .pending
        case 1: self = .requiresMore
        case 2: self = .authorized
        case 3: self = .error
        case 4: self = .canceled
        default: return nil
        }
    }
}
