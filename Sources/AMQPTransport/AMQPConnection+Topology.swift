import CRabbitMQ

// Topology: exchanges, queues and bindings on the control channel. What is declared through the
// connection is recorded and declared again after a recovery (`AMQPConnection+TopologyRecovery.swift`);
// deleting it forgets it.
extension AMQPConnection {
    public func declareExchange(_ declaration: ExchangeDeclaration) throws {
        try checkLimits("exchange.declare", ["exchange name": declaration.name, "exchange type": declaration.kind.rawValue],
                        declaration.arguments)
        try declareExchangeNow(declaration)
        topology.exchanges[declaration.name] = declaration
        settleUnrestored { if case .exchange(let e) = $0 { e.name == declaration.name } else { false } }
    }

    /// exchange.declare with passive=true: throws `.channelClosed` 404 when the exchange does not exist.
    public func checkExchange(_ name: String) throws {
        try checkLimits("exchange.declare passive", ["exchange name": name])
        try onChannel(Self.controlChannel, "exchange.declare passive \(name)") { s in
            let arena = CArena()
            _ = amqp_exchange_declare(s.state, Self.controlChannel, arena.bytes(name), arena.bytes("direct"),
                                      1, 0, 0, 0, amqp_empty_table)
            try s.check(channel: Self.controlChannel, operation: "exchange.declare passive \(name)")
        }
    }

    public func deleteExchange(_ name: String, ifUnused: Bool = false) throws {
        try checkLimits("exchange.delete", ["exchange name": name])
        try onChannel(Self.controlChannel, "exchange.delete \(name)") { s in
            let arena = CArena()
            _ = amqp_exchange_delete(s.state, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0)
            try s.check(channel: Self.controlChannel, operation: "exchange.delete \(name)")
        }
        topology.exchanges.removeValue(forKey: name)
        topology.bindings.removeAll { $0.source == name || ($0.destinationKind == .exchange && $0.destination == name) }
        settleUnrestored {
            switch $0 {
            case .exchange(let e): e.name == name
            case .binding(let b): b.source == name || (b.destinationKind == .exchange && b.destination == name)
            case .queue: false
            }
        }
    }

    @discardableResult
    public func declareQueue(_ declaration: QueueDeclaration) throws -> QueueState {
        try checkLimits("queue.declare", ["queue name": declaration.name], declaration.arguments)
        let state = try declareQueueNow(declaration, passive: false)
        if !declaration.name.isEmpty {
            topology.queues[declaration.name] = declaration
            topology.queuesToDelete.remove(declaration.name)
            settleUnrestored { if case .queue(let q) = $0 { q.name == declaration.name } else { false } }
        }
        return state
    }

    /// queue.declare with passive=true: the queue's counts, or `.channelClosed` 404 when it is missing.
    public func checkQueue(_ name: String) throws -> QueueState {
        try checkLimits("queue.declare passive", ["queue name": name])
        return try declareQueueNow(QueueDeclaration(name: name), passive: true)
    }

