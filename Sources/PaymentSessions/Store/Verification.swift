import LMDB

/// What ``PaymentSessionStore/verify()`` found.
public struct VerificationReport: Sendable, Hashable, Codable {
    /// One broken invariant or unreadable entry.
    public struct Problem: Sendable, Hashable, Codable, CustomStringConvertible {
        /// What kind of problem: `corrupt_record` (undecodable bytes), `invalid_record`
        /// (decodes but breaks an input rule, such as a selected canceled session, or an
        /// authorized session with an authorization record that is not selected),
        /// `missing_index`, `dangling_index`, `index_mismatch`, `selection_mismatch`,
        /// `reservation_mismatch` (a key reserved for a deleted session that exists).
        public var kind: String
        /// The database the problem was found in.
        public var database: String
        /// The key of the entry (a session id, a cart id, an idempotency key...).
        public var key: String
        /// What is wrong.
        public var message: String

        /// `"sessions/ps_01...: corrupt_record: truncated at data"`.
        public var description: String { "\(database)/\(key): \(kind): \(message)" }
    }

    /// How many session records were checked.
    public var sessions: Int
    /// Every problem found; empty for a sound store.
    public var problems: [Problem]
    /// Authorized sessions without an authorization record (`payment_authorized_at`):
    /// authorized before the store kept one. They keep their state and are not problems.
    public var legacyAuthorized: [String] = []
    /// Idempotency keys reserved for deleted sessions.
    public var reservations = 0

    /// Whether no problem was found.
    public var isClean: Bool { problems.isEmpty }
}

extension PaymentSessionStore {
    /// Walks the whole store in one snapshot and reports every broken invariant:
    /// records that do not decode or break the input rules, records missing from an
    /// index, index entries that point nowhere or to a session that disagrees, a cart
    /// whose selection does not match its sessions' `is_selected` (so two selected
    /// sessions in one cart are always reported), a canceled session that is selected.
    ///
    /// It reads only; a long walk does not block writers.
    public func verify() throws(PaymentSessionError) -> VerificationReport {
        try typedRead { tx throws(PaymentSessionError) in
            var verifier = Verifier(tx)
            return try verifier.run()
        }
    }
}

/// The checks behind ``PaymentSessionStore/verify()``.
private struct Verifier {
    let tx: PaymentSessionStore.ReadTransaction
    var problems: [VerificationReport.Problem] = []
    var reservations = 0
    /// Sessions that decoded, by id.
    var sessions: [String: PaymentSession] = [:]
    var recordCount = 0

    init(_ tx: PaymentSessionStore.ReadTransaction) { self.tx = tx }

    mutating func report(_ kind: String, _ database: String, _ key: String, _ message: String) {
        problems.append(.init(kind: kind, database: database, key: key, message: message))
    }

    mutating func run() throws(PaymentSessionError) -> VerificationReport {
        try checkRecords()
        try checkIndex(tx.layout.cartProvider, name: "cart_provider") { key, session in
            StoreLayout.cartProviderKey(cartID: session.cartID, providerID: session.providerID) == key
        }
        try checkIdempotencyIndex()
        try checkIndex(tx.layout.selected, name: "selected") { key, session in
            Array(session.cartID.utf8) == key && session.isSelected
        }
        checkRecordsAreIndexed()
        let legacy = sessions.values.filter(\.isLegacyAuthorized).map(\.id).sorted()
        return VerificationReport(sessions: recordCount, problems: problems, legacyAuthorized: legacy, reservations: reservations)
    }

    /// Decodes every record and checks it against the input rules.
    mutating func checkRecords() throws(PaymentSessionError) {
        var entries: [(String, Result<PaymentSession, PaymentSessionError>)] = []
        try storageMapped {
            try tx.transaction.forEach(in: tx.layout.sessions) { key, value in
                let id = String(decoding: key, as: UTF8.self)
                entries.append((id, Result { () throws(PaymentSessionError) in try RecordCodec.decode(id: id, value, checkingData: true) }))
                return true
            }
        }
        recordCount = entries.count
        for (id, result) in entries {
            switch result {
            case .failure(let error):
                report("corrupt_record", "sessions", id, error.description)
            case .success(let session):
                do {
                    try SessionValidation.validate(session)
                    sessions[id] = session
                } catch {
                    report("invalid_record", "sessions", id, error.description)
                    sessions[id] = session
                }
            }
        }
    }

    /// Checks that every entry of an index points to a record that agrees with it.
    mutating func checkIndex(
        _ database: Database, name: String, agrees: ([UInt8], PaymentSession) -> Bool
    ) throws(PaymentSessionError) {
        let entries: [(key: [UInt8], value: [UInt8])] = try storageMapped { try tx.transaction.entries(in: database) }
        for (key, value) in entries {
            let keyText = String(decoding: key.map { $0 == 0 ? UInt8(ascii: "/") : $0 }, as: UTF8.self)
            let id = String(decoding: value, as: UTF8.self)
            guard let session = sessions[id] else {
                report("dangling_index", name, keyText, "points to \(id), which is missing or unreadable")
                continue
            }
            if !agrees(key, session) {
                report(
                    name == "selected" ? "selection_mismatch" : "index_mismatch", name, keyText,
                    "points to \(id), whose record disagrees")
            }
        }
    }

    /// Checks the `idempotency` index: a live entry points to a session whose key it is;
    /// a reservation names a session that no longer exists.
    mutating func checkIdempotencyIndex() throws(PaymentSessionError) {
        let entries: [(key: [UInt8], value: [UInt8])] = try storageMapped { try tx.transaction.entries(in: tx.layout.idempotency) }
        for (key, value) in entries {
            let keyText = String(decoding: key, as: UTF8.self)
            switch value.withUnsafeBytes({ IdempotencyEntry($0) }) {
            case nil:
                report("corrupt_record", "idempotency", keyText, "malformed entry of \(value.count) bytes")
            case .session(let id)?:
                guard let session = sessions[id] else {
                    report("dangling_index", "idempotency", keyText, "points to \(id), which is missing or unreadable")
                    continue
                }
                if session.idempotencyKey.map({ Array($0.utf8) }) != key {
                    report("index_mismatch", "idempotency", keyText, "points to \(id), whose record disagrees")
                }
            case .reservation(let id, let at)?:
                reservations += 1
                if !PaymentSessionID.isValid(id) {
                    report("corrupt_record", "idempotency", keyText, "reservation names a malformed id")
                } else if sessions[id] != nil {
                    report("reservation_mismatch", "idempotency", keyText, "reserved for deleted session \(id), which exists")
                } else if at > Timestamp.microseconds(tx.options.now()) {
                    report("reservation_mismatch", "idempotency", keyText, "reserved at \(at), in the future")
                }
            }
        }
    }

    /// Checks that every record has the index entries its fields call for.
    mutating func checkRecordsAreIndexed() {
        for session in sessions.values.sorted(by: { $0.id < $1.id }) {
            let pairKey = StoreLayout.cartProviderKey(cartID: session.cartID, providerID: session.providerID)
            if (try? tx.indexedID(pairKey, in: tx.layout.cartProvider)) != session.id {
                report("missing_index", "cart_provider", session.id, "no cart_provider entry points to this session")
            }
            if let key = session.idempotencyKey, (try? tx.indexedID(key, in: tx.layout.idempotency)) != session.id {
                report("missing_index", "idempotency", session.id, "no idempotency entry points to this session")
            }
            if session.isSelected && (try? tx.indexedID(session.cartID, in: tx.layout.selected)) != session.id {
                report("selection_mismatch", "selected", session.id, "is_selected is set but the cart selects another session")
            }
        }
    }
}
