import CLMDB

extension Environment {
    /// What a commit promises about a crash that follows it.
    public enum Durability: String, Sendable, Hashable, CaseIterable {
        /// `fsync` of data and meta page at every commit (the default). A commit that
        /// returned survives a crash of the process and of the operating system.
        case full
        /// `MDB_NOMETASYNC`: data pages are synced at commit, the meta page only at the
        /// next commit. An operating-system crash may undo the last commit; the store
        /// stays consistent (ACI, not D, for that one transaction).
        case noMetaSync
        /// `MDB_NOSYNC`: nothing is synced at commit; call ``Environment/sync(force:)``.
        /// A process crash loses nothing (the page cache survives it), but an
        /// operating-system crash may lose every commit since the last sync. The store is
        /// never corrupted on a file system that keeps write order (ext4 `data=ordered`).
        case noSync

        var flags: UInt32 {
            switch self {
            case .full: 0
            case .noMetaSync: UInt32(MDB_NOMETASYNC)
            case .noSync: UInt32(MDB_NOSYNC)
            }
        }
    }

    /// How to open an environment.
    ///
    /// ```swift
    /// var options = Environment.Options()
    /// options.mapSize = 64 << 20          // start with a 64 MiB map
    /// options.maxMapSize = 16 << 30       // grow on demand up to 16 GiB
    /// options.maxDatabases = 8
    /// let env = try Environment.open(path: "/var/lib/app/store", options: options)
    /// ```
    public struct Options: Sendable, Hashable {
        /// The initial size of the memory map in bytes. It costs address space, not disk:
        /// the data file grows with use. Rounded up by liblmdb to a multiple of the OS page
        /// size. When an existing environment is larger, its size is kept.
        public var mapSize: Int = 256 << 20
        /// The largest size to which a write that hits `MDB_MAP_FULL` may grow the map.
        /// Beyond it the write fails with ``LMDBError/Code/mapFull``. Set it equal to
        /// ``mapSize`` to disable growth.
        public var maxMapSize: Int = 1 << 40
        /// How many named databases the environment may hold (`mdb_env_set_maxdbs`).
        public var maxDatabases: Int = 16
        /// How many concurrent read transactions, across all processes (`mdb_env_set_maxreaders`).
        public var maxReaders: Int = 510
        /// What a commit promises; see ``Durability``.
        public var durability: Durability = .full
        /// Opens with `MDB_RDONLY`: no write transaction can begin and nothing is created.
        public var readOnly: Bool = false
        /// Creates the directory (and its parents) when it does not exist.
        public var createDirectory: Bool = true
        /// File mode for `data.mdb` and `lock.mdb` when they are created, set exactly
        /// whatever the process umask; existing files keep their mode. The default, `0600`,
        /// keeps the data from other users (directories this creates are `0700`).
        public var fileMode: UInt32 = 0o600
        /// How long a write that needs to grow the map waits for this process's other
        /// transactions to end before giving up with ``LMDBError/Code/mapFull``.
        public var growthTimeout: Duration = .seconds(30)
        /// Whether the kernel reads ahead around each page the map faults in (the default).
        ///
        /// `false` opens with `MDB_NORDAHEAD` (`madvise(MADV_RANDOM)` on the map): a read
        /// of a page that is not in memory then reads that page alone instead of the pages
        /// around it. For a store of many gigabytes read at random while its pages are not
        /// cached (after a restart), most of what read-ahead brings in is never used, and
        /// turning it off makes those reads many times faster; for smaller stores the pages
        /// around a fault are the ones the next reads want, and read-ahead warms them faster.
        public var readAhead: Bool = true

        /// Default options: 256 MiB initial map growing up to 1 TiB, 16 named databases,
        /// 510 readers, full durability, read-write.
        public init() {}

        var environmentFlags: UInt32 {
            // MDB_NOTLS: read transactions are not tied to a thread, so an async caller
            // may resume a read on another thread and readers do not pin TLS slots.
            var flags = UInt32(MDB_NOTLS) | durability.flags
            if readOnly { flags |= UInt32(MDB_RDONLY) }
            if !readAhead { flags |= UInt32(MDB_NORDAHEAD) }
            return flags
        }

        /// The options that must agree for two opens of one path to share a handle.
        func incompatibility(with other: Options) -> String? {
            if readOnly != other.readOnly { return "readOnly \(readOnly) vs \(other.readOnly)" }
            if durability != other.durability { return "durability \(durability) vs \(other.durability)" }
            if maxDatabases != other.maxDatabases { return "maxDatabases \(maxDatabases) vs \(other.maxDatabases)" }
            if maxReaders != other.maxReaders { return "maxReaders \(maxReaders) vs \(other.maxReaders)" }
            return nil
        }
    }
}
