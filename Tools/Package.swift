// swift-tools-version:6.1
// What the tests, benchmarks and the example use and no user links: the library's own
// package ships only the store. Depends on nothing of it, so every package here can
// depend on this one.
import PackageDescription

let package = Package(
    name: "payment-sessions-tools",
    platforms: [.macOS(.v15)],
    products: [
        // Temporary directories, child processes and a throwaway PostgreSQL server.
        .library(name: "TestSupport", targets: ["TestSupport"]),
        // The power-loss suite's recorder: an LD_PRELOAD shim logging a process's writes and
        // flushes to the store's file (see Sources/IORecord/iorecord.c). Built by
        // `swift build --product IORecord` from the library's package.
        .library(name: "IORecord", type: .dynamic, targets: ["IORecord"]),
    ],
    targets: [
        .target(name: "TestSupport"),
        .target(name: "IORecord"),
    ],
    swiftLanguageModes: [.v6]
)

