// `--shutdown-timeout` / the config file's `shutdown-timeout`: how long `run`'s and `bank`'s graceful
// shutdown may take before what still runs is cancelled, and the warning when that happens (no broker
// needed). Compiled only with SAGA_ENDPOINT_CLI_TESTS (see CLITopologyTests.swift).
#if SAGA_ENDPOINT_CLI_TESTS
import Foundation
import Logging
@testable import saga_endpoint
import ServiceLifecycle
import Testing

@Suite struct CLIShutdownTimeoutTests {
    @Test func theLimitComesFromTheFlagThenTheFileThenTheDefault() throws {
        let config = CLIConfigFileTests()
        #expect(try config.run([]).endpoint.shutdownTimeout == 30)
        #expect(try config.bank([]).endpoint.shutdownTimeout == 30)
        let top = try config.configFile(#"{"shutdown-timeout": 20, "bank": {"shutdown-timeout": 7.5}}"#)
        #expect(try config.run(["--config", top]).endpoint.shutdownTimeout == 20)
        #expect(try config.bank(["--config", top]).endpoint.shutdownTimeout == 7.5)
        #expect(try config.run(["--config", top, "--shutdown-timeout", "2.5"]).endpoint.shutdownTimeout == 2.5)
        let section = try config.configFile(#"{"run": {"shutdown-timeout": 12}}"#)
        #expect(try config.run(["--config", section]).endpoint.shutdownTimeout == 12)
    }

    @Test(arguments: ["0", "-1", "nan", "inf"])
    func aLimitThatIsNotAPositiveNumberIsRefused(value: String) {
        #expect(throws: (any Error).self) { try SagaEndpointCLI.parseAsRoot(["run", "--shutdown-timeout", value]) }
    }

    /// A service that ignores the graceful shutdown and ends only when cancelled, as a batch waiting for
    /// the confirms of a frozen broker does; or, with `stopsIn`, ends that long after the shutdown began.
    struct SlowService: Service {
        var stopsIn: Duration?

        func run() async throws {
            try? await gracefulShutdown()
            if let stopsIn {
                try await Task.sleep(for: stopsIn)
            } else {
                while !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
            }
        }
    }

    func shutDown(_ service: SlowService, limit: Double) async throws -> (cutShort: Bool, warnings: [String]) {
        let capture = LogCapture()
        let logger = capture.logger(label: "deadline", level: .trace)
        let deadline = ShutdownDeadline(seconds: limit, logger: logger)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: service), .init(service: deadline)], logger: logger))
        let running = Task { try await deadline.run(group) }
        try await Task.sleep(for: .milliseconds(100))
        await group.triggerGracefulShutdown()
        let cutShort = try await running.value
        return (cutShort, capture.log.entries.filter { $0.level == .warning }.map(\.line))
    }

    // Failed before: ServiceGroup cancelled the endpoint at the limit with a debug line only, and the
    // process exited as after a clean stop.
    @Test func aShutdownPastTheLimitIsCancelledWithAWarningNamingIt() async throws {
        let started = ContinuousClock.now
        let (cutShort, warnings) = try await shutDown(SlowService(stopsIn: nil), limit: 0.3)
        #expect(cutShort)
        #expect(ContinuousClock.now - started >= .milliseconds(300))
        #expect(warnings.count == 1 && warnings.first?.contains(
            "graceful shutdown took longer than 0.3 s; cancelling what is still running: its messages go back to their queues") == true,
                "\(warnings)")
        #expect(warnings.first?.contains("shutdown_timeout_seconds=0.3") == true, "\(warnings)")
    }

    @Test func aShutdownWithinTheLimitSaysNothing() async throws {
        let (cutShort, warnings) = try await shutDown(SlowService(stopsIn: .milliseconds(50)), limit: 5)
        #expect(!cutShort)
        #expect(warnings.isEmpty, "\(warnings)")
    }

    @Test func theLimitIsNamedAsWritten() {
        #expect(ShutdownDeadline.describe(30) == "30")
        #expect(ShutdownDeadline.describe(2.5) == "2.5")
    }
}
#endif
