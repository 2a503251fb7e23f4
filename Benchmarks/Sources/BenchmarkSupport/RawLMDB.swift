import CLMDBFloor
import Foundation

/// The floor: the same puts and gets the store's layout needs, made directly with
/// liblmdb, with a prebuilt byte blob in place of the record codec. No validation,
/// no decoding, no Swift wrapper.
public final class RawLMDB: @unchecked Sendable {
    let env: OpaquePointer
    var sessions = MDB_dbi()
    var cartProvider = MDB_dbi()
    var selected = MDB_dbi()
    var idempotency = MDB_dbi()
    /// A record-sized blob; byte 1 bit 0 plays `is_selected`.
    public let blob: [UInt8]
    public let durable: Bool

    public init(path: String, durable: Bool, recordSize: Int, mapSize: Int = 8 << 30, readAhead: Bool = true) {
        self.durable = durable
        var handle: OpaquePointer?
        mdb_env_create(&handle)
        env = handle!
        mdb_env_set_maxdbs(env, 8)
        mdb_env_set_mapsize(env, mapSize)
        mdb_env_open(
            env, path, UInt32(MDB_NOTLS) | (durable ? 0 : UInt32(MDB_NOSYNC)) | (readAhead ? 0 : UInt32(MDB_NORDAHEAD)), 0o644)
        blob = [UInt8](repeating: 0x5A, count: recordSize)
        var txn: OpaquePointer?
        mdb_txn_begin(env, nil, 0, &txn)
        mdb_dbi_open(txn, "sessions", UInt32(MDB_CREATE), &sessions)
        mdb_dbi_open(txn, "cart_provider", UInt32(MDB_CREATE), &cartProvider)
        mdb_dbi_open(txn, "selected", UInt32(MDB_CREATE), &selected)
        mdb_dbi_open(txn, "idempotency", UInt32(MDB_CREATE), &idempotency)
        mdb_txn_commit(txn)
    }

    deinit { mdb_env_close(env) }

    @inline(__always)
    static func put(_ txn: OpaquePointer?, _ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer, _ flags: UInt32 = 0) {
        var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
        var v = MDB_val(mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
        mdb_put(txn, dbi, &k, &v, flags)
    }

    /// What the store writes for one create: record (no-overwrite), (cart, provider), idempotency key.
    func insert(_ txn: OpaquePointer?, id: String, cart: String, provider: String, key: String) {
        var id = id
        var pair = Array(cart.utf8)
        pair.append(0)
        pair.append(contentsOf: provider.utf8)
        var key = key
        id.withUTF8 { idBytes in
            let idRaw = UnsafeRawBufferPointer(idBytes)
            blob.withUnsafeBytes { Self.put(txn, sessions, idRaw, $0, UInt32(MDB_NOOVERWRITE)) }
            pair.withUnsafeBytes { Self.put(txn, cartProvider, $0, idRaw) }
            key.withUTF8 { Self.put(txn, idempotency, UnsafeRawBufferPointer($0), idRaw, UInt32(MDB_NOOVERWRITE)) }
        }
    }

    /// One create per durable transaction.
    public func create(id: String, cart: String, provider: String, key: String) {
        var txn: OpaquePointer?
        mdb_txn_begin(env, nil, 0, &txn)
        insert(txn, id: id, cart: cart, provider: provider, key: key)
        mdb_txn_commit(txn)
    }

    /// Many creates in one transaction.
    public func createMany(_ count: Int, _ fields: (Int) -> (id: String, cart: String, provider: String, key: String)) {
        var txn: OpaquePointer?
        mdb_txn_begin(env, nil, 0, &txn)
        for i in 0..<count {
            let f = fields(i)
            insert(txn, id: f.id, cart: f.cart, provider: f.provider, key: f.key)
        }
        mdb_txn_commit(txn)
    }

    /// The record under `id`, copied out (the codec's place is taken by a copy).
    public func get(id: String) -> [UInt8]? {
        var txn: OpaquePointer?
        mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        defer { mdb_txn_abort(txn) }
        var id = id
        return id.withUTF8 { bytes -> [UInt8]? in
            var k = MDB_val(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
            var v = MDB_val()
            guard mdb_get(txn, sessions, &k, &v) == 0 else { return nil }
            return Array(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
        }
    }

    /// A cart's records: prefix scan of `cart_provider`, then a get per id.
    public func cartSessions(cart: String) -> [[UInt8]] {
        var txn: OpaquePointer?
        mdb_txn_begin(env, nil, UInt32(MDB_RDONLY), &txn)
        defer { mdb_txn_abort(txn) }
        var cursor: OpaquePointer?
        mdb_cursor_open(txn, cartProvider, &cursor)
        defer { mdb_cursor_close(cursor) }
        var prefix = Array(cart.utf8)
        prefix.append(0)
        var records: [[UInt8]] = []
        prefix.withUnsafeBytes { p in
            var k = MDB_val(mv_size: p.count, mv_data: UnsafeMutableRawPointer(mutating: p.baseAddress))
            var v = MDB_val()
            var rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
            while rc == 0, k.mv_size >= p.count, memcmp(k.mv_data, p.baseAddress!, p.count) == 0 {
                var record = MDB_val()
                var idKey = v
                if mdb_get(txn, sessions, &idKey, &record) == 0 {
                    records.append(Array(UnsafeRawBufferPointer(start: record.mv_data, count: record.mv_size)))
                }
                rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)
            }
        }
        return records
    }

    /// Selection switch: read the cart's selected id, rewrite the old and new records
    /// with their flag changed, point `selected` at the new id. One durable transaction.
    public func select(id: String, cart: String) {
        var txn: OpaquePointer?
        mdb_txn_begin(env, nil, 0, &txn)
        var id = id
        var cart = cart
        id.withUTF8 { idBytes in
            cart.withUTF8 { cartBytes in
                var ck = MDB_val(mv_size: cartBytes.count, mv_data: UnsafeMutableRawPointer(mutating: cartBytes.baseAddress))
                var current = MDB_val()
                if mdb_get(txn, selected, &ck, &current) == 0 {
                    var old = MDB_val()
                    var oldKey = current
                    if mdb_get(txn, sessions, &oldKey, &old) == 0 {
                        var copy = Array(UnsafeRawBufferPointer(start: old.mv_data, count: old.mv_size))
                        copy[1] = 0
                        let oldID = Array(UnsafeRawBufferPointer(start: current.mv_data, count: current.mv_size))
                        oldID.withUnsafeBytes { k in copy.withUnsafeBytes { Self.put(txn, sessions, k, $0) } }
                    }
                }
                var newKey = MDB_val(mv_size: idBytes.count, mv_data: UnsafeMutableRawPointer(mutating: idBytes.baseAddress))
                var record = MDB_val()
                if mdb_get(txn, sessions, &newKey, &record) == 0 {
                    var copy = Array(UnsafeRawBufferPointer(start: record.mv_data, count: record.mv_size))
                    copy[1] = 1
                    copy.withUnsafeBytes { Self.put(txn, sessions, UnsafeRawBufferPointer(idBytes), $0) }
                }
                Self.put(txn, selected, UnsafeRawBufferPointer(cartBytes), UnsafeRawBufferPointer(idBytes))
            }
        }
        mdb_txn_commit(txn)
    }
}
