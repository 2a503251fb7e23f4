import ArgumentParser
import Foundation
import PaymentSessions

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a realistic checkout workload against the store, then verify it.",
        discussion: """
            Workers (concurrent tasks) act as customers on random carts: they initialise sessions \
            for 1-3 providers (with idempotency keys), retry creates, switch their selection, \
            update provider data, authorize or cancel, and complete or abandon carts. Commits are \
            durable. The same workload runs on either backend, through the store protocol. A \
            progress bar goes to stderr when it is a terminal; the summary table (or --json) \
            goes to stdout. Afterwards the store is checked (LMDB: verify; PostgreSQL: the rules \
            read back through the API). Exits 5 when the check finds a problem, 4 on a storage \
            failure.
            """)

    @OptionGroup var location: StoreLocation
    // Numbers are taken as text and checked here, so that every bad value (not a number,
    // past 64 bits, out of range) gets the tool's invalid_input error, not a usage text.
    @Option(help: "How many carts the customers shop on, 1 to 1000000.") var carts = "200"
    @Option(help: "How many concurrent workers (tasks), 1 to 256.") var workers = "4"
    @Option(help: "How long to run, in seconds, above 0 to 86400.") var duration = "10"
    @Flag(help: "Print the summary as JSON instead of a table.") var json = false

    func run() async throws {
        var exitStatus: Int32 = 0
        try await runReporting {
            let carts = try Parse.integer(carts, field: "carts", in: 1...1_000_000)
            let workers = try Parse.integer(workers, field: "workers", in: 1...256)
            let duration = try Parse.decimal(duration, field: "duration", in: 0...86_400, excludingLowerBound: true)
            let json = json
            let run = Summary.Run(workers: workers, carts: carts, path: location.displayName)
            exitStatus = try await location.withStore(create: true) { store in
                let simulation = Simulation(store: store, carts: carts, workers: workers, duration: duration)
                let showProgress = isatty(STDERR_FILENO) == 1
                let tally = await simulation.run { fraction, operations in
                    guard showProgress else { return }
                    let width = 30
                    let filled = Int(fraction * Double(width))
                    Output.diagnostic(
                        "\r[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
                            + "\(String(format: "%5.1f", fraction * duration))s \(operations) operations")
                }
                if showProgress { Output.diagnostic("\n") }
                let check = try await Summary.Check(of: store)
                let summary = Summary(tally: tally, seconds: duration, check: check)
                Output.line(json ? summary.json(run).jsonText : summary.table(run))
                for failure in tally.failures.prefix(10) { Output.diagnostic("failure: \(failure)\n") }
                return !tally.failures.isEmpty ? 4 : check.isClean ? 0 : 5
            }
        }
        if exitStatus != 0 {
            let body: JSONValue = [
                "error": [
                    "code": .string(exitStatus == 5 ? "verify_failed" : "storage"),
                    "message": .string(exitStatus == 5 ? "verify found problems after the simulation" : "operations failed during the simulation"),
                ]
            ]
            Output.diagnostic(body.jsonText + "\n")
            throw ExitCode(exitStatus)
        }
    }
}

/// Percentiles and totals of a simulation.
struct Summary {
    struct Row {
        var name: String
        var count: Int
        var rejected: Int
        var p50: Double
        var p99: Double
        var max: Double
    }

    /// The store's check after the run: LMDB's `verify`, or the rules read back through the
    /// API on a backend without one.
    struct Check {
        var sessions: Int
        var problems: [String]
        var isClean: Bool { problems.isEmpty }

        init(of store: any PaymentSessionStoring) async throws {
            if let store = store as? PaymentSessionStore {
                let report = try store.verify()
                sessions = report.sessions
                problems = report.problems.map(\.description)
            } else {
                let report = try await store.checkRules()
                sessions = report.sessions
                problems = report.problems.map(\.description)
            }
        }
    }

    var rows: [Row] = []
    var total: Row
    var seconds: Double
    var check: Check
    var failures: Int

    init(tally: Simulation.Tally, seconds: Double, check: Check) {
        func row(_ name: String, _ nanos: [UInt64], rejected: Int) -> Row {
            let sorted = nanos.sorted()
            func percentile(_ p: Double) -> Double {
                guard !sorted.isEmpty else { return 0 }
                let index = Int((p * Double(sorted.count - 1)).rounded(.up))
                return Double(sorted[index]) / 1e6
            }
            return Row(name: name, count: sorted.count, rejected: rejected, p50: percentile(0.5), p99: percentile(0.99),
                max: Double(sorted.last ?? 0) / 1e6)
        }
        for kind in Simulation.Kind.allCases {
            guard let values = tally.latencies[kind], !values.isEmpty else { continue }
            rows.append(row(kind.rawValue, values, rejected: tally.rejected[kind] ?? 0))
        }
        total = row("total", tally.latencies.values.flatMap { $0 }, rejected: tally.rejected.values.reduce(0, +))
        self.seconds = seconds
        self.check = check
        failures = tally.failures.count
    }

    /// What the summary reports the run was.
    struct Run {
        var workers: Int
        var carts: Int
        var path: String
    }

    func table(_ run: Run) -> String {
        func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
            let padding = String(repeating: " ", count: max(0, width - text.count))
            return left ? text + padding : padding + text
        }
        func format(_ value: Double) -> String { String(format: "%.2f", value) }
        var lines = [
            "payment-sessions simulate: \(run.workers) workers, \(run.carts) carts, "
                + "\(format(seconds)) s, store \(run.path)",
            "",
            pad("operation", 24, left: true) + pad("count", 9) + pad("rejected", 10) + pad("p50 ms", 9) + pad("p99 ms", 9)
                + pad("max ms", 9),
        ]
        for row in rows + [total] {
            lines.append(
                pad(row.name, 24, left: true) + pad(String(row.count), 9) + pad(String(row.rejected), 10) + pad(format(row.p50), 9)
                    + pad(format(row.p99), 9) + pad(format(row.max), 9))
        }
        lines.append("")
        lines.append("throughput: \(format(Double(total.count) / seconds)) operations/s; failures: \(failures)")
        lines.append(
            "rejected: refused by a rule because another customer changed the cart first (expected under contention)")
        lines.append(
            "verify: \(check.isClean ? "ok" : "FAILED"), \(check.sessions) sessions, \(check.problems.count) problems")
        for problem in check.problems.prefix(10) { lines.append("  \(problem)") }
        return lines.joined(separator: "\n")
    }

    func json(_ run: Run) -> JSONValue {
        func number(_ value: Double) -> JSONValue { .number(JSONNumber(text: String(format: "%.3f", value))!) }
        var operations: [String: JSONValue] = [:]
        for row in rows + [total] {
            operations[row.name] = [
                "count": .number(JSONNumber(row.count)), "rejected": .number(JSONNumber(row.rejected)), "p50_ms": number(row.p50),
                "p99_ms": number(row.p99), "max_ms": number(row.max),
            ]
        }
        return [
            "workers": .number(JSONNumber(run.workers)), "carts": .number(JSONNumber(run.carts)),
            "seconds": number(seconds), "operations": .object(operations),
            "throughput_per_second": number(Double(total.count) / seconds), "failures": .number(JSONNumber(failures)),
            "verify": ["clean": .bool(check.isClean), "sessions": .number(JSONNumber(check.sessions)),
                "problems": .number(JSONNumber(check.problems.count))],
        ]
    }
}
