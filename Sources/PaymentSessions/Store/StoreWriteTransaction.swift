public import Foundation
import LMDB

extension PaymentSessionStore {
    /// The store's write transaction, valid inside ``PaymentSessionStore/write(_:)`` on
    /// the thread that runs it. Everything done through it commits together or not at all.
    ///
    /// Each operation keeps the invariants: a record and every index that depends on it
    /// change together, at most one session per cart is selected, at most one session
    /// exists per (cart, provider), idempotency keys are unique, and status moves follow
    /// ``PaymentSessionStatus/canMove(to:)``. An operation that throws has changed
    /// nothing; the caller may go on with the transaction or rethrow to roll back all.
    ///
    /// ```swift
    /// let authorized = try store.write { tx in
    ///     let session = try tx.create(NewPaymentSession(cartID: cart, providerID: "stripe"))
    ///     _ = try tx.select(id: session.id)
    ///     return try tx.update(id: session.id, status: .authorized)
    /// }
    /// ```
    public final class WriteTransaction: ReadTransaction {
        var write: LMDB.WriteTransaction {
            // The initialiser only ever receives a write transaction.
            unsafeDowncast(transaction, to: LMDB.WriteTransaction.self)
        }
        let generator: PaymentSessionIDGenerator
        /// The last change this transaction appended to the feed (`nil` before the first).
        var lastAppendedSequence: Int64?

        init(transaction: LMDB.WriteTransaction, layout: StoreLayout, options: Options, generator: PaymentSessionIDGenerator) {
            self.generator = generator
            super.init(transaction: transaction, layout: layout, options: options)
        }

        // MARK: Create

        /// Creates a session.
        ///
        /// With an ``NewPaymentSession/idempotencyKey`` that exists already, returns that
        /// session unchanged when its cart and provider match, and throws
        /// ``PaymentSessionError/idempotencyConflict(key:existingID:existingCartID:existingProviderID:)``
        /// when they differ.
        ///
        /// - Throws: ``PaymentSessionError/duplicateSession(cartID:providerID:existingID:)``
        ///   when the cart has a session for this provider; ``PaymentSessionError/duplicateID(id:)``;
        ///   ``PaymentSessionError/invalidInput(field:value:reason:)`` for bad fields or a
        ///   session asked to be created both `canceled` and selected.
        @discardableResult
        public func create(_ new: NewPaymentSession) throws(PaymentSessionError) -> PaymentSession {
            try create(PreparedSession(new, maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator))
        }

        /// Creates a session whose checks and encoding were done before the transaction.
        ///
        /// `prepared` is consumed, so that the synchronous `create` returns the session it
        /// holds without a copy (the async one passes a copy: its closure may run again).
        func create(_ prepared: consuming PreparedSession) throws(PaymentSessionError) -> PaymentSession {
            let session = prepared.session
            // Read the selection to release before writing anything: an operation that
            // throws must leave nothing behind, and that read can fail (a corrupt index).
            let released = prepared.select ? try selectionToRelease(of: session.cartID, for: session.id) : nil
            // Checked once the create is known to be new (a retry returns its session even
            // when the cart's authorized selection would refuse a new one).
            let check = { () throws(PaymentSessionError) in
                if let released { try SessionRules.refuseOrphaning(released) }
            }
            switch try insertIndexed(session, dataJSON: prepared.dataJSON, kind: .created, beforeWriting: check) {
            case .written:
                break
            case .existing(let existingID):
                let key = session.idempotencyKey ?? ""
                let existing = try indexedRecord(id: existingID, index: "idempotency", key: key)
                guard existing.cartID == session.cartID, existing.providerID == session.providerID else {
                    throw .idempotencyConflict(
                        key: key, existingID: existing.id, existingCartID: existing.cartID,
                        existingProviderID: existing.providerID)
                }
                return existing
            case .reserved(let goneID):
                throw .sessionGone(key: session.idempotencyKey ?? "", id: goneID)
            }
            if prepared.select { try takeSelection(of: session.cartID, for: session.id, releasing: released) }
            return session
        }

