// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "payment-sessions",
    platforms: [.macOS(.v15)],
    products: [
        // CLMDB is a product so that Benchmarks/ can measure raw liblmdb calls (the floor).
        .library(name: "CLMDB", targets: ["CLMDB"]),
        .library(name: "LMDB", targets: ["LMDB"]),
        .library(name: "PaymentSessions", targets: ["PaymentSessions"]),
        .executable(name: "payment-sessions", targets: ["PaymentSessionsCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"]), .brew(["lmdb"])]
        ),
        .target(name: "LMDB", dependencies: ["CLMDB", .product(name: "Logging", package: "swift-log")]),
        .target(name: "PaymentSessions", dependencies: ["LMDB", .product(name: "Logging", package: "swift-log")]),
        .executableTarget(
            name: "PaymentSessionsCLI",
            dependencies: [
                "PaymentSessions",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Test helpers (temporary directories, child processes); not a product.
        .target(name: "TestSupport"),
        // A tiny second process for the LMDB layer's cross-process tests.
        .executableTarget(name: "LMDBProbe", dependencies: ["LMDB", "TestSupport"]),
        .testTarget(
            name: "LMDBTests",
            dependencies: ["LMDB", "LMDBProbe", "TestSupport", .product(name: "Logging", package: "swift-log")]
        ),
        // A child process for the reliability suites: crash, race and disk-fault writers.
        .executableTarget(name: "StoreTorture", dependencies: ["PaymentSessions"]),
        .testTarget(
            name: "PaymentSessionsTests",
            dependencies: [
                "PaymentSessions",
                "StoreTorture",
                "TestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "InMemoryLogging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "PaymentSessionsCLITests",
            dependencies: ["PaymentSessions", "PaymentSessionsCLI", "TestSupport"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
