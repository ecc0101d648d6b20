// A small endpoint process for the runtime's end-to-end tests: crash tests kill it at chosen points
// (SAGA_CRASH_POINT), concurrency tests run two of it on one queue and one SQLite file.
//
//   saga-endpoint-fixture --amqp-url URL --database PATH --app transfer|counter [--queue Q]
//                         [--batch-size N] [--bank-timeout SECONDS]
import Foundation
import Logging
import MoneyTransfer
import SagaEndpoint
import Sagas
import ServiceLifecycle
import TestSagaSupport

/// Handling this message kills the process (for the poison-message test).
struct CrashNow: Message {
    static let messageType = "CrashNow"
    var note: String
}

/// A saga whose timeout kills the process (for the poison-timeout test): `ArmCrash` starts it and asks
/// for the timeout at once.
struct CrashingTimeoutSaga: Saga {
    static let sagaType = "CrashingTimeout"
    var id: String

    struct ArmCrash: Message {
        static let messageType = "ArmCrash"
        var id: String
    }

    struct Detonate: Message {
        static let messageType = "Detonate"
    }

    static func define(_ saga: inout SagaDefinition<CrashingTimeoutSaga>) {
        saga.startedBy(ArmCrash.self, correlatedBy: \.id) { message, context in
            try context.requestTimeout(after: .zero, Detonate())
            return CrashingTimeoutSaga(id: message.id)
        }
        saga.handlesTimeout(Detonate.self) { _, _, _ in kill(getpid(), SIGKILL) }
    }
}

var options: [String: String] = [:]
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let flag = arguments.next() {
    guard flag.hasPrefix("--"), let value = arguments.next() else {
        FileHandle.standardError.write(Data("usage: saga-endpoint-fixture --amqp-url URL --database PATH --app transfer|counter\n".utf8))
        exit(2)
    }
    options[String(flag.dropFirst(2))] = value
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = Logger.Level(rawValue: ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info") ?? .info
    return handler
}
let logger = Logger(label: "fixture")

var registry: HandlerRegistry
var queues: [String]
switch options["app"] ?? "transfer" {
case "counter":
    registry = HandlerRegistry()
    registry.register(CounterSaga.self)
    // A poison message: handling it kills the process, as a crash in native code would.
    registry.handle(CrashNow.self) { _, _ in kill(getpid(), SIGKILL) }
    registry.register(CrashingTimeoutSaga.self)
    queues = [options["queue"] ?? "counters"]
case "bank":
    registry = MoneyTransferApp.bankRegistry()
    queues = [options["queue"] ?? MoneyTransferApp.bankQueue]
default:
    let timeout = Double(options["bank-timeout"] ?? "10") ?? 10
    registry = MoneyTransferApp.registry(bankTimeout: .milliseconds(Int(timeout * 1000)))
    queues = [MoneyTransferApp.transfersQueue, MoneyTransferApp.payoutsQueue]
}

var configuration = EndpointConfiguration(
    amqpURL: options["amqp-url"] ?? "amqp://guest:guest@127.0.0.1:5672/", inputQueues: queues,
    databasePath: options["database"] ?? "fixture.sqlite")
if let size = options["batch-size"].flatMap(Int.init) { configuration.batchSize = size }
if let maximum = options["max-deliveries"].flatMap(Int.init) { configuration.maxDeliveries = maximum }
configuration.connectionName = options["name"] ?? "fixture"
configuration.timeoutPollInterval = .milliseconds(50)

let endpoint = SagaEndpoint(configuration: configuration, registry: registry, logger: logger)
let group = ServiceGroup(configuration: .init(
    services: [.init(service: endpoint)], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
try await group.run()
