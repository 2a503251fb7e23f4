public import Foundation
import LMDB

extension PaymentSessionStore {
    /// A consistent snapshot of the store, valid inside `PaymentSessionStore/read(_:)`
    /// (and, as the base of ``WriteTransaction``, inside `PaymentSessionStore/write(_:)`).
    ///
    /// Every query sees the same committed state, however many it makes:
    ///
    /// ```swift
    /// let (selected, all) = try store.read { tx in
    ///     (try tx.selectedSession(cartID: "cart_1"), try tx.sessions(cartID: "cart_1"))
    /// }
    /// ```
    ///
    /// Methods throw `PaymentSessionError` only.
    public class ReadTransaction {
        let transaction: LMDB.Transaction
        let layout: StoreLayout
        let options: Options

        init(transaction: LMDB.Transaction, layout: StoreLayout, options: Options) {
            self.transaction = transaction
            self.layout = layout
            self.options = options
        }

        /// The session with `id`, or `nil`.
        ///
        /// - Throws: `PaymentSessionError/invalidInput(field:value:reason:)` for an id not
        ///   of the `ps_` + ULID form; `PaymentSessionError/corruptRecord(key:reason:)`.
        public func session(id: String) throws(PaymentSessionError) -> PaymentSession? {
            try SessionValidation.validateIDUnlessFound(id) { () throws(PaymentSessionError) in try record(id: id) }
        }

        /// The session created with `idempotencyKey`, or `nil` (also when the key is only
        /// reserved, for a deleted session; see ``idempotencyReservation(key:)``).
        public func session(idempotencyKey: String) throws(PaymentSessionError) -> PaymentSession? {
            try SessionValidation.validateIdempotencyKey(idempotencyKey)
            guard case .session(let id)? = try idempotencyEntry(idempotencyKey) else { return nil }
            return try indexedRecord(id: id, index: "idempotency", key: idempotencyKey)
        }

        /// The deleted session that `key` is reserved for, and when it was deleted; `nil`
        /// when the key is free or belongs to a live session. A reservation past
        /// ``PaymentSessionStore/Options/idempotencyRetention`` is still returned until
        /// `purge` drops it (a create takes it over).
        public func idempotencyReservation(key: String) throws(PaymentSessionError) -> (id: String, deletedAt: Date)? {
            try SessionValidation.validateIdempotencyKey(key)
            guard case .reservation(let id, let at)? = try idempotencyEntry(key) else { return nil }
            return (id, Timestamp.date(microseconds: at))
        }

        /// The `idempotency` entry under `key`, decoded.
        func idempotencyEntry(_ key: String) throws(PaymentSessionError) -> IdempotencyEntry? {
            let entry: IdempotencyEntry?? = try storageMapped {
                try transaction.value(forKey: key, in: layout.idempotency) { IdempotencyEntry($0) }
            }
            guard let entry else { return nil }
            guard let entry else { throw .corruptRecord(key: "idempotency/\(key)", reason: "malformed idempotency entry") }
            return entry
        }

        /// The session of `cartID` for `providerID`, or `nil` (at most one exists).
        public func session(cartID: String, providerID: String) throws(PaymentSessionError) -> PaymentSession? {
            try SessionValidation.validateIdentifier(cartID, field: "cart_id")
            try SessionValidation.validateIdentifier(providerID, field: "provider_id")
            let key = StoreLayout.cartProviderKey(cartID: cartID, providerID: providerID)
            guard let id = try indexedID(key, in: layout.cartProvider) else { return nil }
            return try indexedRecord(id: id, index: "cart_provider", key: "\(cartID)/\(providerID)")
        }

        /// The sessions of `cartID` in creation (id) order.
        public func sessions(cartID: String) throws(PaymentSessionError) -> [PaymentSession] {
            try CartSessions.read(cartID: cartID) { prefix, body in
                try transaction.forEachIndexedValue(prefix: prefix, in: layout.cartProvider, values: layout.sessions, body)
            }
        }

        /// The selected session of `cartID`, or `nil`.
        public func selectedSession(cartID: String) throws(PaymentSessionError) -> PaymentSession? {
            try SessionValidation.validateIdentifier(cartID, field: "cart_id")
            guard let id = try indexedID(cartID, in: layout.selected) else { return nil }
            return try indexedRecord(id: id, index: "selected", key: cartID)
        }

