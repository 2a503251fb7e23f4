import Foundation
import PaymentSessions

/// The three implementations, each preloaded with the same sessions, built once per process.
public final class Fixtures: @unchecked Sendable {
    public static let shared = Fixtures()

    /// Sessions preloaded for the read and update scenarios.
    public let preloaded = Int(ProcessInfo.processInfo.environment["BENCH_PRELOAD"] ?? "") ?? 10_000
    private let lock = NSLock()
    private var cache: [String: Any] = [:]
    private var nextSeed = 1

    /// The preloaded sessions' ids and cart ids, built before any measurement so that
    /// string building is not measured.
    public lazy var ids: [String] = (0..<preloaded).map { Workload.sessionID($0) }
    public lazy var carts: [String] = (0..<preloaded).map { Workload.cartID($0) }

    /// A seed no other scenario of this process used (fresh ids and keys).
    public func freshSeed() -> Int {
        lock.withLock {
            nextSeed += 1
            return nextSeed
        }
    }

    private func cached<T>(_ name: String, _ make: () throws -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        if let value = cache[name] as? T { return value }
        do {
            let value = try make()
            cache[name] = value
            return value
        } catch {
            fatalError("benchmark fixture \(name) failed: \(error)")
        }
    }

    /// The store's record size for workload session 0 (header, strings, data JSON, and the
    /// 4-byte checksum of record format 2).
    public static let recordSize: Int = {
        let s = Workload.newSession(0)
        return 19 + s.cartID.utf8.count + 1 + s.providerID.utf8.count + 1 + (s.idempotencyKey?.utf8.count ?? 0) + 1
            + Workload.dataJSON(0).utf8.count + 2 + 4
    }()

    public func store(durable: Bool = true) -> PaymentSessionStore {
        store(durability: durable ? .full : .noSync)
    }

    public func store(durability: PaymentSessionStore.Durability) -> PaymentSessionStore {
        cached("store-\(durability)") {
            var options = PaymentSessionStore.Options()
            options.environment.durability = durability
            options.environment.mapSize = 1 << 30
            let store = try PaymentSessionStore(path: Workload.directory("store"), options: options)
            try store.write { tx in
                for i in 0..<preloaded { try tx.create(Workload.newSession(i)) }
            }
            return store
        }
    }

    public func raw(durable: Bool = true) -> RawLMDB {
        cached("raw-\(durable)") {
            let raw = RawLMDB(path: Workload.directory("raw"), durable: durable, recordSize: Self.recordSize)
            raw.createMany(preloaded) { Workload.floorFields($0) }
            return raw
        }
    }

    public func sqlite(durable: Bool = true) -> SQLiteSessions {
        cached("sqlite-\(durable)") {
            let sqlite = try SQLiteSessions(path: Workload.directory("sqlite"), durable: durable)
            try sqlite.createMany(0..<preloaded, seed: 0)
            return sqlite
        }
    }

    public func bestSQLite(durable: Bool = true) -> BestSQLite {
        cached("best-sqlite-\(durable)") {
            let sqlite = try BestSQLite(directory: Workload.directory("best-sqlite"), durable: durable)
            guard sqlite.synchronousLevel() == (durable ? 2 : 0) else { throw BestSQLiteError(message: "synchronous not set") }
            try sqlite.createMany(0..<preloaded, seed: 0)
            return sqlite
        }
    }

    /// `count` connections to ``bestSQLite(durable:)``'s database, one per concurrent caller.
    public func bestSQLiteConnections(_ count: Int) -> [BestSQLite] {
        let first = bestSQLite()  // outside `cached`, whose lock is not reentrant
        return cached("best-sqlite-connections-\(count)") {
            try (0..<count).map { _ in try first.connection() }
        }
    }
}
