import Benchmark
import BenchmarkSupport
import Foundation
import PaymentSessions
import PostgresPaymentSessions

/// Every scenario runs its implementations side by side in one process: `store` (the
/// public API on LMDB), `raw` (liblmdb calls doing the same puts and gets: the floor),
/// `sqlite` (SQLite at its best: the C API, prepared statements, WAL, `synchronous=FULL`),
/// `grdb` (SQLite through GRDB.swift, tuned, same schema) and `postgres` (the
/// same API on a PostgreSQL server on loopback, `fsync` on; see ``PostgresFixture``).
///
///     cd Benchmarks && swift package --disable-sandbox benchmark
let benchmarks: @Sendable () -> Void = {
    let metrics: [BenchmarkMetric] = [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident]
    let reads = Benchmark.Configuration(metrics: metrics, scalingFactor: .kilo, maxDuration: .seconds(2), maxIterations: 1000)
    let writes = Benchmark.Configuration(metrics: metrics, maxDuration: .seconds(3), maxIterations: 2000)
    let fixtures = Fixtures.shared
    let n = fixtures.preloaded
    let ids = fixtures.ids
    let carts = fixtures.carts

    // MARK: get by id (a decoded session)

    Benchmark("get by id: store", configuration: reads) { benchmark in
        let store = fixtures.store()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? store.session(id: ids[(i &* 7919) % n]))
        }
    }
    Benchmark("get by id: raw", configuration: reads) { benchmark in
        let raw = fixtures.raw()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(raw.get(id: ids[(i &* 7919) % n]))
        }
    }
    Benchmark("get by id: grdb", configuration: reads) { benchmark in
        let sqlite = fixtures.sqlite()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? sqlite.get(id: ids[(i &* 7919) % n]))
        }
    }
    Benchmark("get by id: grdb queue", configuration: reads) { benchmark in
        let sqlite = fixtures.sqlite()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? sqlite.get(id: ids[(i &* 7919) % n], from: sqlite.queue))
        }
    }
    Benchmark("get by id: sqlite", configuration: reads) { benchmark in
        let sqlite = fixtures.bestSQLite()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? sqlite.get(id: ids[(i &* 7919) % n]))
        }
    }

    if PostgresFixture.isAvailable {
        Benchmark("get by id: postgres", configuration: reads) { benchmark in
            guard let store = try? await PostgresFixture.shared.store() else { return }
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                blackHole(try? await store.session(id: ids[(i &* 7919) % n]))
            }
        }
    }

    // MARK: a cart's sessions (three per cart)

    Benchmark("cart sessions: store", configuration: reads) { benchmark in
        let store = fixtures.store()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? store.sessions(cartID: carts[(i &* 7919) % n]))
        }
    }
    Benchmark("cart sessions: raw", configuration: reads) { benchmark in
        let raw = fixtures.raw()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(raw.cartSessions(cart: carts[(i &* 7919) % n]))
        }
    }
    Benchmark("cart sessions: grdb", configuration: reads) { benchmark in
        let sqlite = fixtures.sqlite()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? sqlite.cartSessions(cart: carts[(i &* 7919) % n]))
        }
    }
    Benchmark("cart sessions: grdb queue", configuration: reads) { benchmark in
        let sqlite = fixtures.sqlite()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? sqlite.cartSessions(cart: carts[(i &* 7919) % n], from: sqlite.queue))
        }
    }
    Benchmark("cart sessions: sqlite", configuration: reads) { benchmark in
        let sqlite = fixtures.bestSQLite()
        benchmark.startMeasurement()
        for i in benchmark.scaledIterations {
            blackHole(try? sqlite.cartSessions(cart: carts[(i &* 7919) % n]))
        }
    }

    if PostgresFixture.isAvailable {
        Benchmark("cart sessions: postgres", configuration: reads) { benchmark in
            guard let store = try? await PostgresFixture.shared.store() else { return }
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                blackHole(try? await store.sessions(cartID: carts[(i &* 7919) % n]))
            }
        }
    }

    // MARK: bulk create, 1,000 sessions in one durable transaction

    let bulk = Benchmark.Configuration(metrics: metrics, scalingFactor: .kilo, maxDuration: .seconds(3), maxIterations: 50)
    Benchmark("bulk create: store", configuration: bulk) { benchmark in
        let store = fixtures.store()
        let seed = fixtures.freshSeed()
        let inputs = benchmark.scaledIterations.map { Workload.newSession($0, seed: seed) }
        benchmark.startMeasurement()
        _ = try? store.write { tx in
            for input in inputs { try tx.create(input) }
        }
    }
    // `data` as a provider's JSON text, checked inside the measurement: against the
    // same floor, which writes a byte blob in place of `data`.
    Benchmark("bulk create: store, data as text", configuration: bulk) { benchmark in
        let store = fixtures.store()
        let seed = fixtures.freshSeed()
        let fields = benchmark.scaledIterations.map { Workload.floorFields($0, seed: seed) }
        let texts = benchmark.scaledIterations.map { Workload.dataText($0) }
        benchmark.startMeasurement()
        _ = try? store.write { tx in
            for index in fields.indices { try tx.create(Workload.newSession(fields[index], dataText: texts[index])) }
        }
    }
    Benchmark("bulk create: raw", configuration: bulk) { benchmark in
        let raw = fixtures.raw()
        let seed = fixtures.freshSeed()
        let inputs = benchmark.scaledIterations.map { Workload.floorFields($0, seed: seed) }
        benchmark.startMeasurement()
        raw.createMany(inputs.count) { inputs[$0] }
    }
    Benchmark("bulk create: grdb", configuration: bulk) { benchmark in
        let sqlite = fixtures.sqlite()
        let seed = fixtures.freshSeed()
        benchmark.startMeasurement()
        try? sqlite.createMany(benchmark.scaledIterations, seed: seed)
    }
    Benchmark("bulk create: sqlite", configuration: bulk) { benchmark in
        let sqlite = fixtures.bestSQLite()
        let seed = fixtures.freshSeed()
        benchmark.startMeasurement()
        try? sqlite.createMany(benchmark.scaledIterations, seed: seed)
    }

    if PostgresFixture.isAvailable {
        // One unit of 1,000 creates: one transaction, one statement round trip per write.
        Benchmark("bulk create: postgres", configuration: bulk) { benchmark in
            guard let store = try? await PostgresFixture.shared.store() else { return }
            let seed = fixtures.freshSeed()
            let writes = benchmark.scaledIterations.map { PaymentSessionWrite.create(Workload.newSession($0, seed: seed)) }
            benchmark.startMeasurement()
            blackHole(try? await store.perform(writes))
        }
    }

    // MARK: durable create, one per transaction

    Benchmark("durable create: store", configuration: writes) { benchmark in
        let store = fixtures.store()
        let seed = fixtures.freshSeed()
        benchmark.startMeasurement()
        blackHole(try? store.create(Workload.newSession(0, seed: seed)))
    }
    // What skipping the meta page's own flush gives (the last commit may be lost on a
    // system crash; see README's durability notes).
    Benchmark("durable create: store noMetaSync", configuration: writes) { benchmark in
        let store = fixtures.store(durability: .noMetaSync)
        let seed = fixtures.freshSeed()
        benchmark.startMeasurement()
        blackHole(try? store.create(Workload.newSession(0, seed: seed)))
    }
    Benchmark("durable create: raw", configuration: writes) { benchmark in
        let raw = fixtures.raw()
        let seed = fixtures.freshSeed()
        benchmark.startMeasurement()
        raw.create(
            id: Workload.sessionID(0, seed: seed), cart: Workload.cartID(0, seed: seed), provider: Workload.providerID(0),
            key: Workload.idempotencyKey(0, seed: seed))
    }
    Benchmark("durable create: grdb", configuration: writes) { benchmark in
        let sqlite = fixtures.sqlite()
        let seed = fixtures.freshSeed()
        benchmark.startMeasurement()
        try? sqlite.create(0, seed: seed)
    }
    Benchmark("durable create: sqlite", configuration: writes) { benchmark in
        let sqlite = fixtures.bestSQLite()
        let seed = fixtures.freshSeed()
        benchmark.startMeasurement()
        try? sqlite.create(0, seed: seed)
    }

    if PostgresFixture.isAvailable {
        Benchmark("durable create: postgres", configuration: writes) { benchmark in
            guard let store = try? await PostgresFixture.shared.store() else { return }
            let seed = fixtures.freshSeed()
            benchmark.startMeasurement()
            blackHole(try? await store.create(Workload.newSession(0, seed: seed)))
        }
    }

    // MARK: switch the selected session (durable)

    nonisolated(unsafe) var flip = 0
    Benchmark("select switch: store", configuration: writes) { benchmark in
        let store = fixtures.store()
        flip += 1
        benchmark.startMeasurement()
        blackHole(try? store.select(id: ids[flip % 3]))
    }
    Benchmark("select switch: raw", configuration: writes) { benchmark in
        let raw = fixtures.raw()
        flip += 1
        benchmark.startMeasurement()
        raw.select(id: ids[flip % 3], cart: carts[0])
    }
    Benchmark("select switch: grdb", configuration: writes) { benchmark in
        let sqlite = fixtures.sqlite()
        flip += 1
        benchmark.startMeasurement()
        try? sqlite.select(id: ids[flip % 3], cart: carts[0])
    }
    Benchmark("select switch: sqlite", configuration: writes) { benchmark in
        let sqlite = fixtures.bestSQLite()
        flip += 1
        benchmark.startMeasurement()
        try? sqlite.select(id: ids[flip % 3], cart: carts[0])
    }

    if PostgresFixture.isAvailable {
        Benchmark("select switch: postgres", configuration: writes) { benchmark in
            guard let store = try? await PostgresFixture.shared.store() else { return }
            flip += 1
            let id = ids[flip % 3]
            benchmark.startMeasurement()
            blackHole(try? await store.select(id: id))
        }
    }

    // MARK: checkout mix: per 10 operations, 5 cart reads, 2 gets, 3 durable selects

    let mix = Benchmark.Configuration(metrics: metrics, scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 2000)
    Benchmark("checkout mix x10: store", configuration: mix) { benchmark in
        let store = fixtures.store()
        flip += 1
        benchmark.startMeasurement()
        for op in 0..<10 {
            let i = (flip &* 31 &+ op &* 7919) % n
            switch op {
            case 0..<5: blackHole(try? store.sessions(cartID: carts[i]))
            case 5..<7: blackHole(try? store.session(id: ids[i]))
            default: blackHole(try? store.select(id: ids[i]))
            }
        }
    }
    Benchmark("checkout mix x10: raw", configuration: mix) { benchmark in
        let raw = fixtures.raw()
        flip += 1
        benchmark.startMeasurement()
        for op in 0..<10 {
            let i = (flip &* 31 &+ op &* 7919) % n
            switch op {
            case 0..<5: blackHole(raw.cartSessions(cart: carts[i]))
            case 5..<7: blackHole(raw.get(id: ids[i]))
            default: raw.select(id: ids[i], cart: carts[i])
            }
        }
    }
    Benchmark("checkout mix x10: grdb", configuration: mix) { benchmark in
        let sqlite = fixtures.sqlite()
        flip += 1
        benchmark.startMeasurement()
        for op in 0..<10 {
            let i = (flip &* 31 &+ op &* 7919) % n
            switch op {
            case 0..<5: blackHole(try? sqlite.cartSessions(cart: carts[i]))
            case 5..<7: blackHole(try? sqlite.get(id: ids[i]))
            default: try? sqlite.select(id: ids[i], cart: carts[i])
            }
        }
    }

    if PostgresFixture.isAvailable {
        Benchmark("checkout mix x10: postgres", configuration: mix) { benchmark in
            guard let store = try? await PostgresFixture.shared.store() else { return }
            flip += 1
            let round = flip
            benchmark.startMeasurement()
            for op in 0..<10 {
                let i = (round &* 31 &+ op &* 7919) % n
                switch op {
                case 0..<5: blackHole(try? await store.sessions(cartID: carts[i]))
                case 5..<7: blackHole(try? await store.session(id: ids[i]))
                default: blackHole(try? await store.select(id: ids[i]))
                }
            }
        }
    }

    // MARK: concurrent durable creates: 1,024 creates per iteration, split over N callers
    //
    // Enough creates per iteration that the rate is the steady state (every caller keeps a
    // create in flight), not the ramp. Synchronous callers are threads of their own; async
    // callers are tasks.

    let concurrent = Benchmark.Configuration(metrics: [.wallClock, .throughput], maxDuration: .seconds(4), maxIterations: 100)
    let creates = 1024
    for callers in [1, 4, 16, 32, 64] {
        Benchmark("\(creates) durable creates, \(callers) callers: store async", configuration: concurrent) { benchmark in
            let store = fixtures.store()
            let seed = fixtures.freshSeed()
            benchmark.startMeasurement()
            await Workload.spread(creates, overTasks: callers) { _ = try? await store.create(Workload.newSession($0, seed: seed)) }
        }
        Benchmark("\(creates) durable creates, \(callers) callers: store sync", configuration: concurrent) { benchmark in
            let store = fixtures.store()
            let seed = fixtures.freshSeed()
            benchmark.startMeasurement()
            Workload.spread(creates, overThreads: callers) { _ = try? store.create(Workload.newSession($0, seed: seed)) }
        }
        Benchmark("\(creates) durable creates, \(callers) callers: sqlite", configuration: concurrent) { benchmark in
            let connections = fixtures.bestSQLiteConnections(callers)
            let seed = fixtures.freshSeed()
            benchmark.startMeasurement()
            Workload.onThreads(callers) { thread in
                for index in stride(from: thread, to: creates, by: callers) { try? connections[thread].create(index, seed: seed) }
            }
        }
        Benchmark("\(creates) durable creates, \(callers) callers: grdb", configuration: concurrent) { benchmark in
            let sqlite = fixtures.sqlite()
            let seed = fixtures.freshSeed()
            benchmark.startMeasurement()
            await Workload.spread(creates, overTasks: callers) { i in
                _ = try? await sqlite.pool.write { db in try SQLiteSessions.insertForBenchmark(db, i, seed: seed) }
            }
        }
        if PostgresFixture.isAvailable {
            Benchmark("\(creates) durable creates, \(callers) callers: postgres", configuration: concurrent) { benchmark in
                guard let store = try? await PostgresFixture.shared.store() else { return }
                let seed = fixtures.freshSeed()
                benchmark.startMeasurement()
                await Workload.spread(creates, overTasks: callers) { _ = try? await store.create(Workload.newSession($0, seed: seed)) }
            }
        }
    }
}
