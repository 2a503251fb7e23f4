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
        .executable(name: "checkout-service", targets: ["CheckoutService"]),
        // What a webhook receiver written in Swift links to check a delivery's signature.
        .library(name: "CheckoutWebhooks", targets: ["CheckoutWebhooks"]),
    ],
    dependencies: [
        .package(path: "../.."),
        .package(path: "../../Tools"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.30.0"),
        .package(url: "https://github.com/apple/swift-openapi-generator", from: "1.14.3"),
        .package(url: "https://github.com/apple/swift-openapi-runtime", from: "1.13.4"),
        .package(url: "https://github.com/hummingbird-project/swift-openapi-hummingbird", from: "2.1.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.1.0"),
    ],
    targets: [
        // Signing and checking webhook deliveries: the dispatcher's side and a receiver's.
        .target(
            name: "CheckoutWebhooks",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")]
        ),
        // The routes, generated from `openapi.yaml`, as a library so that tests drive them
        // without a socket.
        .target(
            name: "CheckoutAPI",
            dependencies: [
                "CheckoutWebhooks",
                .product(name: "OpenAPIRuntime", package: "swift-openapi-runtime"),
                .product(name: "OpenAPIHummingbird", package: "swift-openapi-hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "PaymentSessions", package: root),
                .product(name: "PostgresPaymentSessions", package: root),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            resources: [.copy("openapi.yaml")],
            plugins: [.plugin(name: "OpenAPIGenerator", package: "swift-openapi-generator")]
        ),
        .executableTarget(
            name: "CheckoutService",
            dependencies: [
                "CheckoutAPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "CheckoutAPITests",
            dependencies: [
                "CheckoutAPI",
                // Built so that the tests can run two instances of the service.
                "CheckoutService",
                "CheckoutWebhooks",
                .product(name: "TestSupport", package: "Tools"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
