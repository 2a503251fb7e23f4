import Foundation
import Logging
import PaymentSessions
import PostgresPaymentSessions
import Synchronization
import TestSupport

/// The PostgreSQL store of the benchmarks, preloaded with the same sessions as the LMDB
/// one: on the server `BENCHMARK_POSTGRES_URL` names, else on a throwaway server on
/// loopback that this process starts with PostgreSQL's durable defaults (`fsync` on).
///
/// Built once per process, asynchronously: the pool runs on a task of its own for the
/// life of the process, and nothing here blocks a task's thread waiting for it.
public final class PostgresFixture: Sendable {
    public static let shared = PostgresFixture()

    /// Whether the PostgreSQL benchmarks can run here (a URL, or server binaries).
    public static var isAvailable: Bool {
        ProcessInfo.processInfo.environment["BENCHMARK_POSTGRES_URL"] != nil || PostgresServer.shouldRun
    }

    private let building = Mutex<Task<PostgresPaymentSessionStore, any Error>?>(nil)

    /// The preloaded store (the first call builds it).
    public func store() async throws -> PostgresPaymentSessionStore {
        let task = building.withLock { current in
            if let current { return current }
            let task = Task { try await Self.build() }
            current = task
            return task
        }
        return try await task.value
    }

    private static func build() async throws -> PostgresPaymentSessionStore {
        let url: String
        if let configured = ProcessInfo.processInfo.environment["BENCHMARK_POSTGRES_URL"] {
            url = configured
        } else {
            // Starting a server runs initdb and pg_ctl to completion: on a thread of its own.
            let server = try await withCheckedThrowingContinuation { continuation in
                Thread { continuation.resume(with: Result { try PostgresServer.startNew(durable: true) }) }.start()
            }
            url = server.url()
        }
        var configuration = try PostgresStoreURL(url).configuration
        // One connection per concurrent caller of the largest concurrent scenario.
        configuration.options.maximumConnections = 128
        var options = PostgresPaymentSessionStore.Options()
        options.logger = Logger(label: "benchmarks") { _ in SwiftLogNoOpLogHandler() }
        let store = PostgresPaymentSessionStore(configuration: configuration, options: options)
        Task.detached { try? await store.run() }
        try await store.prepareSchema()
        let preloaded = Fixtures.shared.preloaded
        if try await store.count() == 0 {
            for start in stride(from: 0, to: preloaded, by: 1000) {
                try await store.perform((start..<min(start + 1000, preloaded)).map { .create(Workload.newSession($0)) })
            }
        }
        return store
    }
}
