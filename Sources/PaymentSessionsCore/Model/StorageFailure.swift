/// A failure of the storage engine under a store: the disk, LMDB, or the PostgreSQL
/// server and the connection to it.
///
/// It names the backend, the operation that failed, the engine's own code (an `MDB_*`
/// constant or `errno` name for LMDB, a SQLSTATE for PostgreSQL) and message, and sorts
/// the failure into a ``Kind`` that a caller can act on without knowing the engine:
///
/// ```swift
/// do {
///     try await store.select(id: id)
/// } catch PaymentSessionError.storage(let failure) where failure.kind == .unavailable {
///     // The server restarted or the connection dropped: nothing was written; retry later.
/// }
/// ```
///
/// The engine's own error, when there is one, is kept in ``underlying`` (the LMDB store's
/// `lmdbError` reads it back as an `LMDBError`); it takes no part in equality.
public struct StorageFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// The engine that failed, by name. Open, as a store on another engine names its own
    /// (`StorageFailure.Backend(rawValue: "sqlite")`); compare with `==`.
    public struct Backend: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
        /// The engine's name, as messages and metrics print it.
        public let rawValue: String

        /// The backend named `rawValue`.
        public init(rawValue: String) { self.rawValue = rawValue }

        /// The embedded LMDB store.
        public static let lmdb = Backend(rawValue: "lmdb")
        /// A PostgreSQL server.
        public static let postgresql = Backend(rawValue: "postgresql")

        public var description: String { rawValue }
    }

    /// What kind of failure this is, the same on every backend.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        /// No room: the disk, the map at its maximum size, the reader table, a quota.
        case full
        /// The engine cannot be reached or lost the connection mid-operation (a server
        /// restart, a killed connection). The operation did not take effect unless its
        /// result says so; it is safe to retry an idempotent request.
        case unavailable
        /// A statement, lock or growth timeout.
        case timeout
        /// The connection was lost, or the deadline passed, after the write's commit was
        /// sent and before its answer came: the write may or may not have been applied. Read
        /// before acting on it, or retry with the same idempotency key, which makes the
        /// retry return the session the first attempt created, if it did.
        case outcomeUnknown
        /// The engine found damaged data, or the files are not a store it can read.
        case corrupted
        /// The store was used against its rules (a write on a read-only store, a nested
        /// write on one thread); a bug in the caller.
        case misuse
        /// Anything else the engine reported.
        case failed
    }

    /// The engine that failed.
    public var backend: Backend
    /// The kind of failure.
    public var kind: Kind
    /// The operation that failed, e.g. `mdb_put(sessions)` or `select session`.
    public var operation: String
    /// The engine's code: an `MDB_*` constant or `errno` name, or a SQLSTATE.
    public var code: String
    /// The engine's message.
    public var message: String
    /// The engine's own error, when there is one.
    public var underlying: (any Error & Sendable)?

    /// Creates a failure.
    public init(
        backend: Backend, kind: Kind, operation: String, code: String, message: String,
        underlying: (any Error & Sendable)? = nil
    ) {
        self.backend = backend
        self.kind = kind
        self.operation = operation
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    /// For example `lmdb: mdb_put(sessions): MDB_MAP_FULL: Environment mapsize limit reached`.
    public var description: String {
        let codePart = code.isEmpty || message.hasPrefix(code) ? "" : "\(code): "
        return "\(backend.rawValue): \(operation): \(codePart)\(message)"
    }

    public static func == (lhs: StorageFailure, rhs: StorageFailure) -> Bool {
        lhs.backend == rhs.backend && lhs.kind == rhs.kind && lhs.operation == rhs.operation && lhs.code == rhs.code
            && lhs.message == rhs.message
    }
}
