import Foundation
import PaymentSessions

/// The one workload every implementation runs: same ids, same keys, same record sizes.
public enum Workload {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
    public static let providers = ["manual", "stripe", "paypal"]

    /// `width` Crockford base32 digits for `value`, written straight into the string's
    /// storage so that generating inputs costs little next to what is measured.
    static func base32(_ value: Int, width: Int) -> String {
        String(unsafeUninitializedCapacity: width) { buffer in
            var rest = value
            for position in stride(from: width - 1, through: 0, by: -1) {
                buffer[position] = alphabet[rest & 31]
                rest >>= 5
            }
            return width
        }
    }

    /// A valid `ps_` + ULID id, increasing with `index` (`seed` separates runs).
    public static func sessionID(_ index: Int, seed: Int = 0) -> String {
        "ps_01JD" + base32(seed, width: 6) + base32(index, width: 16)
    }

    /// A realistic cart id (31 bytes, like `cart_01G8ZH853Y6TFXWPG5EYE81X63`); three sessions per cart.
    public static func cartID(_ index: Int, seed: Int = 0) -> String {
        "cart_01JD" + base32(seed, width: 6) + base32(index / 3, width: 16)
    }

    public static func providerID(_ index: Int) -> String { providers[index % 3] }

    public static func idempotencyKey(_ index: Int, seed: Int = 0) -> String { "idem-\(seed)-\(index)" }

    /// About 200 bytes of provider data as compact JSON.
    public static func data(_ index: Int) -> [String: JSONValue] {
        [
            "client_secret": .string("pi_3N\(base32(index, width: 12))_secret_\(base32(index * 7, width: 12))"),
            "intent": .string("pi_3N\(base32(index, width: 12))"), "amount": .number(JSONNumber(4200 + index % 1000)),
            "currency": "eur", "customer": .string("cus_\(base32(index * 13, width: 10))"),
            "metadata": ["order": .string("order_\(index)"), "channel": "web"],
        ]
    }

    public static func dataJSON(_ index: Int) -> String { JSONValue.object(data(index)).jsonText }

    /// `data(index)` as a provider's response would carry it: compact JSON text.
    public static func dataText(_ index: Int) -> [UInt8] { Array(dataJSON(index).utf8) }

    /// Session `index` with `data` given as text: the text is checked here, so build it
    /// inside a measurement.
    public static func newSession(
        _ fields: (id: String, cart: String, provider: String, key: String), dataText: [UInt8]
    ) throws -> NewPaymentSession {
        try NewPaymentSession(
            cartID: fields.cart, providerID: fields.provider, dataJSON: dataText, idempotencyKey: fields.key, id: fields.id)
    }

    /// What the floor writes for session `index`: id, cart, provider, idempotency key.
    public static func floorFields(_ index: Int, seed: Int = 0) -> (id: String, cart: String, provider: String, key: String) {
        (sessionID(index, seed: seed), cartID(index, seed: seed), providerID(index), idempotencyKey(index, seed: seed))
    }

    public static func newSession(_ index: Int, seed: Int = 0) -> NewPaymentSession {
        NewPaymentSession(
            cartID: cartID(index, seed: seed), providerID: providerID(index), data: data(index),
            idempotencyKey: idempotencyKey(index, seed: seed), id: sessionID(index, seed: seed))
    }

    /// A fresh directory for one store.
    public static func directory(_ name: String) -> String {
        let base = ProcessInfo.processInfo.environment["BENCH_DIR"] ?? NSTemporaryDirectory()
        let path = "\(base)/payment-sessions-bench-\(name)-\(getpid())-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

extension Workload {
    /// Runs `body` for indexes `0..<count` from `tasks` concurrent tasks, task `t` taking
    /// `t`, `t + tasks`, ... in turn: every task keeps one operation in flight.
    public static func spread(_ count: Int, overTasks tasks: Int, _ body: @escaping @Sendable (Int) async -> Void) async {
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<tasks {
                group.addTask {
                    for index in stride(from: task, to: count, by: tasks) { await body(index) }
                }
            }
        }
    }

    /// The same from `threads` threads of their own, for synchronous calls (Dispatch's
    /// `concurrentPerform` would run them on as many threads as there are cores, however many
    /// callers were asked for).
    public static func spread(_ count: Int, overThreads threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        onThreads(threads) { thread in
            for index in stride(from: thread, to: count, by: threads) { body(index) }
        }
    }

    /// Runs `body(thread)` on `threads` new threads at once and returns when all have.
    public static func onThreads(_ threads: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for thread in 0..<threads {
            group.enter()
            let worker = Thread {
                body(thread)
                group.leave()
            }
            worker.stackSize = 1 << 20
            worker.start()
        }
        group.wait()
    }
}
