/// A setting `SagaEndpoint.run()` cannot work with, found before it opens the database or connects.
///
/// An empty `inputQueues` (a list read from an unset setting) started an endpoint that consumed nothing
/// and logged "endpoint started"; an empty queue name made RabbitMQ declare a server-named durable queue
/// (`amq.gen-…`, a new one at every start) and a `.error` queue, and then retried consuming "" for ever.
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
    /// Throws for input queues the endpoint cannot consume: none at all, or an empty name.
    func checkInputQueues() throws(EndpointConfigurationError) {
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
    }
}
