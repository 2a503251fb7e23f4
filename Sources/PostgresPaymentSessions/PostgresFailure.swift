#if PostgreSQL
import PaymentSessionsCore
import PostgresNIO

/// How the PostgreSQL store reads the errors postgres-nio throws.
enum PostgresFailure {
    /// SQLSTATEs after which the whole transaction is run again: a serialization failure,
    /// a deadlock, and the one-selected-session index refusing a selection that a
    /// concurrent transaction took first (the retry reads that selection and releases it).
    static func isRetryable(_ error: any Error) -> Bool {
        if error is RetryTransaction { return true }
        guard let error = error as? PSQLError, error.code == .server, let state = error.serverInfo?[.sqlState] else {
            return false
        }
        switch state {
        case "40001", "40P01": return true
        case "23505": return error.serverInfo?[.constraintName] == PostgresSchema.oneSelectedIndex
        default: return false
        }
    }

    /// Whether the connection still talks after `error`: the server answered (or the error
    /// is ours), as opposed to a closed or failed connection.
    /// (A `ROLLBACK` sent on a connection the server has closed, after its `57P01`
    /// "terminating connection", never completes.)
    static func connectionIsUsable(after error: any Error) -> Bool {
        guard let error = error as? PSQLError else { return true }
        guard error.code == .server, let state = error.serverInfo?[.sqlState] else { return false }
        return kind(ofSQLState: state) != .unavailable && error.serverInfo?[.severity] != "FATAL"
    }

    /// The typed error for anything postgres-nio threw during `operation`.
    static func storeError(_ error: any Error, operation: String) -> PaymentSessionError {
        if let error = error as? PaymentSessionError { return error }
        return .storage(failure(error, operation: operation))
    }

    static func failure(_ error: any Error, operation: String) -> StorageFailure {
        guard let error = error as? PSQLError else {
            let kind: StorageFailure.Kind = error is CancellationError ? .failed : .unavailable
            return StorageFailure(
                backend: .postgresql, kind: kind, operation: operation, code: "", message: String(describing: error),
                underlying: error)
        }
        if error.code == .server, let info = error.serverInfo {
            let state = info[.sqlState] ?? ""
            let message = info[.message] ?? "server error"
            return StorageFailure(
                backend: .postgresql, kind: kind(ofSQLState: state), operation: operation, code: state, message: message,
                underlying: error)
        }
        // Not the server's answer: the connection failed, closed or timed out.
        let kind: StorageFailure.Kind = error.code == .queryCancelled ? .timeout : .unavailable
        return StorageFailure(
            backend: .postgresql, kind: kind, operation: operation, code: "\(error.code)",
            message: "\(error.code): \(error.underlying.map { String(describing: $0) } ?? "connection failed")",
            underlying: error)
    }

    static func kind(ofSQLState state: String) -> StorageFailure.Kind {
        switch state {
        case "57014", "55P03", "25P03": .timeout  // statement or lock timeout, idle in transaction timeout
        case "53100", "53200", "53300", "53400", "54000": .full  // disk, memory, connections, limits
        case "XX001", "XX002": .corrupted
        case "25006", "42501": .misuse  // read-only transaction, permission denied
        case _ where state.hasPrefix("08") || state.hasPrefix("57P"): .unavailable  // connection, shutdown, restart
        default: .failed
        }
    }
}

/// Thrown inside a transaction to run it again from the start: a concurrent transaction
/// changed what this one read (a pair created, a selection taken) in a way that a fresh
/// read resolves.
struct RetryTransaction: Error {
    let reason: String
}
#endif