        /// Up to `limit` sessions in id (creation) order, starting after `id` when given:
        /// pass the last id of one page to get the next.
        ///
        /// ```swift
        /// var page = try tx.sessions(limit: 100)
        /// while let last = page.last {
        ///     page = try tx.sessions(after: last.id, limit: 100)
        /// }
        /// ```
        public func sessions(after id: String? = nil, limit: Int = 100) throws(PaymentSessionError) -> [PaymentSession] {
            if let id { try SessionValidation.validateID(id) }
            guard limit > 0 else {
                if limit < 0 { throw .invalidInput(field: "limit", value: String(limit), reason: "must not be negative") }
                return []
            }
            var sessions: [PaymentSession] = []
            try forEachRecord(after: id, chunk: limit) { session in
                sessions.append(session)
                return sessions.count < limit
            }
            return sessions
        }

        /// The number of sessions, in O(1).
        public func count() throws(PaymentSessionError) -> Int {
            try storageMapped { try transaction.count(in: layout.sessions) }
        }

        // MARK: - Internals shared with writes, verification and export

        /// Decodes the record under `id`, or `nil` when absent.
        func record(id: String) throws(PaymentSessionError) -> PaymentSession? {
            try storageMapped {
                try transaction.value(forKey: id, in: layout.sessions) { buffer in
                    try RecordCodec.decode(id: id, buffer)
                }
            }
        }

        /// The record an index entry points to; a dangling entry is corruption.
        func indexedRecord(id: String, index: String, key: String) throws(PaymentSessionError) -> PaymentSession {
            guard PaymentSessionID.isValid(id), let session = try record(id: id) else {
                throw .corruptRecord(key: key, reason: "\(index) index points to missing session \(PaymentSessionError.quoted(id))")
            }
            return session
        }

        /// The session id stored under `key` in an index database.
        func indexedID(_ key: some LMDBBytes, in database: Database) throws(PaymentSessionError) -> String? {
            try storageMapped {
                try transaction.value(forKey: key, in: database) { String(decoding: $0, as: UTF8.self) }
            }
        }

        /// Visits records in id order after `id` until `body` returns `false`.
        ///
        /// Records are decoded a chunk at a time (at most `chunk`) while the map is pinned,
        /// and `body` runs after each chunk, outside it: a slow consumer (an export writing
        /// to a pipe) never holds back map growth.
        func forEachRecord(
            after id: String? = nil, chunk: Int = LMDB.Transaction.walkChunk,
            _ body: (PaymentSession) throws(PaymentSessionError) -> Bool
        ) throws(PaymentSessionError) {
            let chunk = max(1, min(chunk, LMDB.Transaction.walkChunk))
            var last = id
            while true {
                var decoded: [PaymentSession] = []
                decoded.reserveCapacity(chunk)
                let range = last.map { KeyRange(after: Array($0.utf8)) } ?? .all
                try storageMapped {
                    try transaction.forEach(in: layout.sessions, range: range) { key, value in
                        let id = String(decoding: key, as: UTF8.self)
                        decoded.append(try RecordCodec.decode(id: id, value))
                        return decoded.count < chunk
                    }
                }
                for session in decoded where try !body(session) { return }
                guard decoded.count == chunk, let next = decoded.last?.id else { return }
                last = next
            }
        }
    }
}

/// Runs `body`, passing ``PaymentSessionError`` through and turning an `LMDBError`
/// into ``PaymentSessionError/storage(_:)``. For bodies that throw nothing else (any other
/// error would become `.storage(.unknown)`); a caller's closure goes through
/// ``lmdbMapped(_:)`` instead.
@discardableResult
func storageMapped<R>(_ body: () throws -> R) throws(PaymentSessionError) -> R {
    do {
        return try body()
    } catch let error as PaymentSessionError {
        throw error
    } catch let error as LMDBError {
        throw .lmdb(error)
    } catch {
        throw .lmdb(LMDBError(.unknown(0), operation: String(describing: error)))
    }
}

/// Runs `body`, turning an `LMDBError` into ``PaymentSessionError/storage(_:)`` and
/// rethrowing every other error as it was thrown: a caller's own error (a
/// `CancellationError`, a domain error) must come back to the caller unchanged.
func lmdbMapped<R>(_ body: () throws -> R) throws -> R {
    do {
        return try body()
    } catch let error as LMDBError {
        throw PaymentSessionError.lmdb(error)
    }
}

extension PaymentSessionStore {
    /// What a purge did; see `PaymentSessionsCore/PurgeReport`.
    public typealias PurgeReport = PaymentSessionsCore.PurgeReport
    /// A cart's payment state; see `PaymentSessionsCore/CartPayment`.
    public typealias CartPayment = PaymentSessionsCore.CartPayment
}

extension PaymentSessionStore.ReadTransaction {
    /// The cart's payment state; see ``PaymentSessionStore/CartPayment``.
    public func cartPayment(cartID: String) throws(PaymentSessionError) -> PaymentSessionStore.CartPayment {
        PaymentSessionStore.CartPayment(cartID: cartID, sessions: try sessions(cartID: cartID))
    }
}