        /// Medusa's "initialize payment sessions" step for one provider: creates the
        /// cart's session for `providerID`, or refreshes the existing one, replacing its
        /// `data` when `data` is given.
        ///
        /// A `canceled` session for the pair is final, so it is deleted and a new
        /// `pending` one takes its place.
        ///
        /// - Returns: The session, and whether it was created.
        @discardableResult
        public func createOrUpdate(
            cartID: String, providerID: String, data: [String: JSONValue]? = nil
        ) throws(PaymentSessionError) -> (session: PaymentSession, created: Bool) {
            guard let existing = try session(cartID: cartID, providerID: providerID) else {
                return (try create(NewPaymentSession(cartID: cartID, providerID: providerID, data: data ?? [:])), true)
            }
            if existing.status != .canceled {
                return (try update(id: existing.id, data: data), false)  // nil keeps the stored bytes as they are
            }
            // Check and encode the replacement before deleting the canceled session, so
            // that input refused here leaves the store as it was.
            let replacement = try PreparedSession(
                NewPaymentSession(cartID: cartID, providerID: providerID, data: data ?? [:]),
                maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds, generator: generator)
            try delete(id: existing.id)
            return (try create(replacement), true)
        }

        /// Stores a whole session as given, id and timestamps included (imports and
        /// migrations), indexing it and, when it is selected, making it the cart's selection.
        ///
        /// - Throws: ``PaymentSessionError/duplicateID(id:)``,
        ///   ``PaymentSessionError/duplicateSession(cartID:providerID:existingID:)``,
        ///   a conflict on its idempotency key or on the cart's selection (another session
        ///   is selected), ``PaymentSessionError/invalidInput(field:value:reason:)``.
        public func insert(_ session: PaymentSession) throws(PaymentSessionError) {
            let dataJSON = try SessionRules.validateInsert(session, maxDataBytes: options.maxDataBytes)
            if session.isSelected, let current = try indexedID(session.cartID, in: layout.selected) {
                throw SessionRules.selectionTaken(session, by: current)
            }
            let key = session.idempotencyKey ?? ""
            switch try insertIndexed(session, dataJSON: dataJSON, kind: .imported) {
            case .written:
                break
            case .existing(let existing):
                let owner = try record(id: existing)
                throw .idempotencyConflict(
                    key: key, existingID: existing, existingCartID: owner?.cartID ?? "",
                    existingProviderID: owner?.providerID ?? "")
            case .reserved(let goneID):
                throw .sessionGone(key: key, id: goneID)
            }
            if session.isSelected {
                try storageMapped { try write.put(session.id, forKey: session.cartID, in: layout.selected) }
            }
        }

        /// What ``insertIndexed(_:dataJSON:kind:beforeWriting:)`` found.
        enum IndexedInsert {
            /// The session was written.
            case written
            /// The idempotency key belongs to this live session; nothing was written.
            case existing(id: String)
            /// The key is reserved for this deleted session; nothing was written.
            case reserved(id: String)
        }

