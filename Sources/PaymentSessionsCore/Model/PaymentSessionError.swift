public import Foundation

/// Everything that can go wrong in the store, each case carrying the failing input.
///
/// ``code`` groups the cases the way the command-line tool and HTTP services report
/// them (`not_found`, `invalid_input`, `invalid_transition`, `conflict`, `storage`).
/// When a store operation throws, nothing was written: its transaction rolled back.
public enum PaymentSessionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No session has this id.
    case sessionNotFound(id: String)
    /// No session has this idempotency key.
    case idempotencyKeyNotFound(key: String)
    /// The cart has no selected session.
    case noSelection(cartID: String)
    /// The store's location (an LMDB directory, a PostgreSQL database as
    /// `postgres://user@host:port/database`) holds no store, and opening was not allowed to
    /// create one.
    case storeNotFound(location: String)
    /// A field is missing, malformed or out of bounds. `value` is the offending input
    /// (shortened when long), when there is one to show.
    case invalidInput(field: String, value: String?, reason: String)
    /// The status table forbids this move (see ``PaymentSessionStatus/canMove(to:)``).
    case invalidTransition(id: String, from: PaymentSessionStatus, to: PaymentSessionStatus)
    /// The session is `canceled`: its data can no longer change.
    case sessionIsFinal(id: String)
    /// The session cannot be selected in its status (a `canceled` session never can).
    case notSelectable(id: String, status: PaymentSessionStatus)
    /// The cart already has a session for this provider.
    case duplicateSession(cartID: String, providerID: String, existingID: String)
    /// A session with this id exists already.
    case duplicateID(id: String)
    /// The idempotency key belongs to a session of another cart or provider.
    case idempotencyConflict(key: String, existingID: String, existingCartID: String, existingProviderID: String)
    /// The amount differs from the one the session holds: an authorized session keeps the
    /// amount it was authorized for, and an authorization must be for the session's amount.
    /// `expected` is the session's amount, `actual` the one asked for.
    case amountMismatch(id: String, expected: Int, actual: Int)
    /// Only the cart's selected session can be authorized (a hold on another would be
    /// orphaned from birth).
    case notSelected(id: String, cartID: String)
    /// The cart's selected session is authorized: selecting another (or none) would orphan
    /// its hold. Cancel it first.
    case authorizedSessionSelected(cartID: String, authorizedID: String)
    /// The session is authorized: deleting it would orphan its hold. Cancel it first, or
    /// delete with `force`.
    case sessionAuthorized(id: String)
    /// The idempotency key belonged to a session that was deleted or purged; the key stays
    /// reserved for `PaymentSessionStore/Options/idempotencyRetention`, so that a retry
    /// does not create a second session.
    case sessionGone(key: String, id: String)
    /// `expectedUpdatedAt` did not match: someone changed the session since the caller read it.
    case staleUpdate(id: String, expected: Date, actual: Date)
    /// A record or index entry could not be decoded. The store needs `verify` and repair.
    case corruptRecord(key: String, reason: String)
    /// The store was written in a format this version does not know.
    case unsupportedFormat(found: UInt32, supported: UInt32)
    /// The storage engine failed: the disk, LMDB, or the PostgreSQL server (see
    /// ``StorageFailure/kind``).
    case storage(StorageFailure)
    /// The change feed no longer keeps the changes after `after` (trimmed once every named
    /// consumer acknowledged them, or past the retention period). `oldestAvailable` is the
    /// first change still kept (the next one to be written, when none is): a consumer may
    /// resume after `oldestAvailable - 1`, knowing it missed what lies between.
    case changesTrimmed(after: Int64, oldestAvailable: Int64)
    /// Line `line` of an import failed with `error`; nothing was imported.
    indirect case importFailed(line: Int, error: PaymentSessionError)

    /// The kind of failure, stable for scripts and HTTP mapping.
    public enum Code: String, Sendable, CaseIterable {
        /// The session, key or store does not exist.
        case notFound = "not_found"
        /// The input is malformed.
        case invalidInput = "invalid_input"
        /// The status table or a final state forbids the change.
        case invalidTransition = "invalid_transition"
        /// The change clashes with existing data or a concurrent change.
        case conflict
        /// The disk, the storage engine or the stored bytes failed.
        case storage
        /// The write may or may not have been applied: the connection to the server was lost
        /// after its commit was sent (see ``StorageFailure/Kind/outcomeUnknown``). Unlike
        /// every other code, it does not mean "nothing was written".
        case outcomeUnknown = "outcome_unknown"
    }

    /// The kind of failure.
    public var code: Code {
        switch self {
        case .sessionNotFound, .idempotencyKeyNotFound, .noSelection, .storeNotFound, .sessionGone, .changesTrimmed: .notFound
        case .invalidInput: .invalidInput
        case .invalidTransition, .sessionIsFinal, .notSelectable: .invalidTransition
        case .duplicateSession, .duplicateID, .idempotencyConflict, .staleUpdate, .amountMismatch, .notSelected,
            .authorizedSessionSelected, .sessionAuthorized:
            .conflict
        case .storage(let failure) where failure.kind == .outcomeUnknown: .outcomeUnknown
        case .corruptRecord, .unsupportedFormat, .storage: .storage
        case .importFailed(_, let error): error.code
        }
    }

    /// A readable explanation naming the input.
    public var description: String {
        switch self {
        case .sessionNotFound(let id): "no payment session with id \(id)"
        case .idempotencyKeyNotFound(let key): "no payment session with idempotency key \(key)"
        case .noSelection(let cart): "cart \(cart) has no selected payment session"
        case .storeNotFound(let location): "no payment session store at \(location)"
        case .invalidInput(let field, let value?, let reason): "invalid \(field) \(Self.quoted(value)): \(reason)"
        case .invalidInput(let field, nil, let reason): "invalid \(field): \(reason)"
        case .invalidTransition(let id, let from, let to):
            "payment session \(id) cannot move from \(from.rawValue) to \(to.rawValue)"
        case .sessionIsFinal(let id): "payment session \(id) is canceled; it can no longer change"
        case .notSelectable(let id, let status): "payment session \(id) is \(status.rawValue) and cannot be selected"
        case .duplicateSession(let cart, let provider, let existing):
            "cart \(cart) already has a session for provider \(provider): \(existing)"
        case .duplicateID(let id): "a payment session with id \(id) already exists"
        case .idempotencyConflict(let key, let id, let cart, let provider):
            "idempotency key \(Self.quoted(key)) belongs to session \(id) of cart \(cart) and provider \(provider)"
        case .amountMismatch(let id, let expected, let actual):
            "payment session \(id) is for amount \(expected), not \(actual)"
        case .notSelected(let id, let cart):
            "payment session \(id) is not the selected session of cart \(cart); only the selected one can be authorized"
        case .authorizedSessionSelected(let cart, let authorized):
            "cart \(cart) has an authorized payment session, \(authorized); cancel it before choosing another"
        case .sessionAuthorized(let id):
            "payment session \(id) is authorized; cancel it first (or force the delete) so that its hold is not orphaned"
        case .sessionGone(let key, let id):
            "idempotency key \(Self.quoted(key)) belonged to payment session \(id), which was deleted"
        case .staleUpdate(let id, let expected, let actual):
            "payment session \(id) was updated at \(Timestamp.rfc3339(actual)), not \(Timestamp.rfc3339(expected))"
        case .corruptRecord(let key, let reason): "corrupt record \(Self.quoted(key)): \(reason)"
        case .unsupportedFormat(let found, let supported):
            "store format version \(found) is not supported (this version reads up to \(supported))"
        case .storage(let failure): "storage error: \(failure)"
        case .importFailed(let line, let error): "line \(line): \(error)"
        case .changesTrimmed(let after, let oldest):
            "the changes after \(after) are no longer kept; the oldest kept is \(oldest) (resume after \(oldest - 1))"
        }
    }

    package static func quoted(_ value: String) -> String {
        let shortened = value.utf8.count > 80 ? String(value.prefix(77)) + "..." : value
        return "\"" + shortened + "\""
    }
}
