public import Foundation

/// A writer that applies writes synchronously: the embedded store's
/// `PaymentSessionStore` and its write transactions. The write methods are defined once,
/// here, over ``apply(_:)``, with the meaning ``PaymentSessionStoring``'s have:
///
/// ```swift
/// let authorized = try store.write { tx in
///     let session = try tx.create(NewPaymentSession(cartID: cart, providerID: "stripe"))
///     try tx.select(id: session.id)
///     return try tx.authorize(id: session.id, amount: 4200, currencyCode: "eur")
/// }
/// ```
///
/// Errors are typed: every write throws only ``PaymentSessionError``.
public protocol SynchronousSessionWriting {
    /// Which engine applies the writes.
    var backend: StorageFailure.Backend { get }

    /// Applies one write: as its own transaction on a store, as a step of the
    /// transaction on a transaction (a step that throws has changed nothing).
    @discardableResult
    func apply(_ write: PaymentSessionWrite) throws(PaymentSessionError) -> PaymentSessionWriteResult
}

extension SynchronousSessionWriting {
    /// ``PaymentSessionStoring/create(_:)``, without `await`.
    @discardableResult
    public func create(_ new: NewPaymentSession) throws(PaymentSessionError) -> PaymentSession {
        let write = PaymentSessionWrite.create(new)
        return try apply(write).writtenSession(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/createOrUpdate(cartID:providerID:data:)``, without `await`.
    @discardableResult
    public func createOrUpdate(
        cartID: String, providerID: String, data: [String: JSONValue]? = nil
    ) throws(PaymentSessionError) -> (session: PaymentSession, created: Bool) {
        let write = PaymentSessionWrite.createOrUpdate(cartID: cartID, providerID: providerID, data: data)
        return try apply(write).createdOrUpdated(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/update(id:status:data:expectedUpdatedAt:)``, without `await`.
    @discardableResult
    public func update(
        id: String, status: PaymentSessionStatus? = nil, data: [String: JSONValue]? = nil, expectedUpdatedAt: Date? = nil
    ) throws(PaymentSessionError) -> PaymentSession {
        let write = PaymentSessionWrite.update(id: id, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt)
        return try apply(write).writtenSession(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/select(id:)``, without `await`.
    @discardableResult
    public func select(id: String) throws(PaymentSessionError) -> PaymentSession {
        let write = PaymentSessionWrite.select(id: id)
        return try apply(write).writtenSession(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/deselect(cartID:)``, without `await`.
    @discardableResult
    public func deselect(cartID: String) throws(PaymentSessionError) -> PaymentSession? {
        let write = PaymentSessionWrite.deselect(cartID: cartID)
        return try apply(write).deselected(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/authorize(id:amount:currencyCode:data:expectedUpdatedAt:)``, without `await`.
    @discardableResult
    public func authorize(
        id: String, amount: Int, currencyCode: String? = nil, data: [String: JSONValue]? = nil,
        expectedUpdatedAt: Date? = nil
    ) throws(PaymentSessionError) -> PaymentSession {
        let write = PaymentSessionWrite.authorize(
            id: id, amount: amount, currencyCode: currencyCode, data: data, expectedUpdatedAt: expectedUpdatedAt)
        return try apply(write).writtenSession(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/update(id:amount:currencyCode:expectedUpdatedAt:)``, without `await`.
    @discardableResult
    public func update(
        id: String, amount: Int, currencyCode: String? = nil, expectedUpdatedAt: Date? = nil
    ) throws(PaymentSessionError) -> PaymentSession {
        let write = PaymentSessionWrite.updateAmount(
            id: id, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt)
        return try apply(write).writtenSession(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/update(id:isInitiated:)``, without `await`.
    @discardableResult
    public func update(id: String, isInitiated: Bool) throws(PaymentSessionError) -> PaymentSession {
        let write = PaymentSessionWrite.setInitiated(id: id, isInitiated: isInitiated)
        return try apply(write).writtenSession(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/delete(id:force:)``, without `await`.
    @discardableResult
    public func delete(id: String, force: Bool = false) throws(PaymentSessionError) -> PaymentSession {
        let write = PaymentSessionWrite.delete(id: id, force: force)
        return try apply(write).writtenSession(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/deleteSessions(cartID:force:)``, without `await`.
    @discardableResult
    public func deleteSessions(cartID: String, force: Bool = false) throws(PaymentSessionError) -> Int {
        let write = PaymentSessionWrite.deleteSessions(cartID: cartID, force: force)
        return try apply(write).count(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/purge(notUpdatedSince:statuses:includeAuthorized:)``, without `await`.
    @discardableResult
    public func purge(
        notUpdatedSince date: Date, statuses: Set<PaymentSessionStatus>? = nil, includeAuthorized: Bool = false
    ) throws(PaymentSessionError) -> PurgeReport {
        let write = PaymentSessionWrite.purge(notUpdatedSince: date, statuses: statuses, includeAuthorized: includeAuthorized)
        return try apply(write).purgeReport(by: write, of: backend)
    }

    /// ``PaymentSessionStoring/insert(_:)``, without `await`.
    public func insert(_ session: PaymentSession) throws(PaymentSessionError) {
        let write = PaymentSessionWrite.insert(session)
        try apply(write).inserted(by: write, of: backend)
    }
}
