import CLMDB

/// A handle on one named database (a B+tree) inside an ``Environment``.
///
/// Get one from ``Environment/database(named:create:)``, which opens each name once and
/// caches the handle, as LMDB requires. The handle is a plain value: keep it, pass it
/// to transactions of the same environment, share it across threads.
///
/// Databases here are plain (no `MDB_DUPSORT`): liblmdb 0.9.24, which Debian ships, has
/// DUPSORT cursor bugs fixed only later, so composite keys are the way to index.
public struct Database: Sendable, Hashable, CustomStringConvertible {
    let dbi: MDB_dbi
    /// The database's name, or `nil` for the unnamed main database.
    public let name: String?

    init(dbi: MDB_dbi, name: String?) {
        self.dbi = dbi
        self.name = name
    }

    /// The name, or `<main>` for the unnamed database.
    public var description: String { name ?? "<main>" }
}

/// Page-level statistics of one database (`MDB_stat`).
public struct DatabaseStatistics: Sendable, Hashable {
    /// The database page size in bytes.
    public var pageSize: Int
    /// Depth of the B+tree.
    public var depth: Int
    /// Number of internal (non-leaf) pages.
    public var branchPages: Int
    /// Number of leaf pages.
    public var leafPages: Int
    /// Number of overflow pages (values too big for a leaf).
    public var overflowPages: Int
    /// Number of key/value entries.
    public var entries: Int

    /// Bytes of pages in use by this database.
    public var bytesInUse: Int { pageSize * (branchPages + leafPages + overflowPages) }

    init(_ stat: MDB_stat) {
        pageSize = Int(stat.ms_psize)
        depth = Int(stat.ms_depth)
        branchPages = stat.ms_branch_pages
        leafPages = stat.ms_leaf_pages
        overflowPages = stat.ms_overflow_pages
        entries = stat.ms_entries
    }
}

/// Facts about an environment as a whole (`MDB_envinfo`).
public struct EnvironmentInfo: Sendable, Hashable {
    /// Current size of the memory map in bytes.
    public var mapSize: Int
    /// The last page number in use; `(lastPageNumber + 1) * pageSize` bytes of the file hold data.
    public var lastPageNumber: Int
    /// The id of the last committed transaction.
    public var lastTransactionID: Int
    /// Reader slots in the lock table.
    public var maxReaders: Int
    /// Reader slots used so far (live or stale).
    public var readersUsed: Int
}
