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
        topology.cutOffDeletions.removeAll { $0 == .exchange(declaration.name) }
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

    /// Deletes the exchange and forgets it and its bindings: recovery no longer declares them. Cut off by a
    /// connection loss, an unconditional delete of an exchange declared or bound to through this connection
    /// throws and recovery deletes the exchange once the connection is back (`finishCutOff`), instead of
    /// declaring it or its bindings again. A conditional one (`ifUnused`) is not redone: the broker may have
    /// refused it, so it throws and leaves the exchange and its bindings recorded, and recovery declares
    /// them again, even if the delete had reached the broker; make it again once the connection is back.
    public func deleteExchange(_ name: String, ifUnused: Bool = false) throws {
        try checkLimits("exchange.delete", ["exchange name": name])
        try finishCutOff(.exchange(name), recorded: !ifUnused && recordsAny(of: .exchange(name))) {
            try deleteExchangeNow(name, ifUnused: ifUnused)
        }
    }

    func deleteExchangeNow(_ name: String, ifUnused: Bool) throws {
        try onChannel(Self.controlChannel, "exchange.delete \(name)") { s in
            let arena = CArena()
            _ = amqp_exchange_delete(s.state, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0)
            try s.check(channel: Self.controlChannel, operation: "exchange.delete \(name)")
        }
    }

    @discardableResult
    public func declareQueue(_ declaration: QueueDeclaration) throws -> QueueState {
        try checkLimits("queue.declare", ["queue name": declaration.name], declaration.arguments)
        let state = try declareQueueNow(declaration, passive: false)
        if !declaration.name.isEmpty {
            topology.queues[declaration.name] = declaration
            topology.cutOffDeletions.removeAll { $0 == .queue(declaration.name) }
            settleUnrestored { if case .queue(let q) = $0 { q.name == declaration.name } else { false } }
        }
        return state
    }

    /// queue.declare with passive=true: the queue's counts, or `.channelClosed` 404 when it is missing.
    public func checkQueue(_ name: String) throws -> QueueState {
        try checkLimits("queue.declare passive", ["queue name": name])
        return try declareQueueNow(QueueDeclaration(name: name), passive: true)
    }

    /// Deletes the queue and forgets it and its bindings: recovery no longer declares them. Cut off by a
    /// connection loss, an unconditional delete of a queue declared or bound through this connection throws
    /// and recovery deletes the queue once the connection is back (`finishCutOff`), instead of declaring it
    /// or its bindings again: a request client closed during a recovery got its reply queue back, with
    /// nobody consuming it, until it expired. A conditional one (`ifUnused`, `ifEmpty`) is not redone: the
    /// broker may have refused it, so it throws and leaves the queue and its bindings recorded, and recovery
    /// declares them again (the queue empty, if the delete had reached the broker); make it again once the
    /// connection is back.
    @discardableResult
    public func deleteQueue(_ name: String, ifUnused: Bool = false, ifEmpty: Bool = false) throws -> Int {
        try checkLimits("queue.delete", ["queue name": name])
        return try finishCutOff(.queue(name), recorded: !ifUnused && !ifEmpty && recordsAny(of: .queue(name))) {
            try deleteQueueNow(name, ifUnused: ifUnused, ifEmpty: ifEmpty)
        }
    }

    func deleteQueueNow(_ name: String, ifUnused: Bool, ifEmpty: Bool) throws -> Int {
        try onChannel(Self.controlChannel, "queue.delete \(name)") { s -> Int in
            let arena = CArena()
            let ok = amqp_queue_delete(s.state, Self.controlChannel, arena.bytes(name), ifUnused ? 1 : 0, ifEmpty ? 1 : 0)
            try s.check(channel: Self.controlChannel, operation: "queue.delete \(name)")
            return Int(ok?.pointee.message_count ?? 0)
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
        topology.cutOffDeletions.removeAll { $0 == .binding(binding) }
        settleUnrestored { $0 == .binding(binding) }
    }

    /// Removes the binding and forgets it: recovery no longer declares it. Cut off by a connection loss, an
    /// unbind of a binding made through this connection throws and recovery removes the binding once the
    /// connection is back (`finishCutOff`), instead of declaring it again.
    public func unbind(_ binding: BindingDeclaration) throws {
        try checkLimits(binding, "unbind")
        try finishCutOff(.binding(binding), recorded: recordsAny(of: .binding(binding))) { try unbindNow(binding) }
    }

    func unbindNow(_ binding: BindingDeclaration) throws {
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