        /// Writes a new record with its `idempotency` and `cart_provider` entries, refusing
        /// duplicates. The caller has validated the session.
        ///
        /// Each put refuses an existing key itself (`MDB_NOOVERWRITE`: one B-tree descent
        /// that checks and inserts, instead of a lookup and a put). When a later one is
        /// refused, the entries already put are deleted again, so that nothing changes. An
        /// idempotency key reserved by a deleted session past the retention period is taken
        /// over. `beforeWriting` runs once the create is known to be new, before the record
        /// is written; when it throws, nothing is left behind. The feed gets a `kind` change.
        private func insertIndexed(
            _ session: PaymentSession, dataJSON: [UInt8], kind: PaymentSessionChange.Kind,
            beforeWriting check: () throws(PaymentSessionError) -> Void = {}
        ) throws(PaymentSessionError) -> IndexedInsert {
            let id = session.id
            let key = session.idempotencyKey
            // What the key's entry held before this create took it over (an expired
            // reservation, or the session's own reservation when it is restored by an
            // import): put back if the create is refused, so that a refusal changes nothing.
            var replaced: [UInt8]?
            if let key {
                let holder: IdempotencyEntry?? = try storageMapped {
                    try write.insert(id, forKey: key, in: layout.idempotency) { IdempotencyEntry($0) }
                }
                if let holder {
                    switch holder {
                    case nil:
                        throw .corruptRecord(key: "idempotency/\(key)", reason: "malformed idempotency entry")
                    case .session(let existing)?:
                        return .existing(id: existing)
                    case .reservation(let gone, let deleted)?:
                        // The deleted session itself may come back (an import of a backup).
                        if gone != id && !isExpired(reservedAt: deleted) { return .reserved(id: gone) }
                        replaced = IdempotencyEntry.reservation(id: gone, deletedMicroseconds: deleted).bytes
                        try storageMapped { try write.put(id, forKey: key, in: layout.idempotency) }
                    }
                }
            }
            do {
                try check()
                // Record and key in temporary buffers, each copied by liblmdb at its put. The
                // closures capture strings, not `session`: capturing it copies it whole on every
                // create, which is also why the record is encoded before the pair is known to be
                // free (a refused create encodes it for nothing).
                let cartID = session.cartID
                let providerID = session.providerID
                let status = session.status
                let outcome = RecordCodec.withRecord(session, dataJSON: dataJSON) { record in
                    StoreLayout.withCartProviderKey(cartID: cartID, providerID: providerID) { pairKey in
                        Result { () throws(PaymentSessionError) in
                            try insertRecord(record, id: id, pairKey: pairKey, cartID: cartID, providerID: providerID)
                            try appendChange(
                                kind: kind, before: nil, after: status, sessionID: id, cartID: cartID, record: record)
                        }
                    }
                }
                try outcome.get()
            } catch {
                if let key {
                    try storageMapped {
                        if let replaced {
                            try write.put(replaced, forKey: key, in: layout.idempotency)
                        } else {
                            try write.delete(key, in: layout.idempotency)
                        }
                    }
                }
                throw error
            }
            return .written
        }

        /// Whether a reservation made at `reservedAt` (microseconds) has outlived
        /// ``PaymentSessionStore/Options/idempotencyRetention``.
        func isExpired(reservedAt: Int64) -> Bool {
            SessionRules.reservationExpired(
                reservedAt: reservedAt, now: options.nowMicroseconds, retention: options.idempotencyRetention)
        }

        // MARK: Update

        /// Changes a session's status and/or data.
        ///
        /// - Parameters:
        ///   - status: The new status; the move must be allowed by
        ///     ``PaymentSessionStatus/canMove(to:)``. Canceling a selected session
        ///     deselects it. The same status again only touches `updated_at`, except
        ///     `authorized`: every move to it is an authorization for the session's own
        ///     amount (see ``authorize(id:amount:currencyCode:data:expectedUpdatedAt:)``), and
        ///     a repeat writes nothing.
        ///   - data: The provider's new data (replaces the old object). Refused once the
        ///     session is `canceled`.
        ///   - expectedUpdatedAt: Optimistic concurrency: when given and the session's
        ///     `updated_at` differs, throws ``PaymentSessionError/staleUpdate(id:expected:actual:)``.
        @discardableResult
        public func update(
            id: String, status: PaymentSessionStatus? = nil, data: [String: JSONValue]? = nil,
            expectedUpdatedAt: Date? = nil
        ) throws(PaymentSessionError) -> PaymentSession {
            guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
            let change = try SessionRules.update(
                session, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt,
                maxDataBytes: options.maxDataBytes, now: options.nowMicroseconds)
            return try store(change, replacing: session)
        }

        // MARK: Selection

        /// Makes `id` its cart's selected session, deselecting the previous one in the
        /// same transaction. Selecting the selected session changes nothing.
        ///
        /// - Throws: ``PaymentSessionError/notSelectable(id:status:)`` for a canceled session.
        @discardableResult
        public func select(id: String) throws(PaymentSessionError) -> PaymentSession {
            guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
            guard try SessionRules.needsSelecting(session) else { return session }
            let released = try selectionToRelease(of: session.cartID, for: id)
            if let released { try SessionRules.refuseOrphaning(released) }
            try takeSelection(of: session.cartID, for: id, releasing: released)
            let selected = SessionRules.selected(session, now: options.nowMicroseconds)
            try storeRecord(selected, dataJSON: nil, replacing: session)
            return selected
        }

