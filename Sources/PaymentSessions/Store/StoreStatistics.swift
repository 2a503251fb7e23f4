import LMDB

/// Counts and sizes of a store, from one snapshot.
public struct StoreStatistics: Sendable, Hashable {
    /// Number of sessions.
    public var sessions: Int
    /// Number of carts with at least one session.
    public var carts: Int
    /// Number of carts with a selected session.
    public var selected: Int
    /// Sessions per status (every status present, zero included).
    public var byStatus: [PaymentSessionStatus: Int]
    /// Size of `data.mdb` in bytes.
    public var fileBytes: Int
    /// Current size of the memory map in bytes.
    public var mapBytes: Int
    /// Bytes of pages in use by the store's databases, the change feed's included.
    public var usedBytes: Int

    /// The counts every backend reports alike.
    public var counts: SessionCounts {
        SessionCounts(sessions: sessions, carts: carts, selected: selected, byStatus: byStatus)
    }
}

extension PaymentSessionStore {
    /// Counts sessions, carts, selections and statuses, and reports file and map sizes.
    ///
    /// Reads the status byte of every record without decoding the rest: O(sessions).
    public func statistics() throws(PaymentSessionError) -> StoreStatistics {
        try storageMapped {
            try environment.read { txn in
                var byStatus = Dictionary(uniqueKeysWithValues: PaymentSessionStatus.allCases.map { ($0, 0) })
                try txn.forEach(in: layout.sessions) { key, value in
                    // Byte 2 of a version-1 record is the status code.
                    guard value.count > 2, let status = PaymentSessionStatus(storageCode: value[2]) else {
                        throw PaymentSessionError.corruptRecord(
                            key: String(decoding: key, as: UTF8.self), reason: "no valid status byte")
                    }
                    byStatus[status, default: 0] += 1
                    return true
                }
                var carts = 0
                var previousCart: [UInt8] = []
                try txn.forEach(in: layout.cartProvider) { key, _ in
                    let cart = key.prefix { $0 != 0 }
                    if !cart.elementsEqual(previousCart) {
                        carts += 1
                        previousCart = Array(cart)
                    }
                    return true
                }
                var used = 0
                let feed = [layout.changes, layout.consumers].compactMap { $0 }
                for database in [layout.sessions, layout.cartProvider, layout.selected, layout.idempotency, layout.meta] + feed {
                    used += try txn.statistics(of: database).bytesInUse
                }
                return StoreStatistics(
                    sessions: try txn.count(in: layout.sessions), carts: carts, selected: try txn.count(in: layout.selected),
                    byStatus: byStatus, fileBytes: try environment.fileSize(), mapBytes: (try environment.info()).mapSize,
                    usedBytes: used)
            }
        }
    }
}
