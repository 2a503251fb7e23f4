import Foundation
import LMDB

extension PaymentSessionStore {
    /// The store's write transaction, valid inside `PaymentSessionStore/write(_:)` on
    /// the thread that runs it. Everything done through it commits together or not at all.
    ///
    /// Each operation keeps the invariants: a record and every index that depends on it
    /// change together, at most one session per cart is selected, at most one session
    /// exists per (cart, provider), idempotency keys are unique, and status moves follow
    /// `PaymentSessionStatus/canMove(to:)`. An operation that throws has changed
    /// nothing; the caller may go on with the transaction or rethrow to roll back all.
    ///
    /// ```swift
    /// let authorized = try store.write { tx in
    ///     let session = try tx.create(NewPaymentSession(cartID: cart, providerID: "stripe"))
    ///     _ = try tx.select(id: session.id)
    ///     return try tx.update(id: session.id, status: .authorized)
    /// }
    /// ```
    public final class WriteTransaction: ReadTransaction, SynchronousSessionWriting {
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

        // MARK: Apply

        /// Applies one write as a step of this transaction: reads what the rules decide
        /// on, asks the backend-neutral `SessionRules`, writes the records and indexes.
        /// The write methods (``create(_:)``, ``select(id:)``, and the others) come from
        /// `SynchronousSessionWriting` and land here.
        @discardableResult
        public func apply(_ write: PaymentSessionWrite) throws(PaymentSessionError) -> PaymentSessionWriteResult {
            let now = options.nowMicroseconds
            switch write {
            case .create(let new):
                return .session(
                    try insertNew(PreparedSession(new, maxDataBytes: options.maxDataBytes, now: now, generator: generator)))
            case .createOrUpdate(let cartID, let providerID, let data):
                let (session, created) = try createOrRefresh(cartID: cartID, providerID: providerID, data: data)
                return .createdOrUpdated(session, created: created)
            case .update(let id, let status, let data, let expectedUpdatedAt):
                return .session(
                    try rewrite(id) { session throws(PaymentSessionError) in
                        try SessionRules.update(
                            session, status: status, data: data, expectedUpdatedAt: expectedUpdatedAt,
                            maxDataBytes: options.maxDataBytes, now: now)
                    })
            case .select(let id):
                return .session(try makeSelected(id: id))
            case .deselect(let cartID):
                return .deselected(try clearSelection(cartID: cartID))
            case .authorize(let id, let amount, let currencyCode, let data, let expectedUpdatedAt):
                try SessionRules.validateAuthorization(amount: amount, currencyCode: currencyCode)
                return .session(
                    try rewrite(id) { session throws(PaymentSessionError) in
                        try SessionRules.authorize(
                            session, amount: amount, currencyCode: currencyCode, data: data,
                            expectedUpdatedAt: expectedUpdatedAt, maxDataBytes: options.maxDataBytes, now: now)
                    })
            case .updateAmount(let id, let amount, let currencyCode, let expectedUpdatedAt):
                return .session(
                    try rewrite(id) { session throws(PaymentSessionError) in
                        try SessionRules.updateAmount(
                            session, amount: amount, currencyCode: currencyCode, expectedUpdatedAt: expectedUpdatedAt,
                            now: now)
                    })
            case .setInitiated(let id, let isInitiated):
                return .session(
                    try rewrite(id) { session throws(PaymentSessionError) in
                        try SessionRules.updateInitiated(session, isInitiated: isInitiated, now: now)
                    })
            case .delete(let id, let force):
                guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
                try SessionRules.checkDeletable(session, force: force)
                try remove(session, kind: .deleted)
                return .session(session)
            case .deleteSessions(let cartID, let force):
                let sessions = try sessions(cartID: cartID)
                try SessionRules.checkDeletable(sessions, force: force)
                for session in sessions { try remove(session, kind: .deleted) }
                return .count(sessions.count)
            case .purge(let date, let statuses, let includeAuthorized):
                return .purged(try purgeSessions(notUpdatedSince: date, statuses: statuses, includeAuthorized: includeAuthorized))
            case .insert(let session):
                try insertWhole(session)
                return .inserted
            }
        }

        /// `.lmdb`.
        public var backend: StorageFailure.Backend { .lmdb }

        // MARK: Create

