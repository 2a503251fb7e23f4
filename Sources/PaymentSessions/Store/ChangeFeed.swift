import Foundation
import LMDB

extension PaymentSessionStore.ReadTransaction {
    /// The sequence of the last change ever appended (0 before the first): the newest
    /// change kept, or, when trims emptied the feed, the number `meta` kept for it.
    ///
    /// Why not a counter in `meta` that every change updates: a change would put it each
    /// time, one B-tree write more for every write of the store. The feed's own last key is
    /// the number, except when trims emptied the feed; a trim writes the number first.
    /// `meta` is read only for an empty feed: while the feed holds a change, its newest key
    /// is never below `meta` (a trim writes there the newest key it sees, and every later
    /// change is numbered above it).
    func lastChangeSequence() throws(PaymentSessionError) -> Int64 {
        if let changes = layout.changes {
            var newest: Int64?
            try storageMapped {
                try transaction.forEach(in: changes, reverse: true) { key, _ in
                    newest = ChangeRecord.sequence(ofKey: key)
                    guard newest != nil else {
                        throw PaymentSessionError.corruptRecord(key: "changes", reason: "malformed change key")
                    }
                    return false
                }
            }
            if let newest { return newest }
        }
        let stored: Int64?? = try storageMapped {
            try transaction.value(forKey: StoreLayout.changeSequenceKey, in: layout.meta) { bytes -> Int64? in
                bytes.count == 8 ? Int64(littleEndian: bytes.loadUnaligned(as: Int64.self)) : nil
            }
        }
        guard let stored else { return 0 }
        guard let stored else { throw .corruptRecord(key: "meta/\(StoreLayout.changeSequenceKey)", reason: "expected 8 bytes") }
        return stored
    }

    /// The oldest change still kept, or `nil`.
    func firstChangeSequence() throws(PaymentSessionError) -> Int64? {
        guard let changes = layout.changes else { return nil }
        var first: Int64?
        try storageMapped {
            try transaction.forEach(in: changes) { key, _ in
                first = ChangeRecord.sequence(ofKey: key)
                return false
            }
        }
        return first
    }

    /// Up to `limit` changes after `sequence`, in order.
    ///
    /// - Throws: `PaymentSessionError/changesTrimmed(after:oldestAvailable:)` when changes
    ///   after `sequence` were trimmed; `PaymentSessionError/invalidInput(field:value:reason:)`
    ///   for a negative `sequence`, one past the last change, or a negative `limit`.
    public func changes(after sequence: Int64, limit: Int) throws(PaymentSessionError) -> [PaymentSessionChange] {
        let last = try lastChangeSequence()
        try SessionRules.checkFeedPosition(sequence, last: last, field: "after")
        guard limit >= 0 else { throw .invalidInput(field: "limit", value: String(limit), reason: "must be 0 or more") }
        let first = try firstChangeSequence()
        try SessionRules.checkNotTrimmed(after: sequence, first: first, last: last)
        guard let changes = layout.changes, limit > 0, sequence < last else { return [] }
        var found: [PaymentSessionChange] = []
        try storageMapped {
            try transaction.forEach(in: changes, range: KeyRange(after: ChangeRecord.key(sequence))) { key, value in
                guard let number = ChangeRecord.sequence(ofKey: key) else {
                    throw PaymentSessionError.corruptRecord(key: "changes", reason: "a key of \(key.count) bytes")
                }
                found.append(try ChangeRecord.decode(sequence: number, value))
                return found.count < limit
            }
        }
        return found
    }

    /// Every named consumer's acknowledged position.
    public func consumerPositions() throws(PaymentSessionError) -> [String: Int64] {
        guard let consumers = layout.consumers else { return [:] }
        var positions: [String: Int64] = [:]
        try storageMapped {
            try transaction.forEach(in: consumers) { key, value in
                guard value.count == 8 else {
                    throw PaymentSessionError.corruptRecord(
                        key: "consumers/\(String(decoding: key, as: UTF8.self))", reason: "expected 8 bytes")
                }
                positions[String(decoding: key, as: UTF8.self)] = Int64(littleEndian: value.loadUnaligned(as: Int64.self))
                return true
            }
        }
        return positions
    }

    /// Where the feed stands: the oldest change kept, the last written, the consumers.
    public func changeFeedState() throws(PaymentSessionError) -> ChangeFeedState {
        ChangeFeedState(first: try firstChangeSequence(), last: try lastChangeSequence(), consumers: try consumerPositions())
    }
}

extension PaymentSessionStore.WriteTransaction {
    /// Appends one change to the feed, numbered after the last one, in this transaction:
    /// committed with the write it describes, or rolled back with it (a unit's failed
    /// write takes its changes along, in the nested transaction group commit gives it).
    func appendChange(
        kind: PaymentSessionChange.Kind, before: PaymentSessionStatus?, after: PaymentSessionStatus?, sessionID: String,
        cartID: String, record: UnsafeRawBufferPointer?
    ) throws(PaymentSessionError) {
        // A store opened read-only has no feed handles and writes nothing anyway.
        guard let changes = layout.changes else { return }
        // The last number is read once per transaction object: each serves one request, and
        // the objects of an LMDB transaction (or nested one) run one after another, so none
        // appends behind another's back.
        let last: Int64
        if let cached = lastAppendedSequence { last = cached } else { last = try lastChangeSequence() }
        let next = last + 1
        let committedAt = options.nowMicroseconds
        let size = ChangeRecord.size(sessionID: sessionID, cartID: cartID, record: record)
        try storageMapped {
            // Numbers only grow, and trims take the oldest: each change goes at the end,
            // and its key is the feed's last number (see `lastChangeSequence`).
            try withUnsafeBytes(of: UInt64(next).bigEndian) { key in
                try write.put(reservingCount: size, forKey: key, in: changes, appending: true) { buffer in
                    ChangeRecord.write(
                        kind: kind, before: before, after: after, committedAt: committedAt, sessionID: sessionID,
                        cartID: cartID, record: record, into: buffer)
                }
            }
        }
        lastAppendedSequence = next
    }

