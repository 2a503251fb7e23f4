import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// An index lookup ("the records of this cart") is a prefix walk of one database whose
// values are keys of another, each followed by a get. Written with a cursor and
// `value(forKey:)` it costs a cursor object, a range check per entry in Swift and a map
// entry per get; this walks with one liblmdb cursor and one pin of the map, which is what
// the hottest multi-record read needs.

extension Environment {
    /// Visits, in one short read transaction of its own, each entry of `index` whose key
    /// starts with `prefix`, in key order, passing its value (a key of `values`) and what
    /// `values` holds under it (`nil` when nothing: a dangling index entry).
    ///
    /// ```swift
    /// var orders: [Order] = []
    /// try env.forEachIndexedValue(prefix: customerKey, in: ordersByCustomer, values: orders) { orderID, record in
    ///     if let record { orders.append(try Order(decoding: record)) }
    /// }
    /// ```
    ///
    /// Like ``value(forKey:in:_:)`` it allocates no transaction object and reuses a pooled
    /// liblmdb transaction.
    ///
    /// - Important: The map stays pinned (this process cannot grow it) for the whole walk,
    ///   and both buffers are valid only inside `body`: use it for short prefixes (a
    ///   handful of entries), and ``Transaction/forEach(in:range:reverse:_:)`` for long walks.
    /// - Throws: ``LMDBError`` naming the liblmdb call (an empty or too long prefix is
    ///   ``LMDBError/Code/invalidKeySize(size:maximum:)``), or what `body` throws.
    public func forEachIndexedValue(
        prefix: some LMDBBytes, in index: Database, values: Database,
        _ body: (_ valueKey: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer?) throws -> Void
    ) throws {
        try walkIndexedValuesInPooledRead(prefix: prefix, index: index, values: values, leaf: false, body)
    }

    /// ``forEachIndexedValue(prefix:in:values:_:)`` for a `decode` that only turns the
    /// bytes into values: it must not begin any operation on this environment (see
    /// ``decodeValue(forKey:in:_:)``).
    package func decodeIndexedValues(
        prefix: some LMDBBytes, in index: Database, values: Database,
        _ decode: (_ valueKey: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer?) throws -> Void
    ) throws {
        try walkIndexedValuesInPooledRead(prefix: prefix, index: index, values: values, leaf: true, decode)
    }

    /// The walk in a pooled read of its own, entered as a leaf or not.
    private func walkIndexedValuesInPooledRead(
        prefix: some LMDBBytes, index: Database, values: Database, leaf: Bool,
        _ body: (_ valueKey: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer?) throws -> Void
    ) throws {
        let txn = try beginPooledRead(leaf: leaf)
        defer { endPooledRead(txn, leaf: leaf) }
        try walkIndexedValues(txn, prefix: prefix, index: index, values: values, body)
    }

    /// The walk of ``forEachIndexedValue(prefix:in:values:_:)`` in the live transaction
    /// `txn`, whose caller keeps the map pinned.
    func walkIndexedValues(
        _ txn: OpaquePointer, prefix: some LMDBBytes, index: Database, values: Database,
        _ body: (_ valueKey: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer?) throws -> Void
    ) throws {
        try prefix.withLMDBBytes { prefix in
            try checkKey(prefix, "mdb_cursor_get(\(index), MDB_SET_RANGE)")
            // checkKey refuses an empty key, so there is an address.
            guard let prefixStart = prefix.baseAddress else { return }
            var cursor: OpaquePointer?
            try check(mdb_cursor_open(txn, index.dbi, &cursor), "mdb_cursor_open(\(index))")
            defer { mdb_cursor_close(cursor) }
            var key = MDB_val(prefix)
            var value = MDB_val()
            var rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE)
            while rc == MDB_SUCCESS {
                guard key.mv_size >= prefix.count, memcmp(key.mv_data, prefixStart, prefix.count) == 0 else { return }
                var record = MDB_val()
                var recordKey = value
                let found = mdb_get(txn, values.dbi, &recordKey, &record)
                if found == MDB_NOTFOUND {
                    try body(value.buffer, nil)
                } else {
                    try check(found, "mdb_get(\(values))")
                    try body(value.buffer, record.buffer)
                }
                rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
            }
            if rc != MDB_NOTFOUND { try check(rc, "mdb_cursor_get(\(index), MDB_NEXT)") }
        }
    }
}

extension Transaction {
    /// ``Environment/forEachIndexedValue(prefix:in:values:_:)`` in this transaction's
    /// snapshot (and, in a write transaction, with its own uncommitted changes).
    ///
    /// - Important: The map stays pinned for the whole walk; both buffers are valid only
    ///   inside `body`.
    public func forEachIndexedValue(
        prefix: some LMDBBytes, in index: Database, values: Database,
        _ body: (_ valueKey: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer?) throws -> Void
    ) throws {
        let txn = try usableHandle("mdb_cursor_open(\(index))")
        try touchingMap { try environment.walkIndexedValues(txn, prefix: prefix, index: index, values: values, body) }
    }
}
