// swift-tools-version: 6.0
import PackageDescription

// Layout (dependencies point down this list, never up):
//   CRabbitMQ, CSQLite      thin C shims over the system libraries
//   CSQLitePageCache        SQLite's page cache, wrapped to skip needless whole-cache scans
//   DedicatedThread         a serial executor that owns one OS thread (for blocking C libraries)
//   AMQPTransport           Swift client over rabbitmq-c: connections, channels, confirms, recovery
//   SagaStore               SQLite persistence: saga state, inbox, outbox, timeouts
//   Sagas                   the saga programming model: messages, definitions, handler context
//   SagaTesting             in-memory saga test kit (no broker, no disk)
//   SagaEndpoint            the runtime: consume -> dedupe -> handle -> commit -> publish -> ack
//   MoneyTransfer           the reference app: transfer and payout sagas, the simulated bank
//   saga-endpoint           the command-line executable
let strictness: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "swift-saga-endpoint",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "AMQPTransport", targets: ["AMQPTransport"]),
        .library(name: "Sagas", targets: ["Sagas"]),
        .library(name: "SagaEndpoint", targets: ["SagaEndpoint"]),
        .library(name: "SagaTesting", targets: ["SagaTesting"]),
        // /metrics and /health/* for an application that hosts a SagaEndpoint itself (README: Metrics,
        // health and logs); `saga-endpoint run` wires the same server.
        .library(name: "SagaOperations", targets: ["SagaOperations"]),
        .executable(name: "saga-endpoint", targets: ["saga-endpoint"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        // The tracing API only: an application bootstraps its tracer (swift-otel) itself.
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"]), .brew(["rabbitmq-c"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"]), .brew(["sqlite"])]
        ),
        .target(name: "CSQLitePageCache", dependencies: ["CSQLite"]),
        .target(name: "DedicatedThread", swiftSettings: strictness),
        .target(
            name: "AMQPTransport",
            dependencies: [
                "CRabbitMQ", "DedicatedThread",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "SagaStore",
            dependencies: [
                "CSQLite", "CSQLitePageCache", "DedicatedThread",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "Sagas",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictness
        ),
        .target(
            name: "SagaTesting",
            dependencies: ["Sagas", .product(name: "Tracing", package: "swift-distributed-tracing")],
            swiftSettings: strictness
        ),
        .target(
            name: "SagaEndpoint",
            dependencies: [
                "Sagas", "SagaStore", "AMQPTransport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictness
        ),
        .target(name: "MoneyTransfer", dependencies: ["Sagas"], swiftSettings: strictness),
        .target(
            name: "SagaOperations",
            dependencies: [
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "saga-endpoint",
            dependencies: [
                "MoneyTransfer", "SagaEndpoint", "AMQPTransport", "SagaStore", "Sagas",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "SagaOperations",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "saga-bench",
            dependencies: [
                "CRabbitMQ", "AMQPTransport", "SagaEndpoint", "Sagas", "SagaStore", "MoneyTransfer",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strictness
        ),
        .executableTarget(
            name: "saga-endpoint-fixture",
            dependencies: [
                "SagaEndpoint", "Sagas", "MoneyTransfer", "TestSagaSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/EndpointFixture",
            swiftSettings: strictness
        ),
        .target(
            name: "TestSagaSupport",
            dependencies: ["Sagas"],
            path: "Tests/TestSagaSupport",
            swiftSettings: strictness
        ),
        .target(
            name: "BrokerTestSupport",
            path: "Tests/BrokerTestSupport",
            swiftSettings: strictness
        ),
        .target(
            name: "LogTestSupport",
            dependencies: [.product(name: "Logging", package: "swift-log")],
            path: "Tests/LogTestSupport",
            swiftSettings: strictness
        ),
        .target(
            name: "TracingTestSupport",
            dependencies: [
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
            ],
            path: "Tests/TracingTestSupport",
            swiftSettings: strictness
        ),
        .testTarget(
            name: "AMQPTransportTests",
            dependencies: ["AMQPTransport", "BrokerTestSupport", "LogTestSupport", "CRabbitMQ"],
            swiftSettings: strictness
        ),
        .testTarget(name: "DedicatedThreadTests", dependencies: ["DedicatedThread"], swiftSettings: strictness),
        .testTarget(
            name: "SagaOperationsTests",
            dependencies: [
                "SagaOperations", "LogTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(name: "SagaStoreTests", dependencies: ["SagaStore", "LogTestSupport"], swiftSettings: strictness),
        .testTarget(
            name: "SagasTests",
            dependencies: [
                "Sagas", "SagaTesting", "TracingTestSupport",
                .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "SagaEndpointTests",
            dependencies: [
                "SagaEndpoint", "Sagas", "SagaStore", "SagaTesting", "AMQPTransport", "BrokerTestSupport",
                "LogTestSupport", "MoneyTransfer", "TestSagaSupport", "CRabbitMQ",
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
                "saga-endpoint", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                "TracingTestSupport", .product(name: "InMemoryTracing", package: "swift-distributed-tracing"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                // The CLI's shutdown deadline is tested in a ServiceGroup of its own.
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strictness + [.define("SAGA_ENDPOINT_CLI_TESTS")]
        ),
        .testTarget(
            name: "SagaBenchTests",
            dependencies: ["saga-bench", "SagaEndpoint", "SagaStore", "MoneyTransfer", "BrokerTestSupport",
                           .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strictness
        ),
        .testTarget(
            name: "MoneyTransferTests",
            dependencies: ["MoneyTransfer", "SagaTesting", "Sagas"],
            swiftSettings: strictness
        ),
    ],
    swiftLanguageModes: [.v6]
)
