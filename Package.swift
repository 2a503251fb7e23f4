// swift-tools-version:6.1
import PackageDescription

let testSupport = Target.Dependency.product(name: "TestSupport", package: "Tools")

/// What the embedded store's test targets use.
let storeTestDependencies: [Target.Dependency] = [
    "PaymentSessions",
    "LMDB",
    "StoreTestFixtures",
    testSupport,
    "TestScheduling",
    .product(name: "PropertyBased", package: "swift-property-based"),
    .product(name: "Logging", package: "swift-log"),
    .product(name: "InMemoryLogging", package: "swift-log"),
]

let package = Package(
    name: "payment-sessions",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "LMDB", targets: ["LMDB"]),
        .library(name: "PaymentSessionsCore", targets: ["PaymentSessionsCore"]),
        .library(name: "PaymentSessions", targets: ["PaymentSessions"]),
        .library(name: "PostgresPaymentSessions", targets: ["PostgresPaymentSessions"]),
        .executable(name: "payment-sessions", targets: ["PaymentSessionsCLI"]),
    ],
    traits: [
        .trait(
            name: "PostgreSQL",
            description: """
                The PostgreSQL store (PostgresPaymentSessions) and postgres:// stores in the CLI. \
                Without it nothing of postgres-nio is resolved or built: an embedded-only \
                checkout depends on this package with `traits: []`.
                """),
        .default(enabledTraits: ["PostgreSQL"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
        // The DocC reference and articles: `swift package generate-documentation`.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
        // The tests' tools (TestSupport, the IORecord recorder), a package of their own so
        // that this one's products are only what users link.
        .package(path: "Tools"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"]), .brew(["lmdb"])]
        ),
        .target(
            name: "LMDB",
            dependencies: [
                "CLMDB", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The strict JSON reader and writer of `data` and of the session's JSON form.
        .target(name: "StrictJSON"),
        // The backend-neutral core: the model, its rules, errors, JSON form and the store
        // protocol. Knows no storage engine.
        .target(
            name: "PaymentSessionsCore",
            dependencies: [
                "StrictJSON", .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ]
        ),
        // The embedded store on LMDB (re-exports the core).
        .target(
            name: "PaymentSessions",
            dependencies: [
                "PaymentSessionsCore", "LMDB", .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The PostgreSQL store: its own target and product, so that building the embedded
        // store never builds postgres-nio, and behind the PostgreSQL trait, so that a
        // package that turns the trait off never resolves it. Every target's use of
        // postgres-nio, swift-nio-ssl or swift-service-lifecycle is conditional on the trait
        // (one unconditional use, in any target but a test, resolves them all).
        .target(
            name: "PostgresPaymentSessions",
            dependencies: [
                "PaymentSessionsCore",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "NIOSSL", package: "swift-nio-ssl", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "Logging", package: "swift-log"),
                .product(
                    name: "ServiceLifecycle", package: "swift-service-lifecycle", condition: .when(traits: ["PostgreSQL"])),
            ]
        ),
        .executableTarget(
            name: "PaymentSessionsCLI",
            dependencies: [
                "PaymentSessions",
                .target(name: "PostgresPaymentSessions", condition: .when(traits: ["PostgreSQL"])),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The `.ownThreads` trait, for test suites that block their threads.
        .target(name: "TestScheduling"),
        // A tiny second process for the LMDB layer's cross-process tests.
        .executableTarget(name: "LMDBProbe", dependencies: ["LMDB", testSupport]),
        // The strict JSON reader and writer on their own.
        .testTarget(name: "StrictJSONTests", dependencies: ["StrictJSON", testSupport]),
        // The core's rules over values: no store, no disk.
        .testTarget(name: "PaymentSessionsCoreTests", dependencies: ["PaymentSessionsCore"]),
        .testTarget(
            name: "LMDBTests",
            dependencies: ["LMDB", "LMDBProbe", testSupport, "TestScheduling", .product(name: "Logging", package: "swift-log")]
        ),
        // Recordings of a process's writes and flushes, and the states a power cut could
        // leave them in (the power-loss suite).
        .target(name: "PowerLoss", dependencies: [testSupport]),
        // A child process for the reliability suites: crash, race and disk-fault writers.
        .executableTarget(name: "StoreTorture", dependencies: ["PaymentSessions", "LMDB"]),
        // What the store's test targets share: fixtures and forged records.
        .target(
            name: "StoreTestFixtures",
            dependencies: ["PaymentSessions", "LMDB", testSupport, .product(name: "Logging", package: "swift-log")],
            path: "Tests/StoreTestFixtures"
        ),
        .testTarget(name: "PaymentSessionsTests", dependencies: storeTestDependencies),
        // The slow suites: crashes, power cuts, disk faults, hostile input, many processes.
        .testTarget(
            name: "ReliabilityTests",
            dependencies: storeTestDependencies + ["StoreTorture", "PowerLoss"]
        ),
        // One behavioural suite, run against every backend.
        .testTarget(
            name: "StoreConformanceTests",
            dependencies: [
                "PaymentSessions",
                "PostgresPaymentSessions",
                testSupport,
                "TestScheduling",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]
        ),
        .testTarget(
            name: "PaymentSessionsCLITests",
            dependencies: ["PaymentSessions", "PaymentSessionsCLI", testSupport, "TestScheduling"]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Hummingbird's settings: every existential spelled `any`, imports internal unless marked
// `public import`, and members visible only from modules a file imports itself.
for target in package.targets where target.type != .system {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [
            .enableUpcomingFeature("ExistentialAny"),
            .enableUpcomingFeature("InternalImportsByDefault"),
            .enableUpcomingFeature("MemberImportVisibility"),
        ]
}