    /// Deletes the queue and forgets it: recovery no longer declares it. When the connection is lost (or
    /// down, a recovery under way) before the broker answers an unconditional delete of a queue declared
    /// through this connection, this throws, and recovery deletes the queue once the connection is back
    /// if nobody consumes it, instead of declaring it again: a request client closed during a recovery got
    /// its reply queue back, with nobody consuming it, until it expired. (Only if unused: meanwhile another
    /// connection may have declared a queue of that name and consume it.)
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) throws -> Int {
        try checkLimits("queue.delete", ["queue name": name])
        let count: Int
        do {
            count = try deleteQueueNow(name, ifUnused: ifUnused, ifEmpty: ifEmpty)
        } catch let error as AMQPError where error.code != .channelClosed && !ifUnused && !ifEmpty && !closedByClient
                    && topology.queues[name] != nil {
            // Not the broker refusing it (a channel error): the delete may not have reached it.
            forgetQueue(name)
            topology.queuesToDelete.insert(name)
            throw error
        }
        forgetQueue(name)
        topology.queuesToDelete.remove(name)
        return count
    }

    func deleteQueueNow(_ name: String, ifUnused: Bool, ifEmpty: Bool) throws -> Int {
        try onChannel(Self.controlChannel, "queue.delete \(name)") { s -> Int in
            let arena = CArena()
            let ok = amqp_queue_delete(s.state, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
            try s.check(channel: Self.controlChannel, operation: "queue.delete \(name)")
            return Int(ok?.pointee.message_count ?? 0)
        }
    }

    /// Recovery no longer declares the queue, nor its bindings.
    private func forgetQueue(_ name: String) {
        topology.queues.removeValue(forKey: name)
        topology.bindings.removeAll { $0.destinationKind == .queue && $0.destination == name }
        settleUnrestored {
            switch $0 {
            case .queue(let q): q.name == name
            case .binding(let b): b.destinationKind == .queue && b.destination == name
            case .exchange: false
            }
        }
    }

    @discardableResult
    public func purgeQueue(_ name: String) throws -> Int {
        try checkLimits("queue.purge", ["queue name": name])
        return try onChannel(Self.controlChannel, "queue.purge \(name)") { s -> Int in
            let arena = CArena()
            let ok = amqp_queue_purge(s.state, Self.controlChannel, arena.bytes(name))
            try s.check(channel: Self.controlChannel, operation: "queue.purge \(name)")
            return Int(ok?.pointee.message_count ?? 0)
        }
    }

    public func bind(_ binding: BindingDeclaration) throws {
        try checkLimits(binding, "bind")
        try bindNow(binding)
        if !topology.bindings.contains(binding) { topology.bindings.append(binding) }
        settleUnrestored { $0 == .binding(binding) }
    }

    public func unbind(_ binding: BindingDeclaration) throws {
        try checkLimits(binding, "unbind")
        let operation = "unbind \(binding.destination) from \(binding.source) '\(binding.routingKey)'"
        try onChannel(Self.controlChannel, operation) { s in
            let arena = CArena()
            switch binding.destinationKind {
            case .queue:
                _ = amqp_queue_unbind(s.state, Self.controlChannel, arena.bytes(binding.destination),
                                      arena.bytes(binding.source), arena.bytes(binding.routingKey),
                                      arena.table(binding.arguments))
            case .exchange:
                _ = amqp_exchange_unbind(s.state, Self.controlChannel, arena.bytes(binding.destination),
                                         arena.bytes(binding.source), arena.bytes(binding.routingKey),
                                         arena.table(binding.arguments))
            }
            try s.check(channel: Self.controlChannel, operation: operation)
        }
        topology.bindings.removeAll { $0 == binding }
        settleUnrestored { $0 == .binding(binding) }
    }

    func declareExchangeNow(_ d: ExchangeDeclaration) throws {
        try onChannel(Self.controlChannel, "exchange.declare \(d.name)") { s in
            let arena = CArena()
            _ = amqp_exchange_declare(s.state, Self.controlChannel, arena.bytes(d.name), arena.bytes(d.kind.rawValue),
                                      0, d.durable ? 1 : 0, d.autoDelete ? 1 : 0, d.internal ? 1 : 0,
                                      arena.table(d.arguments))
            try s.check(channel: Self.controlChannel, operation: "exchange.declare \(d.name)")
        }
    }

    func declareQueueNow(_ d: QueueDeclaration, passive: Bool) throws -> QueueState {
        let operation = "queue.declare\(passive ? " passive" : "") \(d.name)"
        return try onChannel(Self.controlChannel, operation) { s -> QueueState in
            let arena = CArena()
            let ok = amqp_queue_declare(s.state, Self.controlChannel, arena.bytes(d.name), passive ? 1 : 0,
                                        d.durable ? 1 : 0, d.exclusive ? 1 : 0, d.autoDelete ? 1 : 0,
                                        arena.table(d.arguments))
            try s.check(channel: Self.controlChannel, operation: operation)
            guard let ok else { return QueueState(name: d.name, messageCount: 0, consumerCount: 0) }
            return QueueState(name: CDecode.string(ok.pointee.queue), messageCount: Int(ok.pointee.message_count),
                              consumerCount: Int(ok.pointee.consumer_count))
        }
    }

    func bindNow(_ b: BindingDeclaration) throws {
        let operation = "bind \(b.destination) to \(b.source) '\(b.routingKey)'"
        try onChannel(Self.controlChannel, operation) { s in
            let arena = CArena()
            switch b.destinationKind {
            case .queue:
                _ = amqp_queue_bind(s.state, Self.controlChannel, arena.bytes(b.destination), arena.bytes(b.source),
                                    arena.bytes(b.routingKey), arena.table(b.arguments))
            case .exchange:
                _ = amqp_exchange_bind(s.state, Self.controlChannel, arena.bytes(b.destination), arena.bytes(b.source),
                                       arena.bytes(b.routingKey), arena.table(b.arguments))
            }
            try s.check(channel: Self.controlChannel, operation: operation)
        }
    }

    /// Throws `.invalidArgument` for names or table keys AMQP cannot carry, before anything is sent.
    func checkLimits(_ operation: String, _ names: KeyValuePairs<String, String>, _ table: FieldTable? = nil) throws {
        for (what, value) in names {
            try ProtocolLimits.checkShortString(value, "the \(what)", operation: "\(operation) \(value.prefix(64))")
        }
        try ProtocolLimits.checkTable(table, "the arguments", operation: operation)
    }

    private func checkLimits(_ binding: BindingDeclaration, _ operation: String) throws {
        try checkLimits(operation, ["source": binding.source, "destination": binding.destination,
                                    "routing key": binding.routingKey], binding.arguments)
    }
}
