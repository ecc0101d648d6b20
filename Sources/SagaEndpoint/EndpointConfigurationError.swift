/// A setting `SagaEndpoint.run()` cannot work with, found before it opens the database or connects.
///
/// An empty `inputQueues` (a list read from an unset setting) started an endpoint that consumed nothing
/// and logged "endpoint started"; an empty queue name made RabbitMQ declare a server-named durable queue
/// (`amq.gen-…`, a new one at every start) and a `.error` queue, and then retried consuming "" for ever;
/// a prefetch of 0 let the broker push a whole backlog into memory.
public struct EndpointConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `EndpointConfiguration` property at fault, e.g. `inputQueues`.
    public let setting: String
    /// What is wrong with it and what to do.
    public let reason: String

    public init(setting: String, reason: String) {
        self.setting = setting
        self.reason = reason
    }

    public var description: String { "invalid EndpointConfiguration.\(setting): \(reason)" }
}

extension EndpointConfiguration {
    /// Throws for settings the endpoint cannot work with: no input queues, an empty queue name, a queue
    /// listed twice, or a prefetch of 0.
    func check() throws(EndpointConfigurationError) {
        guard !inputQueues.isEmpty else {
            throw EndpointConfigurationError(
                setting: "inputQueues",
                reason: "no input queues: the endpoint would consume nothing, and its sagas' commands would carry no "
                    + "reply_to; name at least one (the first is the endpoint's address)")
        }
        if let index = inputQueues.firstIndex(of: "") {
            throw EndpointConfigurationError(
                setting: "inputQueues",
                reason: "the queue name at index \(index) is empty (a setting left unset?): RabbitMQ would declare "
                    + "a new server-named queue for it at every start")
        }
        // Listed twice, a queue got two consumers that the endpoint kept apart only by name in places (its
        // readiness per queue: one consumer's recovery hid the other's loss), and a graceful shutdown once
        // waited for ever on the consumer it had not cancelled. A second consumer adds nothing a larger
        // prefetch does not, so a repeat is a mistake in a list, refused as MassTransit refuses a second
        // receive endpoint on one queue.
        var seen: [String: Int] = [:]
        for (index, queue) in inputQueues.enumerated() {
            if let first = seen[queue] {
                throw EndpointConfigurationError(
                    setting: "inputQueues",
                    reason: "'\(queue)' is listed twice (at index \(first) and \(index)): each input queue gets one "
                        + "consumer; for more messages in flight, raise prefetch instead")
            }
            seen[queue] = index
        }
        // AMQP's 0 is "no limit": the broker pushed a whole backlog into the process's memory, a million
        // messages ahead of the batch loop; the CLI's --prefetch refuses it too.
        guard prefetch > 0 else {
            throw EndpointConfigurationError(
                setting: "prefetch",
                reason: "0 is AMQP's \"no limit\": the broker would push the whole queue into the process's memory; "
                    + "set at least 1 (best 4 × batchSize, the default 400)")
        }
    }
}
