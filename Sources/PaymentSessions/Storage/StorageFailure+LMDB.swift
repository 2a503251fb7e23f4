public import LMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
public import Darwin
#endif

extension StorageFailure {
    /// The backend-neutral form of an LMDB failure, keeping the `LMDBError` as
    /// `StorageFailure/underlying` (read it back with ``lmdbError``).
    public init(_ error: LMDBError) {
        self.init(
            backend: .lmdb, kind: Self.kind(of: error.code), operation: error.operation,
            code: Self.codeName(error.code), message: error.code.message, underlying: error)
    }

    /// The LMDB error behind this failure, when the LMDB store reported it.
    public var lmdbError: LMDBError? { underlying as? LMDBError }

    static func kind(of code: LMDBError.Code) -> Kind {
        switch code {
        case .mapFull, .databasesFull, .readersFull, .tlsFull, .transactionFull: .full
        case .system(let value) where value == ENOSPC || value == EDQUOT || value == EFBIG: .full
        case .system(let value) where value == ETIMEDOUT: .timeout
        case .pageNotFound, .corrupted, .panic, .versionMismatch, .invalidFile: .corrupted
        case .readOnlyEnvironment, .transactionNotUsable, .nestedWriteTransaction, .incompatibleOptions,
            .badTransaction, .badReaderSlot, .badDatabaseHandle, .invalidKeySize, .badValueSize:
            .misuse
        default: .failed
        }
    }

    static func codeName(_ code: LMDBError.Code) -> String {
        switch code {
        case .keyExists: "MDB_KEYEXIST"
        case .notFound: "MDB_NOTFOUND"
        case .pageNotFound: "MDB_PAGE_NOTFOUND"
        case .corrupted: "MDB_CORRUPTED"
        case .panic: "MDB_PANIC"
        case .versionMismatch: "MDB_VERSION_MISMATCH"
        case .invalidFile: "MDB_INVALID"
        case .mapFull: "MDB_MAP_FULL"
        case .databasesFull: "MDB_DBS_FULL"
        case .readersFull: "MDB_READERS_FULL"
        case .tlsFull: "MDB_TLS_FULL"
        case .transactionFull: "MDB_TXN_FULL"
        case .cursorFull: "MDB_CURSOR_FULL"
        case .pageFull: "MDB_PAGE_FULL"
        case .mapResized: "MDB_MAP_RESIZED"
        case .incompatible: "MDB_INCOMPATIBLE"
        case .badReaderSlot: "MDB_BAD_RSLOT"
        case .badTransaction: "MDB_BAD_TXN"
        case .badValueSize: "MDB_BAD_VALSIZE"
        case .badDatabaseHandle: "MDB_BAD_DBI"
        case .system(let value): "errno \(value)"
        case .invalidKeySize: "invalid_key_size"
        case .databaseNotFound: "database_not_found"
        case .readOnlyEnvironment: "read_only"
        case .transactionNotUsable: "transaction_not_usable"
        case .nestedWriteTransaction: "nested_write"
        case .incompatibleOptions: "incompatible_options"
        case .unknown(let rc): "rc \(rc)"
        }
    }
}

extension PaymentSessionError {
    /// A storage failure reported by LMDB.
    static func lmdb(_ error: LMDBError) -> PaymentSessionError { .storage(StorageFailure(error)) }
}