        /// Creates a session whose checks and encoding were done before the transaction.
        ///
        /// `prepared` is consumed, so that the synchronous `create` returns the session it
        /// holds without a copy (the async one passes a copy: its closure may run again).
        func insertNew(_ prepared: consuming PreparedSession) throws(PaymentSessionError) -> PaymentSession {
            let session = prepared.session
            // Read the selection to release before writing anything: an operation that
            // throws must leave nothing behind, and that read can fail (a corrupt index).
            let current = prepared.select ? try selectionToRelease(of: session.cartID, for: session.id) : nil
            // Decided once the create is known to be new (a retry returns its session even
            // when the cart's authorized selection would refuse a new one).
            let selects = prepared.select
            let now = options.nowMicroseconds
            var selection: SessionRules.SelectionSwitch?
            let check = { () throws(PaymentSessionError) in
                if selects { selection = try SessionRules.switchSelection(to: session, from: current, now: now) }
            }
            switch try insertIndexed(session, dataJSON: prepared.dataJSON, kind: .created, beforeWriting: check) {
            case .written:
                break
            case .existing(let existingID):
                let key = session.idempotencyKey ?? ""
                return try SessionRules.retriedCreate(
                    session, keyHeldBy: indexedRecord(id: existingID, index: "idempotency", key: key))
            case .reserved(let goneID):
                throw .sessionGone(key: session.idempotencyKey ?? "", id: goneID)
            }
            if let selection { try takeSelection(of: session.cartID, for: session.id, releasing: selection.released) }
            return session
        }

        /// `createOrUpdate`: the pair's session refreshed, or a new one (in place of a
        /// canceled one, which is final).
        private func createOrRefresh(
            cartID: String, providerID: String, data: [String: JSONValue]?
        ) throws(PaymentSessionError) -> (session: PaymentSession, created: Bool) {
            let now = options.nowMicroseconds
            let replacement = { () throws(PaymentSessionError) in
                try PreparedSession(
                    NewPaymentSession(cartID: cartID, providerID: providerID, data: data ?? [:]),
                    maxDataBytes: self.options.maxDataBytes, now: now, generator: self.generator)
            }
            let existing = try session(cartID: cartID, providerID: providerID)
            switch try SessionRules.createOrUpdate(
                existing: existing, data: data, maxDataBytes: options.maxDataBytes, now: now)
            {
            case .create:
                return (try insertNew(replacement()), true)
            case .refresh(let change, let previous):
                return (try store(change, replacing: previous), false)
            case .replace(let canceled):
                // The replacement is checked before the canceled session goes, so that
                // refused input leaves the store as it was.
                let prepared = try replacement()
                try remove(canceled, kind: .deleted)
                return (try insertNew(prepared), true)
            }
        }

        /// `insert`: a whole session as given, selected when it says so.
        private func insertWhole(_ session: PaymentSession) throws(PaymentSessionError) {
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

        /// Writes what `rule` decides about session `id`.
        private func rewrite(
            _ id: String, _ rule: (PaymentSession) throws(PaymentSessionError) -> SessionChange
        ) throws(PaymentSessionError) -> PaymentSession {
            guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
            return try store(rule(session), replacing: session)
        }

        // MARK: Selection

        /// `select`: the previous selection released first, in the same transaction.
        private func makeSelected(id: String) throws(PaymentSessionError) -> PaymentSession {
            guard let session = try session(id: id) else { throw .sessionNotFound(id: id) }
            guard try SessionRules.needsSelecting(session) else { return session }
            let step = try SessionRules.switchSelection(
                to: session, from: try selectionToRelease(of: session.cartID, for: id), now: options.nowMicroseconds)
            try takeSelection(of: session.cartID, for: id, releasing: step.released)
            try storeRecord(step.selected, dataJSON: nil, replacing: session)
            return step.selected
        }

        /// The cart's selected session other than `id`, which selecting `id` deselects;
        /// read before anything is written (a dangling entry throws `corruptRecord`).
        private func selectionToRelease(of cartID: String, for id: String) throws(PaymentSessionError) -> PaymentSession? {
            guard let currentID = try indexedID(cartID, in: layout.selected), currentID != id else { return nil }
            return try indexedRecord(id: currentID, index: "selected", key: cartID)
        }

        /// Writes the previous selection's release and points `selected` at `id`; the
        /// caller writes `id`'s record with `is_selected` set.
        private func takeSelection(
            of cartID: String, for id: String, releasing released: (before: PaymentSession, after: PaymentSession)?
        ) throws(PaymentSessionError) {
            if let released { try storeRecord(released.after, dataJSON: nil, replacing: released.before) }
            try storageMapped { try write.put(id, forKey: cartID, in: layout.selected) }
        }

        /// `deselect`: the cart's selected session released, or `nil`.
        private func clearSelection(cartID: String) throws(PaymentSessionError) -> PaymentSession? {
            try SessionValidation.validateIdentifier(cartID, field: "cart_id")
            guard let currentID = try indexedID(cartID, in: layout.selected) else { return nil }
            let current = try indexedRecord(id: currentID, index: "selected", key: cartID)
            let released = try SessionRules.release(current, now: options.nowMicroseconds)
            try storageMapped { try write.delete(cartID, in: layout.selected) }
            try storeRecord(released, dataJSON: nil, replacing: current)
            return released
        }

        // MARK: Delete

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

        /// `purge`: the verdicts over every record, then the removals, the expired
        /// reservations and the feed's trim.
        private func purgeSessions(
            notUpdatedSince date: Date, statuses: Set<PaymentSessionStatus>?, includeAuthorized: Bool
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
