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
    /// ``PaymentSessionStoring/purge(notUpdatedSince:statuses:includeAuthorized:)``.
    case purge(notUpdatedSince: Date, statuses: Set<PaymentSessionStatus>?, includeAuthorized: Bool)
    /// ``PaymentSessionStoring/insert(_:)``: a whole session stored as given, id and
    /// timestamps included (imports, migrations between backends); refused when it clashes
    /// with what the store holds.
    case insert(PaymentSession)
}

extension PaymentSessionWrite {
    /// The store method this write is, as metrics and traces name the operation: the
    /// same label whether the method was called or the write was applied.
    package var operationName: String {
        switch self {
        case .create: "create(_:)"
        case .createOrUpdate: "createOrUpdate(cartID:providerID:data:)"
        case .update: "update(id:status:data:expectedUpdatedAt:)"
        case .select: "select(id:)"
        case .deselect: "deselect(cartID:)"
        case .authorize: "authorize(id:amount:currencyCode:data:expectedUpdatedAt:)"
        case .updateAmount: "update(id:amount:currencyCode:expectedUpdatedAt:)"
        case .setInitiated: "update(id:isInitiated:)"
        case .delete: "delete(id:force:)"
        case .deleteSessions: "deleteSessions(cartID:force:)"
        case .purge: "purge(notUpdatedSince:statuses:includeAuthorized:)"
        case .insert: "insert(_:)"
        }
    }

    /// The cart this write names before anything is read (`nil` for a write by session id,
    /// whose cart is known only once the session is read).
    package var namedCartID: String? {
        switch self {
        case .create(let new): new.cartID
        case .createOrUpdate(let cartID, _, _), .deselect(let cartID), .deleteSessions(let cartID, _): cartID
        case .insert(let session): session.cartID
        case .update, .select, .authorize, .updateAmount, .setInitiated, .delete, .purge: nil
        }
    }
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
    /// `purge`'s report.
    case purged(PurgeReport)
    /// `insert` stored its session.
    case inserted

    /// The session this result carries, if any.
    public var session: PaymentSession? {
        switch self {
        case .session(let session), .createdOrUpdated(let session, _): session
        case .deselected(let session): session
        case .count, .purged, .inserted: nil
        }
    }

    /// The session a write that always returns one returned; a result of another shape
    /// (a backend's bug) is a ``StorageFailure/Kind/misuse`` error, never a crash.
    package func writtenSession(by write: PaymentSessionWrite, of backend: StorageFailure.Backend) throws(PaymentSessionError) -> PaymentSession {
        if case .session(let session) = self { return session }
        throw mismatch(write, backend)
    }

    /// `createOrUpdate`'s session and whether it was created.
    package func createdOrUpdated(by write: PaymentSessionWrite, of backend: StorageFailure.Backend) throws(PaymentSessionError) -> (
        session: PaymentSession, created: Bool
    ) {
        if case .createdOrUpdated(let session, let created) = self { return (session, created) }
        throw mismatch(write, backend)
    }

    /// `deselect`'s previously selected session.
    package func deselected(by write: PaymentSessionWrite, of backend: StorageFailure.Backend) throws(PaymentSessionError) -> PaymentSession? {
        if case .deselected(let session) = self { return session }
        throw mismatch(write, backend)
    }

    /// `deleteSessions`'s count.
    package func count(by write: PaymentSessionWrite, of backend: StorageFailure.Backend) throws(PaymentSessionError) -> Int {
        if case .count(let count) = self { return count }
        throw mismatch(write, backend)
    }

    /// `purge`'s report.
    package func purgeReport(by write: PaymentSessionWrite, of backend: StorageFailure.Backend) throws(PaymentSessionError) -> PurgeReport {
        if case .purged(let report) = self { return report }
        throw mismatch(write, backend)
    }

    /// `insert`'s acknowledgement.
    package func inserted(by write: PaymentSessionWrite, of backend: StorageFailure.Backend) throws(PaymentSessionError) {
        if case .inserted = self { return }
        throw mismatch(write, backend)
    }

    private func mismatch(_ write: PaymentSessionWrite, _ backend: StorageFailure.Backend) -> PaymentSessionError {
        .storage(
            StorageFailure(
                backend: backend, kind: .misuse, operation: write.operationName,
                code: "write_result", message: "the backend answered \(write.operationName) with \(self)"))
    }
}
