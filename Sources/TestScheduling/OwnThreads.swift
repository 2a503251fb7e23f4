import Foundation
public import Testing

/// Runs each of a test's jobs on a thread of its own instead of Swift's cooperative pool.
///
/// The cooperative pool has one thread per core (two on CI). A test that blocks its thread
/// (waiting for a child process, joining threads, sleeping, or hours of CPU-bound work in a
/// synchronous `@Test`) holds one of them; two such tests at once stop every other task in
/// the process. The PostgreSQL suites' tasks then sat between two statements of an open
/// transaction until their deadlines all expired together. Suites that block take this
/// trait, so that the pool stays free for the tests that await.
public struct OwnThreads: SuiteTrait, TestTrait, TestScoping {
    public var isRecursive: Bool { true }

    public func provideScope(
        for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void
    ) async throws {
        // Only the innermost scope (a test case) moves: a suite's scope runs once around all.
        guard testCase != nil else { return try await function() }
        try await withTaskExecutorPreference(ThreadPerJobExecutor.shared) { try await function() }
    }
}

extension Trait where Self == OwnThreads {
    /// Run the test's code on threads of its own, off Swift's cooperative pool: for tests
    /// that block their thread (see ``OwnThreads``).
    public static var ownThreads: Self { OwnThreads() }
}

/// A task executor that starts a thread for each job it is given. Wasteful for real work,
/// right for tests that may block any thread they are given for minutes.
final class ThreadPerJobExecutor: TaskExecutor {
    static let shared = ThreadPerJobExecutor()

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        let thread = Thread { job.runSynchronously(on: executor) }
        // The power-loss and crash suites recurse through the store's code and JSON parser.
        thread.stackSize = 8 << 20
        thread.start()
    }
}
