import LMDB

/// The named databases of a store and how their keys are built (see DESIGN.md).
///
/// | database | key | value |
/// |---|---|---|
/// | `sessions` | session id | ``RecordCodec`` record |
/// | `cart_provider` | cart_id, 0x00, provider_id | session id |
/// | `selected` | cart_id | session id |
/// | `idempotency` | idempotency_key | session id |
/// | `meta` | name | value (format version, creation time, a floor under the last change's sequence: written by trims, and by every change before format 6) |
/// | `changes` | sequence, 8 bytes big-endian | ``ChangeRecord`` |
/// | `consumers` | consumer name | acknowledged sequence, 8 bytes little-endian |
struct StoreLayout: Sendable {
    /// The store format this version writes and the newest it reads.
    ///
    /// 6: records are written as ``RecordCodec`` version 5 (the vector checksum), and a
    /// change no longer updates the last sequence in `meta` (the feed's newest key is it;
    /// `meta` keeps it through trims). 5:
    /// records of version 4 (the four-chain checksum). 4:
    /// every write appends to the change feed (`changes`, `consumers`, and the last
    /// sequence in `meta`); a store of format 3 or older has no feed, which starts empty
    /// when it is opened for writing. 3: records are written as ``RecordCodec`` version 3
    /// (with the money fields), and an `idempotency` entry may be a reservation (see
    /// ``IdempotencyEntry``). 2: records of version 2 (with a checksum). A store of format
    /// 1 to 5 is read as it is and marked format 6 when opened for writing, so that older
    /// binaries, which cannot read what this one writes, refuse it.
    static let formatVersion: UInt32 = 6
    static let formatVersionKey = "format_version"
    static let createdAtKey = "created_at"
    static let changeSequenceKey = "change_sequence"
    static let databaseNames = ["sessions", "cart_provider", "selected", "idempotency", "meta"]
    /// The change feed's databases: absent from a store of format 3 or older opened read-only.
    static let feedDatabaseNames = ["changes", "consumers"]

    let sessions: Database
    let cartProvider: Database
    let selected: Database
    let idempotency: Database
    let meta: Database
    /// `nil` only in a store of an older format opened read-only: its feed is empty.
    let changes: Database?
    let consumers: Database?

    init(_ databases: [Database], feed: [Database]?) {
        sessions = databases[0]
        cartProvider = databases[1]
        selected = databases[2]
        idempotency = databases[3]
        meta = databases[4]
        changes = feed?[0]
        consumers = feed?[1]
    }

    /// `cart_id` 0x00 `provider_id`: one entry per (cart, provider), and all of a cart's
    /// entries under the prefix `cart_id` 0x00.
    static func cartProviderKey(cartID: String, providerID: String) -> [UInt8] {
        withCartProviderKey(cartID: cartID, providerID: providerID) { Array($0) }
    }

    /// `cart_id` 0x00: the prefix of a cart's `cart_provider` entries.
    static func cartPrefix(_ cartID: String) -> [UInt8] {
        withCartProviderKey(cartID: cartID, providerID: "") { Array($0) }
    }

    /// Calls `body` with ``cartProviderKey(cartID:providerID:)`` in a temporary buffer
    /// (on the stack: both parts are at most 255 bytes), valid only inside `body`.
    ///
    /// Why: a create puts this key once; building it as an array (appending the
    /// `String.UTF8View`s) costs an allocation on every create.
    static func withCartProviderKey<R>(
        cartID: String, providerID: String, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        var cartID = cartID
        var providerID = providerID
        let cartCount = cartID.utf8.count
        let count = cartCount + 1 + providerID.utf8.count
        return try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { buffer in
            let base = buffer.baseAddress!  // capacity is at least 1
            cartID.withUTF8 { if let source = $0.baseAddress { base.initialize(from: source, count: $0.count) } }
            base[cartCount] = 0
            providerID.withUTF8 { if let source = $0.baseAddress { (base + cartCount + 1).initialize(from: source, count: $0.count) } }
            return try body(UnsafeRawBufferPointer(buffer))
        }
    }
}

/// The value of an `idempotency` entry: the id of the session that holds the key, or a
/// reservation left when that session was deleted (its id and when it was deleted), so that
/// a retry within the retention period is answered with
/// ``PaymentSessionError/sessionGone(key:id:)`` instead of creating a second session.
///
/// A session id is 29 bytes; a reservation is the id followed by 8 bytes of deletion time
/// (microseconds since 1970, little-endian).
enum IdempotencyEntry: Equatable {
    case session(id: String)
    case reservation(id: String, deletedMicroseconds: Int64)

    init?(_ bytes: UnsafeRawBufferPointer) {
        switch bytes.count {
        case PaymentSessionID.length:
            self = .session(id: String(decoding: bytes, as: UTF8.self))
        case PaymentSessionID.length + 8:
            let id = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<PaymentSessionID.length]), as: UTF8.self)
            let at = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: PaymentSessionID.length, as: Int64.self))
            self = .reservation(id: id, deletedMicroseconds: at)
        default:
            return nil
        }
    }

    var bytes: [UInt8] {
        switch self {
        case .session(let id): Array(id.utf8)
        case .reservation(let id, let at): Array(id.utf8) + withUnsafeBytes(of: at.littleEndian) { Array($0) }
        }
    }

    var id: String {
        switch self {
        case .session(let id), .reservation(let id, _): id
        }
    }
}
