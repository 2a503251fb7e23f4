// swift-tools-version: 6.1
import Foundation
import PackageDescription

// SwiftPM names a path dependency after its directory (a clone may be called anything).
let root = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent()
    .lastPathComponent

// An HTTP checkout service on the payment session store (embedded, or on PostgreSQL): its
// own package, so that the library's build does not pull in Hummingbird.
let package = Package(
    name: "CheckoutService",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "checkout-service", targets: ["CheckoutService"])
    ],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.30.0"),
    ],
    targets: [
        // The routes, as a library so that tests drive them without a socket.
        .target(
            name: "CheckoutAPI",
            dependencies: [
                .product(name: "PaymentSessions", package: root),
                .product(name: "PostgresPaymentSessions", package: root),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "CheckoutService",
            dependencies: [
                "CheckoutAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "CheckoutAPITests",
            dependencies: [
                "CheckoutAPI",
                // Built so that the tests can run two instances of the service.
                "CheckoutService",
                .product(name: "TestSupport", package: root),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
