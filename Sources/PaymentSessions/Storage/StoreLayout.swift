import LMDB

/// The named databases of a store and how their keys are built (see DESIGN.md).
///
/// | database | key | value |
/// |---|---|---|
/// | `sessions` | session id | ``RecordCodec`` record |
/// | `cart_provider` | cart_id, 0x00, provider_id | session id |
/// | `selected` | cart_id | session id |
/// | `idempotency` | idempotency_key | session id |
/// | `meta` | name | value |
struct StoreLayout: Sendable {
    /// The store format this version writes and the newest it reads.
    ///
    /// 2: records are written as ``RecordCodec`` version 2 (with a checksum). A format 1
    /// store (version 1 records only) is read as it is and marked format 2 when opened for
    /// writing, so that older binaries, which cannot read version 2 records, refuse it.
    static let formatVersion: UInt32 = 2
    static let formatVersionKey = "format_version"
    static let createdAtKey = "created_at"
    static let databaseNames = ["sessions", "cart_provider", "selected", "idempotency", "meta"]

    let sessions: Database
    let cartProvider: Database
    let selected: Database
    let idempotency: Database
    let meta: Database

    init(_ databases: [Database]) {
        sessions = databases[0]
        cartProvider = databases[1]
        selected = databases[2]
        idempotency = databases[3]
        meta = databases[4]
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
    /// `String.UTF8View`s) was 650 instructions of 18,000 (callgrind), mostly the allocation.
    static func withCartProviderKey<R>(
        cartID: String, providerID: String, _ body: (UnsafeRawBufferPointer) -> R
    ) -> R {
        var cartID = cartID
        var providerID = providerID
        let cartCount = cartID.utf8.count
        let count = cartCount + 1 + providerID.utf8.count
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { buffer in
            let base = buffer.baseAddress!  // capacity is at least 1
            cartID.withUTF8 { if let source = $0.baseAddress { base.initialize(from: source, count: $0.count) } }
            base[cartCount] = 0
            providerID.withUTF8 { if let source = $0.baseAddress { (base + cartCount + 1).initialize(from: source, count: $0.count) } }
            return body(UnsafeRawBufferPointer(buffer))
        }
    }
}
