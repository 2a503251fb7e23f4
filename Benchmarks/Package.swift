// swift-tools-version:6.1
// Benchmarks live in their own package so that the library's build and `swift test`
// stay lean: ordo-one/benchmark and GRDB.swift are only built here.
//
//   cd Benchmarks && swift package --disable-sandbox benchmark
//
// (--disable-sandbox: the plugin's sandbox stops LMDB and SQLite from creating files.)
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory (a clone may be called anything).
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "payment-sessions-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(path: "../Tools"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // SQLite's C API, for the peer at its best (Debian: libsqlite3-dev).
        // liblmdb's C API, for the raw floor.
        .systemLibrary(name: "CLMDBFloor", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"]), .brew(["lmdb"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]),
        // The implementations of one workload: the store on LMDB and on PostgreSQL, raw
        // liblmdb, SQLite through its C API and through GRDB.
        .target(
            name: "BenchmarkSupport",
            dependencies: [
                .product(name: "PaymentSessions", package: root),
                .product(name: "PostgresPaymentSessions", package: root),
                .product(name: "TestSupport", package: "Tools"),
                "CLMDBFloor",
                "CSQLite",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "StoreBenchmarks",
            dependencies: [
                "BenchmarkSupport",
                .product(name: "PaymentSessions", package: root),
                .product(name: "PostgresPaymentSessions", package: root),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/StoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A fixed workload to profile with callgrind (see Sources/Profile/main.swift).
        .executableTarget(
            name: "Profile",
            dependencies: [
                "BenchmarkSupport", .product(name: "PaymentSessions", package: root),
                .product(name: "Metrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Durable creates on PostgreSQL at 8, 32 and 128 callers beside pgbench (see
        // Sources/PostgresScaling/main.swift).
        .executableTarget(
            name: "PostgresScaling",
            dependencies: [
                .product(name: "PaymentSessions", package: root),
                .product(name: "PostgresPaymentSessions", package: root),
                .product(name: "TestSupport", package: "Tools"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The 1M-session scale run (see Sources/Scale/main.swift).
        .executableTarget(
            name: "Scale",
            dependencies: [
                "BenchmarkSupport", .product(name: "PaymentSessions", package: root),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
