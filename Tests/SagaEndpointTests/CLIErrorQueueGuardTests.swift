import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Testing

// `errors purge --queue bank` used to delete a live command from an input queue without a word. The
// `errors` commands now refuse a queue whose name is not an error queue's unless told --any-queue.
@Suite("saga-endpoint errors: only error queues unless --any-queue", .timeLimit(.minutes(6)))
struct CLIErrorQueueGuardTests {
    @Test("purge, list, show, replay and delete refuse an input queue; --any-queue lets the operator through")
    func inputQueuesAreRefused() async throws {
        let harness = try await EndpointHarness.make()
        try await harness.send(DebitAccount(transferId: "t-1", account: "alice", amount: 5), to: "bank",
                               messageId: "live-1")
        try await waitUntil(timeout: .seconds(20)) { try await harness.depth("bank") == 1 }

        for command in [["purge"], ["list"], ["show", "live-1"], ["replay", "live-1"], ["replay", "--all"],
                        ["delete", "live-1"]] {
            let run = try await harness.errorsCommand(command + ["--queue", "bank"])
            #expect(run.status != 0, "\(command): \(run)")
            #expect(run.errorOutput.contains("'bank' is not an error queue"), "\(command): \(run)")
            #expect(run.errorOutput.contains("--any-queue"), "\(command): \(run)")
        }
        #expect(try await harness.depth("bank") == 1, "the live command is still there")

        let listed = try await harness.errorsCommand(["list", "--queue", "bank", "--any-queue"])
        #expect(listed.status == 0 && listed.output.contains("\"live-1\""), "\(listed)")
        let purged = try await harness.errorsCommand(["purge", "--queue", "bank", "--any-queue"])
        #expect(purged.status == 0 && purged.output.contains("purged 1 message(s) from bank"), "\(purged)")
        #expect(try await harness.depth("bank") == 0)
        await harness.tearDown()
    }

    @Test("an error queue is an input queue's name with the suffix the endpoint gives it")
    func errorQueueNames() {
        let configuration = EndpointConfiguration(amqpURL: "amqp://x/", inputQueues: ["bank"], databasePath: "x")
        #expect(EndpointConfiguration.isErrorQueue(configuration.errorQueue(for: "bank")))
        #expect(EndpointConfiguration.isErrorQueue("transfers.error"))
        #expect(!EndpointConfiguration.isErrorQueue("bank"))
        #expect(!EndpointConfiguration.isErrorQueue(".error"))
        #expect(!EndpointConfiguration.isErrorQueue("transfers.errors"))
    }
}
