import Foundation

/// The payment session store a checkout codes against, whatever keeps the sessions.
///
/// Two backends conform: the embedded `PaymentSessionStore` on LMDB (the default:
/// nothing to run) and `PostgresPaymentSessionStore` on a PostgreSQL server (for
/// checkouts that outgrow one machine). Both keep the same guarantees, which one
/// conformance suite checks on both:
///
/// - At most one selected session per cart, and at most one session per (cart, provider).
/// - An idempotency key names one session; a create retried with it returns that session,
///   and the key stays reserved for a while after the session is deleted.
/// - Status moves follow ``PaymentSessionStatus/canMove(to:)``; only the cart's selected
///   session is authorized, for its own amount, and a retried authorization is a no-op.
/// - Every operation is all or nothing: one that throws has written nothing.
/// - `expectedUpdatedAt` makes an update conditional on nobody having changed the session.
///
/// ```swift
/// func startPayment(cart: String, provider: String, store: some PaymentSessionStoring) async throws -> PaymentSession {
///     let (session, _) = try await store.createOrUpdate(cartID: cart, providerID: provider, data: nil)
///     return try await store.select(id: session.id)
/// }
/// ```
///
/// Several writes that must happen together go through ``perform(_:)`` as one unit.
/// Errors are ``PaymentSessionError``s; ``PaymentSessionError/storage(_:)`` carries the
/// engine's failure as a ``StorageFailure``.
public protocol PaymentSessionStoring: Sendable {
    /// Which engine keeps the sessions.
    var backend: StorageFailure.Backend { get }

    // MARK: Reads

    /// The session with `id`, or `nil`.
    func session(id: String) async throws -> PaymentSession?
    /// The session created with `idempotencyKey`, or `nil` (also when the key's session was
    /// deleted).
    func session(idempotencyKey: String) async throws -> PaymentSession?
    /// The cart's session for `providerID`, or `nil`.
    func session(cartID: String, providerID: String) async throws -> PaymentSession?
    /// The cart's sessions in creation order.
    func sessions(cartID: String) async throws -> [PaymentSession]
    /// The cart's selected session, or `nil`.
    func selectedSession(cartID: String) async throws -> PaymentSession?
    /// Up to `limit` sessions in id (creation) order, starting after `id`.
    func sessions(after id: String?, limit: Int) async throws -> [PaymentSession]
    /// How many sessions the store holds.
    func count() async throws -> Int
    /// The cart's payment state in one consistent read.
    func cartPayment(cartID: String) async throws -> CartPayment
    /// Counts of sessions, carts, selections and statuses, in one consistent read.
    func sessionCounts() async throws -> SessionCounts

    // MARK: Writes

    /// Applies one write as its own unit: the one path of every write method
    /// (``create(_:)``, ``select(id:)``, ``authorize(id:amount:currencyCode:data:expectedUpdatedAt:)``
    /// and the others are defined once, over it, in the protocol's extension).
    ///
    /// ```swift
    /// let result = try await store.apply(.select(id: id))
    /// ```
    ///
    /// A backend answers each write with the result of its shape (see
    /// ``PaymentSessionWriteResult``); it may take a faster path for some writes, never
    /// other rules.
    @discardableResult
    func apply(_ write: PaymentSessionWrite) async throws -> PaymentSessionWriteResult
    /// Writes every session as one line of the schema's JSON form, in id order, from one
    /// consistent snapshot; returns how many. Every line reads back through
    /// ``importJSONLines(_:)``.
    func exportJSONLines(_ writeLine: (String) throws -> Void) async throws -> Int
    /// Imports ``exportJSONLines(_:)``'s lines all or nothing, keeping ids, timestamps,
    /// selections and idempotency keys; throws
    /// ``PaymentSessionError/importFailed(line:error:)`` naming the first bad line.
    func importJSONLines(_ text: String) async throws -> Int
    /// Runs `writes` in order as one unit: all of them take effect, or, when one throws,
    /// none does and its error is rethrown.
    @discardableResult
    func perform(_ writes: [PaymentSessionWrite]) async throws -> [PaymentSessionWriteResult]

    // MARK: Change feed

    /// Up to `limit` changes after `sequence` (0: from the start), in commit order (on
    /// PostgreSQL, commit order within a cart and transaction order across carts); every
    /// write appends one per session it changed, in its own transaction. Throws
    /// ``PaymentSessionError/changesTrimmed(after:oldestAvailable:)`` when some of them are
    /// no longer kept. ``followChanges(after:pageSize:)`` waits for new ones.
    func changes(after sequence: Int64, limit: Int) async throws -> [PaymentSessionChange]
    /// The feed's oldest kept and last written sequence numbers, and the named consumers.
    func changeFeedState() async throws -> ChangeFeedState
    /// The position `consumer` acknowledged, or `nil` for a consumer never heard of.
    func position(consumer: String) async throws -> Int64?
    /// Records, durably, that `consumer` handled every change up to `sequence`; a position
    /// only moves forward. Changes every named consumer acknowledged may be trimmed.
    func acknowledge(consumer: String, upTo sequence: Int64) async throws
    /// Forgets `consumer`, so that the feed no longer keeps changes for it; `false` when
    /// there was no such consumer.
    @discardableResult
    func removeConsumer(_ consumer: String) async throws -> Bool
    /// Deletes the changes every named consumer acknowledged and those past the retention
    /// period; returns how many.
    @discardableResult
    func trimChanges() async throws -> Int
    /// Returns once a change after `sequence` may exist, or after `timeout`: how followers
    /// wait without polling the feed itself.
    func waitForChanges(after sequence: Int64, timeout: Duration) async throws
    /// ``changes(after:limit:)`` for a follower that has just waited: a store may answer
    /// from what it already read for other followers in this process (the PostgreSQL store
    /// does, so that a thousand followers cost one read per batch of changes, not a thousand).
    func changesForFollower(after sequence: Int64, limit: Int) async throws -> [PaymentSessionChange]
}

extension PaymentSessionStoring {
    /// ``changes(after:limit:)``.
    public func changesForFollower(after sequence: Int64, limit: Int) async throws -> [PaymentSessionChange] {
        try await changes(after: sequence, limit: limit)
    }
}
