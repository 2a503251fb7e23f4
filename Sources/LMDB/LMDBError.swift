import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from the LMDB layer: the operation that failed and why.
///
/// Every `MDB_*` return code and every `errno` that liblmdb can return maps to one
/// ``Code``; the wrapper adds a few codes of its own for misuse it catches before
/// liblmdb sees it (an oversized key, a transaction used after its closure returned).
///
/// ```swift
/// do {
///     try env.write { txn in try txn.put(value, forKey: key, in: db) }
/// } catch let error as LMDBError where error.code == .mapFull {
///     // The map could not grow past `Environment.Options.maxMapSize`.
/// }
/// ```
public struct LMDBError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why an operation failed.
    public enum Code: Sendable, Equatable, Hashable {
        /// `MDB_KEYEXIST`: the key is already present and overwriting was not allowed.
        case keyExists
        /// `MDB_NOTFOUND`: no matching key or data item.
        case notFound
        /// `MDB_PAGE_NOTFOUND`: a requested page was not found (usually corruption).
        case pageNotFound
        /// `MDB_CORRUPTED`: a page has an invalid type.
        case corrupted
        /// `MDB_PANIC`: a fatal error happened earlier; the environment must be reopened.
        case panic
        /// `MDB_VERSION_MISMATCH`: the environment was written by another liblmdb version.
        case versionMismatch
        /// `MDB_INVALID`: the file is not an LMDB file.
        case invalidFile
        /// `MDB_MAP_FULL`: the map is full and could not grow within `maxMapSize`.
        case mapFull
        /// `MDB_DBS_FULL`: more named databases than `Options.maxDatabases`.
        case databasesFull
        /// `MDB_READERS_FULL`: every reader slot is taken (`Options.maxReaders`).
        case readersFull
        /// `MDB_TLS_FULL`: too many TLS keys in use.
        case tlsFull
        /// `MDB_TXN_FULL`: the transaction has too many dirty pages.
        case transactionFull
        /// `MDB_CURSOR_FULL`: cursor stack too deep (internal error).
        case cursorFull
        /// `MDB_PAGE_FULL`: page has not enough space (internal error).
        case pageFull
        /// `MDB_MAP_RESIZED`: another process grew the map beyond this process's size.
        case mapResized
        /// `MDB_INCOMPATIBLE`: the operation is incompatible with the database's flags.
        case incompatible
        /// `MDB_BAD_RSLOT`: invalid reuse of a reader locktable slot.
        case badReaderSlot
        /// `MDB_BAD_TXN`: the transaction must abort, has a child, or is invalid.
        case badTransaction
        /// `MDB_BAD_VALSIZE`: unsupported size of key, database name or data.
        case badValueSize
        /// `MDB_BAD_DBI`: the database handle changed unexpectedly.
        case badDatabaseHandle
        /// An operating system error (`errno`), such as `ENOSPC` or `EACCES`.
        case system(errno: Int32)
        /// A key was empty or longer than the environment's maximum key size
        /// (``Environment/maxKeySize``, 511 bytes with Debian's liblmdb).
        case invalidKeySize(size: Int, maximum: Int)
        /// A named database does not exist and was not asked to be created.
        case databaseNotFound(name: String)
        /// The environment was opened read-only and a write was attempted.
        case readOnlyEnvironment
        /// A transaction or cursor was used after its closure returned, or from a
        /// thread other than the one that began it.
        case transactionNotUsable(reason: String)
        /// A write transaction was begun on a thread that already holds one for the
        /// same environment; LMDB would deadlock.
        case nestedWriteTransaction
        /// The same directory is already open in this process with different options.
        case incompatibleOptions(reason: String)
        /// An unknown liblmdb return code.
        case unknown(Int32)

        /// Maps a liblmdb return code (an `MDB_*` constant or an `errno`).
        public init(lmdbReturnCode rc: Int32) {
            switch rc {
            case MDB_KEYEXIST: self = .keyExists
            case MDB_NOTFOUND: self = .notFound
            case MDB_PAGE_NOTFOUND: self = .pageNotFound
            case MDB_CORRUPTED: self = .corrupted
            case MDB_PANIC: self = .panic
            case MDB_VERSION_MISMATCH: self = .versionMismatch
            case MDB_INVALID: self = .invalidFile
            case MDB_MAP_FULL: self = .mapFull
            case MDB_DBS_FULL: self = .databasesFull
            case MDB_READERS_FULL: self = .readersFull
            case MDB_TLS_FULL: self = .tlsFull
            case MDB_TXN_FULL: self = .transactionFull
            case MDB_CURSOR_FULL: self = .cursorFull
            case MDB_PAGE_FULL: self = .pageFull
            case MDB_MAP_RESIZED: self = .mapResized
            case MDB_INCOMPATIBLE: self = .incompatible
            case MDB_BAD_RSLOT: self = .badReaderSlot
            case MDB_BAD_TXN: self = .badTransaction
            case MDB_BAD_VALSIZE: self = .badValueSize
            case MDB_BAD_DBI: self = .badDatabaseHandle
            case let rc where rc > 0: self = .system(errno: rc)
            default: self = .unknown(rc)
            }
        }

        /// The `errno` when this is an operating system error.
        public var errno: Int32? {
            if case .system(let value) = self { return value }
            return nil
        }

        /// A readable explanation, from liblmdb's own table where it has one.
        public var message: String {
            switch self {
            case .system(let value):
                return String(cString: strerror(value))
            case .invalidKeySize(let size, let maximum):
                return "key is \(size) bytes; keys must be 1 to \(maximum) bytes"
            case .databaseNotFound(let name):
                return "named database \"\(name)\" does not exist"
            case .readOnlyEnvironment:
                return "environment is open read-only"
            case .transactionNotUsable(let reason):
                return "transaction not usable: \(reason)"
            case .nestedWriteTransaction:
                return "this thread already holds a write transaction on this environment"
            case .incompatibleOptions(let reason):
                return "environment already open in this process with other options: \(reason)"
            case .unknown(let rc):
                return String(cString: mdb_strerror(rc))
            default:
                return String(cString: mdb_strerror(returnCode))
            }
        }

        /// The liblmdb return code this code stands for, or 0 for the wrapper's own codes.
        public var returnCode: Int32 {
            switch self {
            case .keyExists: MDB_KEYEXIST
            case .notFound: MDB_NOTFOUND
            case .pageNotFound: MDB_PAGE_NOTFOUND
            case .corrupted: MDB_CORRUPTED
            case .panic: MDB_PANIC
            case .versionMismatch: MDB_VERSION_MISMATCH
            case .invalidFile: MDB_INVALID
            case .mapFull: MDB_MAP_FULL
            case .databasesFull: MDB_DBS_FULL
            case .readersFull: MDB_READERS_FULL
            case .tlsFull: MDB_TLS_FULL
            case .transactionFull: MDB_TXN_FULL
            case .cursorFull: MDB_CURSOR_FULL
            case .pageFull: MDB_PAGE_FULL
            case .mapResized: MDB_MAP_RESIZED
            case .incompatible: MDB_INCOMPATIBLE
            case .badReaderSlot: MDB_BAD_RSLOT
            case .badTransaction: MDB_BAD_TXN
            case .badValueSize: MDB_BAD_VALSIZE
            case .badDatabaseHandle: MDB_BAD_DBI
            case .system(let value): value
            case .unknown(let rc): rc
            case .invalidKeySize, .databaseNotFound, .readOnlyEnvironment, .transactionNotUsable,
                .nestedWriteTransaction, .incompatibleOptions:
                0
            }
        }
    }

    /// Why the operation failed.
    public var code: Code
    /// The operation that failed, named after the liblmdb call or the wrapper method,
    /// e.g. `mdb_put(sessions)` or `mdb_env_open(/var/lib/store)`.
    public var operation: String

    /// Creates an error for `operation` with `code`.
    public init(_ code: Code, operation: String) {
        self.code = code
        self.operation = operation
    }

    /// For example `"mdb_put(sessions): MDB_MAP_FULL: Environment mapsize limit reached"`
    /// or `"mdb_txn_commit(/var/lib/store): ENOSPC: No space left on device"`.
    public var description: String {
        // liblmdb's own messages already start with the constant's name.
        if case .system(let value) = code, let name = LMDBError.constantName(value) {
            return "\(operation): \(name): \(code.message)"
        }
        return "\(operation): \(code.message)"
    }

    /// The C constant name of a common `errno`.
    static func constantName(_ rc: Int32) -> String? {
        switch rc {
        case ENOENT: "ENOENT"
        case EACCES: "EACCES"
        case EPERM: "EPERM"
        case EAGAIN: "EAGAIN"
        case ENOSPC: "ENOSPC"
        case EIO: "EIO"
        case ENOMEM: "ENOMEM"
        case EINVAL: "EINVAL"
        case EROFS: "EROFS"
        case EBUSY: "EBUSY"
        case EFBIG: "EFBIG"
        case ENOTDIR: "ENOTDIR"
        case EEXIST: "EEXIST"
        default: nil
        }
    }
}

/// Throws an ``LMDBError`` naming `operation` when `rc` is not `MDB_SUCCESS`.
@inline(__always)
func check(_ rc: Int32, _ operation: @autoclosure () -> String) throws(LMDBError) {
    if rc != MDB_SUCCESS {
        throw LMDBError(LMDBError.Code(lmdbReturnCode: rc), operation: operation())
    }
}