    /// Records that `consumer` has handled every change up to `sequence`. A position only
    /// moves forward: acknowledging an older one (a redelivery) changes nothing.
    ///
    /// - Throws: `PaymentSessionError/invalidInput(field:value:reason:)` for a bad name or a
    ///   sequence past the last change.
    public func acknowledge(consumer: String, upTo sequence: Int64) throws(PaymentSessionError) {
        try SessionValidation.validateIdentifier(consumer, field: "consumer")
        try SessionRules.checkFeedPosition(sequence, last: try lastChangeSequence(), field: "sequence")
        guard let consumers = layout.consumers else { return }
        if let current = try consumerPositions()[consumer], current >= sequence { return }
        try storageMapped { try write.put(withUnsafeBytes(of: sequence.littleEndian) { Array($0) }, forKey: consumer, in: consumers) }
    }

    /// Forgets a named consumer, so that the feed no longer keeps changes for it.
    @discardableResult
    public func removeConsumer(_ consumer: String) throws(PaymentSessionError) -> Bool {
        try SessionValidation.validateIdentifier(consumer, field: "consumer")
        guard let consumers = layout.consumers else { return false }
        return try storageMapped { try write.delete(consumer, in: consumers) }
    }

    /// Deletes the changes every named consumer has acknowledged, and those older than
    /// ``PaymentSessionStore/Options/changeRetention`` whoever has seen them; returns how
    /// many. With no named consumer, changes are kept for the retention period.
    @discardableResult
    public func trimChanges() throws(PaymentSessionError) -> Int {
        guard let changes = layout.changes else { return 0 }
        let acknowledged = try consumerPositions().values.min()
        let cutoff = options.nowMicroseconds - SessionRules.retentionMicroseconds(options.changeRetention)
        var doomed: [[UInt8]] = []
        try storageMapped {
            try transaction.forEach(in: changes) { key, value in
                guard let sequence = ChangeRecord.sequence(ofKey: key), value.count >= 12 else {
                    throw PaymentSessionError.corruptRecord(key: "changes", reason: "malformed change entry")
                }
                let committedAt = Int64(littleEndian: value.loadUnaligned(fromByteOffset: 4, as: Int64.self))
                // Sequence order is commit order: the first change that stays ends the walk.
                guard (acknowledged.map { sequence <= $0 } ?? false) || committedAt < cutoff else { return false }
                doomed.append(Array(key))
                return true
            }
        }
        guard !doomed.isEmpty else { return 0 }
        // The number first: a trim may take the newest change, whose key was the number.
        let last = try lastChangeSequence()
        try storageMapped {
            try withUnsafeBytes(of: last.littleEndian) { try write.put($0, forKey: StoreLayout.changeSequenceKey, in: layout.meta) }
            for key in doomed { try write.delete(key, in: changes) }
        }
        return doomed.count
    }
}

extension PaymentSessionStore {
    /// Up to `limit` changes after `sequence`, in commit order; see
    /// ``ReadTransaction/changes(after:limit:)``.
    public func changes(after sequence: Int64, limit: Int = 100) throws(PaymentSessionError) -> [PaymentSessionChange] {
        try typedRead { tx throws(PaymentSessionError) in try tx.changes(after: sequence, limit: limit) }
    }

    /// Where the feed stands.
    public func changeFeedState() throws(PaymentSessionError) -> ChangeFeedState {
        try typedRead { tx throws(PaymentSessionError) in try tx.changeFeedState() }
    }

    /// `consumer`'s acknowledged position, or `nil` for a consumer never heard of.
    public func position(consumer: String) throws(PaymentSessionError) -> Int64? {
        try SessionValidation.validateIdentifier(consumer, field: "consumer")
        return try typedRead { tx throws(PaymentSessionError) in try tx.consumerPositions()[consumer] }
    }

    /// Records that `consumer` handled every change up to `sequence`, durably.
    public func acknowledge(consumer: String, upTo sequence: Int64) throws(PaymentSessionError) {
        try typedWrite { tx throws(PaymentSessionError) in try tx.acknowledge(consumer: consumer, upTo: sequence) }
    }

    /// Forgets `consumer`; see ``WriteTransaction/removeConsumer(_:)``.
    @discardableResult
    public func removeConsumer(_ consumer: String) throws(PaymentSessionError) -> Bool {
        try typedWrite { tx throws(PaymentSessionError) in try tx.removeConsumer(consumer) }
    }

    /// Trims the feed; see ``WriteTransaction/trimChanges()``.
    @discardableResult
    public func trimChanges() throws(PaymentSessionError) -> Int {
        try typedWrite { tx throws(PaymentSessionError) in try tx.trimChanges() }
    }
}
