// Running `saga-endpoint errors …` as an operator does, against a harness's vhost.
import AMQPTransport
import BrokerTestSupport
import Foundation

/// What one `saga-endpoint` invocation printed and how it ended.
struct CLIRun: CustomStringConvertible {
    var status: Int32
    var output: String
    var errorOutput: String

    var description: String { "status \(status)\nstdout:\n\(output)\nstderr:\n\(errorOutput)" }
}

extension EndpointHarness {
    /// Runs `saga-endpoint errors <arguments>` on this harness's vhost and waits for it to exit.
    /// `url` nil: the harness's (guest); another user's URL on the harness's vhost otherwise.
    func errorsCommand(_ arguments: [String], url: String? = nil, timeout: Duration = .seconds(60)) async throws -> CLIRun {
        let process = try ChildProcess(executable: CLIProcessTests.executablePath,
                                       arguments: ["errors"] + arguments + ["--amqp-url", url ?? self.url, "--log-level", "warning"])
        let status = try await runOnThread { try process.waitUntilExit(timeout: timeout) }
        return CLIRun(status: status, output: process.output(), errorOutput: process.errorOutput())
    }

    /// Parks a message in `queue` as an error-queue copy; `originalQueue` nil leaves out `x-original-queue`.
    func parkOne(_ id: String, originalQueue: String?, in queue: String = "transfers.error") async throws {
        var headers: [String: FieldValue] = ["x-error-reason": "parked"]
        if let originalQueue { headers["x-original-queue"] = .string(originalQueue) }
        try await sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", headers: headers, deliveryMode: .persistent, messageId: id,
            type: "TransferRequested"), to: queue)
    }

    /// Parks an event's error-queue copy (an outgoing event the broker kept refusing): it names the
    /// exchange and routing key it was published with, not a queue.
    func parkEvent(_ id: String, exchange: String, routingKey: String, in queue: String = "transfers.error") async throws {
        try await sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json",
            headers: ["x-error-reason": "refused", "x-error-type": "RefusedMessage",
                      "x-original-exchange": .string(exchange), "x-original-routing-key": .string(routingKey)],
            deliveryMode: .persistent, messageId: id, type: "NewsPublished"), to: queue)
    }
}