        /// The cart's selected session other than `id`, which selecting `id` deselects;
        /// read before anything is written (a dangling entry throws `corruptRecord`).
        private func selectionToRelease(of cartID: String, for id: String) throws(PaymentSessionError) -> PaymentSession? {
            guard let currentID = try indexedID(cartID, in: layout.selected), currentID != id else { return nil }
            return try indexedRecord(id: currentID, index: "selected", key: cartID)
        }

        /// Deselects `released` (from ``selectionToRelease(of:for:)``) and points
        /// `selected` at `id`; the caller writes `id`'s record with `is_selected` set.
        private func takeSelection(of cartID: String, for id: String, releasing released: PaymentSession?) throws(PaymentSessionError) {
            if let released {
                try storeRecord(try SessionRules.release(released, now: options.nowMicroseconds), dataJSON: nil, replacing: released)
            }
            try storageMapped { try write.put(id, forKey: cartID, in: layout.selected) }
        }

        /// Clears the selection of `cartID`.
        ///
        /// - Returns: The session that was selected, now deselected, or `nil` when none was.
        @discardableResult
        public func deselect(cartID: String) throws(PaymentSessionError) -> PaymentSession? {
            try SessionValidation.validateIdentifier(cartID, field: "cart_id")
            guard let currentID = try indexedID(cartID, in: layout.selected) else { return nil }
            let current = try indexedRecord(id: currentID, index: "selected", key: cartID)
            let released = try SessionRules.release(current, now: options.nowMicroseconds)
            try storageMapped { try write.delete(cartID, in: layout.selected) }
            try storeRecord(released, dataJSON: nil, replacing: current)
            return released
        }

        // MARK: Delete

        /// Deletes a session and its index entries (and the cart's selection, if it was
        /// selected). Its idempotency key stays reserved for
        /// ``PaymentSessionStore/Options/idempotencyRetention``: a create retried with it gets
        /// ``PaymentSessionError/sessionGone(key:id:)``.
        ///
        /// - Parameter force: Delete an authorized session too. Without it, an authorized
        ///   session is refused with ``PaymentSessionError/sessionAuthorized(id:)``: its
        ///   hold must be voided (the session canceled) first, or it is orphaned.
        /// - Returns: The deleted session.
        @discardableResult
        public func delete(id: String, force: Bool = false) throws(PaymentSessionError) -> PaymentSession {
            guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
            try SessionRules.checkDeletable(session, force: force)
            try remove(session, kind: .deleted)
            return session
        }

        /// Removes `session` and its index entries, leaving a reservation for its key; the
        /// feed gets a `kind` change.
        private func remove(_ session: PaymentSession, kind: PaymentSessionChange.Kind) throws(PaymentSessionError) {
            let id = session.id
            let cartID = session.cartID
            let reservation = IdempotencyEntry.reservation(id: id, deletedMicroseconds: options.nowMicroseconds)
            try storageMapped {
                try write.delete(id, in: layout.sessions)
                let pairKey = StoreLayout.cartProviderKey(cartID: cartID, providerID: session.providerID)
                try write.delete(pairKey, in: layout.cartProvider)
                if let key = session.idempotencyKey { try write.put(reservation.bytes, forKey: key, in: layout.idempotency) }
            }
            if session.isSelected, try indexedID(cartID, in: layout.selected) == id {
                try storageMapped { try write.delete(cartID, in: layout.selected) }
            }
            try appendChange(kind: kind, before: session.status, after: nil, sessionID: id, cartID: cartID, record: nil)
        }

        /// Deletes every session of `cartID`, all or none.
        ///
        /// - Parameter force: Delete authorized sessions too; without it, a cart with an
        ///   authorized session is refused with ``PaymentSessionError/sessionAuthorized(id:)``
        ///   and nothing is deleted.
        /// - Returns: How many were deleted.
        @discardableResult
        public func deleteSessions(cartID: String, force: Bool = false) throws(PaymentSessionError) -> Int {
            let sessions = try sessions(cartID: cartID)
            try SessionRules.checkDeletable(sessions, force: force)
            for session in sessions { try remove(session, kind: .deleted) }
            return sessions.count
        }

