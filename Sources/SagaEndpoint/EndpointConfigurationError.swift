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
    /// Throws for settings the endpoint cannot work with: no input queues, an empty queue name, or a
    /// prefetch of 0.
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
