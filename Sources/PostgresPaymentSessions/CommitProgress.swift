#if PostgreSQL
import PaymentSessionsCore
import PostgresNIO
import Synchronization

/// Whether an operation's commit has been sent, so that a failure after it is reported as
/// ``StorageFailure/Kind/outcomeUnknown`` instead of "nothing written".
///
/// Once the statement that commits (`COMMIT`, or a write applied as its own transaction) is
/// on the wire, a lost connection or an expired deadline says nothing about whether the
/// server committed. Only an answer from the server (an error it reports) proves that it
/// did not. Carried as a task-local value from ``PostgresPaymentSessionStore/withDeadline(_:_:)``
/// to the statements, so that every path that commits marks it the same way.
final class CommitProgress: Sendable {
    @TaskLocal static var current: CommitProgress?

    private let sent = Atomic<Bool>(false)

    /// Marks the commit as sent; called just before the committing statement.
    static func commitSending() {
        current?.sent.store(true, ordering: .releasing)
    }

    /// `error`, or an outcome-unknown storage error when the commit was sent and `error`
    /// is not the server's own answer.
    func classify(_ error: any Error, operation: String) -> any Error {
        guard sent.load(ordering: .acquiring) else { return error }
        if let error = error as? PSQLError, error.code == .server,
            !["FATAL", "PANIC"].contains(error.serverInfo?[.severity] ?? "")
        {
            // The server answered with an error: the transaction did not commit. (A backend
            // that ends with FATAL, terminated mid-commit, proves nothing.)
            return error
        }
        if let error = error as? PaymentSessionError, case .storage(let failure) = error, failure.kind != .timeout {
            return error
        }
        if error is CancellationError { return error }
        return PaymentSessionError.storage(
            StorageFailure(
                backend: .postgresql, kind: .outcomeUnknown, operation: operation, code: "outcome_unknown",
                message:
                    "the connection was lost after the commit was sent, so the write may or may not have been applied (\(error)); read before retrying, or retry with the same idempotency key",
                underlying: error))
    }
}
#endif
