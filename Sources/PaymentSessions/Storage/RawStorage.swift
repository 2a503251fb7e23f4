public import LMDB

/// The storage core's bytes, for this package's tests, fuzz target and profiling tools:
/// forge a record, break an index entry, rewrite the format version, count commits.
///
/// Not API: it is behind the `StorageTesting` SPI (`@_spi(StorageTesting) import
/// PaymentSessions`), so an application never sees database names, key layouts or record
/// bytes, and a change to them breaks no user. Writing here bypasses every rule of the
/// store; that is what it is for.
///
/// ```swift
/// @_spi(StorageTesting) import PaymentSessions
///
/// let raw = store.rawStorage
/// let record = try raw.value(forKey: session.id, in: .sessions)
/// try raw.put(Array(record!.dropLast()), forKey: session.id, in: .sessions)  // a torn record
/// ```
@_spi(StorageTesting)
public struct RawStorage: Sendable {
    /// The store's named databases (see `StoreLayout`).
    public enum Table: String, CaseIterable, Sendable {
        /// Session id to record.
        case sessions
        /// `cart_id` 0x00 `provider_id` to session id.
        case cartProvider = "cart_provider"
        /// `cart_id` to the selected session's id.
        case selected
        /// Idempotency key to session id (or a reservation).
        case idempotency
        /// Format version, creation time and a floor under the change feed's last sequence
        /// (the feed's newest key is the sequence; a trim keeps it here).
        case meta
        /// The change feed: sequence (8 bytes big-endian) to change.
        case changes
        /// Consumer name to acknowledged sequence.
        case consumers
    }

    /// The key of the format version in ``Table/meta``.
    public static let formatVersionKey = StoreLayout.formatVersionKey
    /// The format this version writes.
    public static let formatVersion = StoreLayout.formatVersion
    /// The record version this version writes (the first byte of a `sessions` value).
    public static let recordVersion = RecordCodec.version

    /// The checksum that ends a record of ``recordVersion``, of `bytes` (all the record's
    /// bytes before it): for tests that hold it against its documented definition.
    public static func recordChecksum(of bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { RecordChecksum.vectors($0) }
    }

    /// The LMDB environment, for tests of what the store does when LMDB itself misbehaves
    /// (its writer lock held, its map full).
    public let environment: Environment
    let layout: StoreLayout

    /// The key of a (cart, provider) entry in ``Table/cartProvider``.
    public static func cartProviderKey(cartID: String, providerID: String) -> [UInt8] {
        StoreLayout.cartProviderKey(cartID: cartID, providerID: providerID)
    }

    /// The bytes under `key` in `table`, or `nil`.
    public func value(forKey key: some Sequence<UInt8>, in table: Table) throws -> [UInt8]? {
        let database = try database(table)
        return try environment.read { try $0.get(Array(key), in: database) }
    }

    /// The bytes under `key` in `table`, or `nil`.
    public func value(forKey key: String, in table: Table) throws -> [UInt8]? {
        try value(forKey: Array(key.utf8), in: table)
    }

    /// Puts `value` under `key` in `table`, in a transaction of its own.
    public func put(_ value: some Sequence<UInt8>, forKey key: some Sequence<UInt8>, in table: Table) throws {
        let database = try database(table)
        try environment.write { try $0.put(Array(value), forKey: Array(key), in: database) }
    }

    /// Puts `value` under `key` in `table`, in a transaction of its own.
    public func put(_ value: some Sequence<UInt8>, forKey key: String, in table: Table) throws {
        try put(value, forKey: Array(key.utf8), in: table)
    }

    /// Puts every entry in `table`, in one transaction (for runs of thousands of forged records).
    public func put(_ entries: [(key: String, value: [UInt8])], in table: Table) throws {
        let database = try database(table)
        try environment.write { txn in
            for entry in entries { try txn.put(entry.value, forKey: entry.key, in: database) }
        }
    }

    /// Deletes every key from `table`, in one transaction.
    public func delete(keys: [String], in table: Table) throws {
        let database = try database(table)
        try environment.write { txn in
            for key in keys { _ = try txn.delete(key, in: database) }
        }
    }

    /// Deletes `key` from `table`, in a transaction of its own; whether it was there.
    @discardableResult
    public func delete(forKey key: String, in table: Table) throws -> Bool {
        let database = try database(table)
        return try environment.write { try $0.delete(key, in: database) }
    }

    /// The id of the last committed write transaction: how tests tell that an operation
    /// wrote nothing, or how many commits a batch took.
    public func lastTransactionID() throws -> Int {
        try environment.info().lastTransactionID
    }

    /// The size of the data file, in bytes.
    public func fileSize() throws -> Int {
        try environment.fileSize()
    }

    /// The table's handle; a store of an older format opened read-only has no feed tables.
    private func database(_ table: Table) throws -> Database {
        let database: Database? =
            switch table {
            case .sessions: layout.sessions
            case .cartProvider: layout.cartProvider
            case .selected: layout.selected
            case .idempotency: layout.idempotency
            case .meta: layout.meta
            case .changes: layout.changes
            case .consumers: layout.consumers
            }
        guard let database else {
            throw PaymentSessionError.invalidInput(field: "table", value: table.rawValue, reason: "this store has no such table")
        }
        return database
    }
}

extension PaymentSessionStore {
    /// The storage core's bytes; see ``RawStorage``.
    @_spi(StorageTesting)
    public var rawStorage: RawStorage { RawStorage(environment: environment, layout: layout) }
}
