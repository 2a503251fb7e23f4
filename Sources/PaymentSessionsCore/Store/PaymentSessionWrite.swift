public import Foundation

/// One write of a unit run by ``PaymentSessionStoring/perform(_:)``: each case is the
/// store method of the same name and arguments.
///
/// A unit is all or nothing on every backend. Later writes see the earlier ones:
///
/// ```swift
/// let id = PaymentSessionID.generate()
/// try await store.perform([
///     .create(NewPaymentSession(cartID: cart, providerID: "stripe", id: id)),
///     .select(id: id),
///     .updateAmount(id: id, amount: 4200, currencyCode: "eur", expectedUpdatedAt: nil),
/// ])
/// ```
public enum PaymentSessionWrite: Sendable, Hashable {
    /// ``PaymentSessionStoring/create(_:)``.
    case create(NewPaymentSession)
    /// ``PaymentSessionStoring/createOrUpdate(cartID:providerID:data:)``.
    case createOrUpdate(cartID: String, providerID: String, data: [String: JSONValue]?)
    /// ``PaymentSessionStoring/update(id:status:data:expectedUpdatedAt:)``.
    case update(id: String, status: PaymentSessionStatus?, data: [String: JSONValue]?, expectedUpdatedAt: Date?)
    /// ``PaymentSessionStoring/select(id:)``.
    case select(id: String)
    /// ``PaymentSessionStoring/deselect(cartID:)``.
    case deselect(cartID: String)
    /// ``PaymentSessionStoring/authorize(id:amount:currencyCode:data:expectedUpdatedAt:)``.
    case authorize(id: String, amount: Int, currencyCode: String?, data: [String: JSONValue]?, expectedUpdatedAt: Date?)
    /// ``PaymentSessionStoring/update(id:amount:currencyCode:expectedUpdatedAt:)``.
    case updateAmount(id: String, amount: Int, currencyCode: String?, expectedUpdatedAt: Date?)
    /// ``PaymentSessionStoring/update(id:isInitiated:)``.
    case setInitiated(id: String, isInitiated: Bool)
    /// ``PaymentSessionStoring/delete(id:force:)``.
    case delete(id: String, force: Bool)
    /// ``PaymentSessionStoring/deleteSessions(cartID:force:)``.
    case deleteSessions(cartID: String, force: Bool)
    /// A whole session stored as given, id and timestamps included (imports, migrations
    /// between backends); refused when it clashes with what the store holds.
    case insert(PaymentSession)
}

/// What one ``PaymentSessionWrite`` of a unit returned, in the unit's order.
public enum PaymentSessionWriteResult: Sendable, Hashable {
    /// The session written (or found, for a create retried with its idempotency key).
    case session(PaymentSession)
    /// `createOrUpdate`'s session and whether it was created.
    case createdOrUpdated(PaymentSession, created: Bool)
    /// `deselect`'s previously selected session, or `nil`.
    case deselected(PaymentSession?)
    /// `deleteSessions`'s count.
    case count(Int)
    /// `insert` stored its session.
    case inserted

    /// The session this result carries, if any.
    public var session: PaymentSession? {
        switch self {
        case .session(let session), .createdOrUpdated(let session, _): session
        case .deselected(let session): session
        case .count, .inserted: nil
        }
    }
}
