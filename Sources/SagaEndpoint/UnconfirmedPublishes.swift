import AMQPTransport

/// The outgoing messages of one batch that the broker did not confirm, grouped by where they went and
/// why, for one warning per group. One warning per message made thousands of lines a second while a
/// route was missing (every held delivery's outgoing messages fail again on each round).
struct UnconfirmedPublishes {
    struct Group: Equatable {
        var exchange: String
        var routingKey: String
        var outcome: String
        var count: Int
        /// One of the group's message ids, to look up, and that message's type (the routing key of a
        /// command is its queue, which does not say what was sent).
        var messageId: String
        var messageType: String
    }

    private(set) var groups: [Group] = []

    /// Adds `request`, which the broker did not confirm (`outcome`), to its group.
    mutating func add(_ request: PublishRequest, outcome: PublishOutcome) {
        add(exchange: request.exchange, routingKey: request.routingKey, outcome: "\(outcome)",
            messageId: request.message.properties.messageId ?? "", messageType: request.message.properties.type ?? "")
    }

    mutating func add(exchange: String, routingKey: String, outcome: String, messageId: String, messageType: String) {
        if let index = groups.firstIndex(where: {
            $0.exchange == exchange && $0.routingKey == routingKey && $0.outcome == outcome
        }) {
            groups[index].count += 1
        } else {
            groups.append(Group(exchange: exchange, routingKey: routingKey, outcome: outcome, count: 1,
                                messageId: messageId, messageType: messageType))
        }
    }
}
