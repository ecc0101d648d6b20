// A handler that knows retrying cannot help (a validation failure, a request the outside world refused
// for good) says so, as with NServiceBus's unrecoverable exceptions and MassTransit's Ignore<T>. Failed
// before: every such message went through all its immediate and delayed retries (minutes by default).
import AMQPTransport
import BrokerTestSupport
import Foundation
import SagaEndpoint
import Sagas
import Testing

@Suite("Unrecoverable handler errors go to the error queue without retries", .timeLimit(.minutes(3)))
struct UnrecoverableErrorTests {
    struct Refused: UnrecoverableError, CustomStringConvertible {
        var description: String { "the warehouse does not know this SKU" }
    }

    /// Sends one Explode to a handler whose n-th call throws `errors[n]` (the last one from then on), and
    /// returns the error copy, the calls, and the failure count once it settled (the copy's confirm clears
    /// it; up to 10 s).
    func fail(throwing errors: [any Error & Sendable],
              configure: @escaping (inout EndpointConfiguration) -> Void = { _ in }) async throws -> (AMQPDelivery?, Int, Int) {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("picks")
        let calls = Tally()
        var registry = HandlerRegistry()
        registry.handle(Explode.self) { _, _ in
            calls.increment()
            throw errors[min(calls.count, errors.count) - 1]
        }
        let endpoint = harness.startEndpoint(registry, queues: ["picks"], database: "picks") { configuration in
            configuration.immediateRetries = 2
            configuration.delayedRetries = [.seconds(30)]
            configure(&configuration)
        }
        try await harness.send(Explode(note: "sku-404"), to: "picks", messageId: "pick-1")
        let copy = try await harness.errorMessages(of: "picks", count: 1, timeout: .seconds(20)).first
        try? await waitUntil(timeout: .seconds(10)) { try await harness.rowCount("picks", "failures") == 0 }
        let failures = try await harness.rowCount("picks", "failures")
        await harness.stop(endpoint)
        await harness.tearDown()
        return (copy, calls.count, failures)
    }

    @Test("an error conforming to UnrecoverableError: one attempt, its type as x-error-type")
    func conformingError() async throws {
        let (copy, calls, failures) = try await fail(throwing: [Refused()])
        let error = try #require(copy, "no error-queue copy")
        #expect(calls == 1)
        #expect(error.intHeader("x-attempts") == 1)
        #expect(error.header("x-error-type") == "Refused")
        #expect(error.header("x-error-reason")?.contains("does not know this SKU") == true)
        #expect(failures == 0)
    }

    @Test("an error named by EndpointConfiguration.isUnrecoverable: one attempt")
    func configuredError() async throws {
        let (copy, calls, _) = try await fail(throwing: [Explode.Failure()]) { configuration in
            configuration.isUnrecoverable = { $0 is Explode.Failure }
        }
        #expect(copy?.intHeader("x-attempts") == 1)
        #expect(copy?.header("x-error-type") == "Failure")
        #expect(calls == 1)
    }

    /// A handler that failed for a passing reason (a 503) and then for good (a 400): its copy counts both
    /// attempts (and keeps the first failure's time), as a copy after all retries does. Failed before: the
    /// copy said `x-attempts: 1`, as if the handler had run once.
    @Test("an unrecoverable error after earlier failed attempts: the copy counts them all")
    func unrecoverableAfterEarlierAttempts() async throws {
        // The API was down for a moment, then refused the request for good.
        let (copy, calls, failures) = try await fail(throwing: [Explode.Failure(), Refused()])
        let error = try #require(copy, "no error-queue copy")
        #expect(calls == 2)
        #expect(error.intHeader("x-attempts") == 2)
        #expect(error.header("x-error-type") == "Refused")
        #expect(failures == 0, "the failure count was not cleared")
    }
}
