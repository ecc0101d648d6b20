import AMQPTransport
import BrokerTestSupport
import Foundation
@testable import SagaEndpoint
import Testing

/// RabbitMQ refuses a consume with 403 ACCESS_REFUSED for two reasons: a user without read permission on
/// the queue, and a queue another connection consumes exclusively ("in exclusive use"). The endpoint's
/// readiness reason and log took every 403 for the first, and told the operator to grant a permission the
/// user had. Found in review.
@Suite("A 403 on consuming an input queue", .timeLimit(.minutes(2)))
struct InputQueueExclusiveUseTests {
    @Test("a queue in exclusive use by another consumer is not reported as a missing read permission")
    func exclusiveUseIsNotAPermission() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.declareQueue("qexclusive")
        let holder = try await harness.connection.consume(queue: "qexclusive", exclusive: true)
        let other = try await AMQPConnection.connect(url: harness.url, connectionName: "exclusive-other")
        var refusal: (any Error)?
        do {
            let consumer = try await other.consume(queue: "qexclusive")
            try? await consumer.cancel()
        } catch {
            refusal = error
        }
        let error = try #require(refusal, "the broker refuses a second consumer of a queue in exclusive use")
        #expect((error as? AMQPError)?.replyCode == 403, "\(error)")
        let reason = SagaEndpoint.consumeFailure(error, queue: "qexclusive", on: other)
        #expect(!reason.contains("permission"), "\(reason)")
        #expect(reason.contains("exclusive"), "\(reason)")
        try? await holder.cancel()
        await other.close()
        await harness.tearDown()
    }
}