        /// Deletes the sessions not updated since `date` (`updated_at < date`), optionally
        /// only those whose status is in `statuses`, drops idempotency reservations older
        /// than ``PaymentSessionStore/Options/idempotencyRetention``, and trims the change
        /// feed (``trimChanges()``).
        ///
        /// - Parameter includeAuthorized: Delete authorized sessions too. By default they
        ///   are kept (their holds would be orphaned) and counted in the report.
        @discardableResult
        public func purge(
            notUpdatedSince date: Date, statuses: Set<PaymentSessionStatus>? = nil, includeAuthorized: Bool = false
        ) throws(PaymentSessionError) -> PurgeReport {
            let cutoff = Timestamp.microseconds(date)
            var doomed: [PaymentSession] = []
            var kept = 0
            try forEachRecord { session in
                switch SessionRules.purgeVerdict(
                    session, cutoff: cutoff, statuses: statuses, includeAuthorized: includeAuthorized)
                {
                case .stays: break
                case .purged: doomed.append(session)
                case .keptAuthorized: kept += 1
                }
                return true
            }
            for session in doomed { try remove(session, kind: .purged) }
            let dropped = try dropExpiredReservations()
            return PurgeReport(
                purged: doomed.count, keptAuthorized: kept, reservationsDropped: dropped, changesTrimmed: try trimChanges())
        }

        /// Deletes the idempotency reservations past their retention.
        private func dropExpiredReservations() throws(PaymentSessionError) -> Int {
            var expired: [[UInt8]] = []
            try storageMapped {
                try transaction.forEach(in: layout.idempotency) { key, value in
                    if case .reservation(_, let at)? = IdempotencyEntry(value), isExpired(reservedAt: at) {
                        expired.append(Array(key))
                    }
                    return true
                }
            }
            try storageMapped { for key in expired { try write.delete(key, in: layout.idempotency) } }
            return expired.count
        }

        // MARK: Internals

        /// The `cart_provider` entry and the record of ``insertIndexed(_:dataJSON:)``, after its
        /// idempotency entry; undoes what it put when a later put is refused.
        private func insertRecord(
            _ record: UnsafeRawBufferPointer, id: String, pairKey: UnsafeRawBufferPointer, cartID: String,
            providerID: String
        ) throws(PaymentSessionError) {
            let pairHolder = try storageMapped {
                try write.insert(id, forKey: pairKey, in: layout.cartProvider) { String(decoding: $0, as: UTF8.self) }
            }
            if let pairHolder { throw .duplicateSession(cartID: cartID, providerID: providerID, existingID: pairHolder) }
            let taken = try storageMapped { try write.insert(record, forKey: id, in: layout.sessions) { _ in true } }
            if taken != nil {
                try storageMapped { try write.delete(pairKey, in: layout.cartProvider) }
                throw .duplicateID(id: id)
            }
        }

        /// Writes what a rule decided about `previous`: the record, and the cart's selection
        /// cleared when the session gave it up. A repeat writes nothing.
        func store(_ change: SessionChange, replacing previous: PaymentSession) throws(PaymentSessionError) -> PaymentSession {
            guard change.isWrite else { return change.session }
            if change.deselected {
                try storageMapped { try write.delete(change.session.cartID, in: layout.selected) }
            }
            try storeRecord(change.session, dataJSON: change.dataJSON, replacing: previous)
            return change.session
        }

        /// Rewrites `session`'s record (which was `previous`) and appends the change to the
        /// feed; its indexes are the caller's.
        func storeRecord(_ session: PaymentSession, dataJSON: [UInt8]?, replacing previous: PaymentSession) throws(PaymentSessionError) {
            // An unchanged `data` read from the record is copied as it is, not encoded again.
            let json = dataJSON ?? session.dataStorage.compactBytes
            let kind = PaymentSessionChange.kind(from: previous, to: session)
            let before = previous.status
            let outcome = RecordCodec.withRecord(session, dataJSON: json) { record in
                Result { () throws(PaymentSessionError) in
                    try storageMapped { try write.put(record, forKey: session.id, in: layout.sessions) }
                    try appendChange(
                        kind: kind, before: before, after: session.status, sessionID: session.id, cartID: session.cartID,
                        record: record)
                }
            }
            try outcome.get()
        }
    }
}
