// Recovery of the topology declared through a connection. Everything declared through it (exchanges,
// queues, bindings) is declared again on every new connection, before its consumers resume and before
// anything is published on it, so a broker that lost its definitions (a vhost deleted and created again,
// a node reset) gets them back. A declaration the broker refuses then (406 PRECONDITION_FAILED: the
// object exists with other settings; 403: no configure permission; 405: an exclusive queue of another
// connection) must not fail the recovery: the connection would be closed and opened again in a loop,
// taking its consumers and publishes with it. So it is logged, reported in `unrestoredTopology`, and tried
// again on the open connection after 1 s, then with the delay doubling up to 30 s, until the broker
// accepts it (or it is declared, deleted or unbound by the client, or the connection is closed). Deletes
// and unbinds the loss cut off are made after that (`AMQPConnection+CutOffDeletions.swift`).
extension AMQPConnection {
    /// How long to wait between attempts to declare again what recovery could not.
    static let topologyRetryPolicy = RecoveryPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(30))

    /// Recorded declarations that the broker refused when the connection was last re-established, with its
    /// reason, while they are being tried again; empty when everything recorded is declared.
    public var unrestoredTopology: [UnrestoredDeclaration] { unrestored }

    /// Declares everything recorded again on a new session: exchanges, then queues, then bindings. A
    /// channel error is recorded in `unrestored` (and retried later); a connection error is thrown.
    func restoreTopology() throws {
        topologyRetryTask?.cancel()
        topologyRetryTask = nil
        var refused: [UnrestoredDeclaration] = []
        for declaration in topology.inDeclarationOrder {
            do {
                try declareNow(declaration)
            } catch let error as AMQPError where error.code == .channelClosed {
                logger.error("AMQP topology could not be declared again after recovery; trying again", metadata: [
                    "amqp.declaration": "\(declaration)", "error": "\(error)",
                ])
                refused.append(UnrestoredDeclaration(declaration: declaration, error: error))
            }
        }
        unrestored = refused
        if !refused.isEmpty { startTopologyRetry() }
        try finishCutOffDeletions()
    }

    /// Tries the refused declarations again with a growing delay until none is left, the connection is
    /// closed, or a new recovery replaces this task.
    private func startTopologyRetry() {
        topologyRetryTask = Task { [weak self] in
            var attempt = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.topologyRetryPolicy.delay(attempt: attempt))
                guard let self, !Task.isCancelled else { return }
                attempt += 1
                guard await self.retryUnrestored(attempt: attempt) else { return }
            }
        }
    }

    /// One round of retries; false when there is nothing more to do.
    private func retryUnrestored(attempt: Int) -> Bool {
        guard !closedByClient else { return false }
        // Lost meanwhile: the next recovery declares everything again and starts a new round.
        guard isConnected else { return false }
        var stillRefused: [UnrestoredDeclaration] = []
        for entry in unrestored {
            do {
                try declareNow(entry.declaration)
                logger.notice("AMQP topology declared again", metadata: [
                    "amqp.declaration": "\(entry.declaration)", "attempt": "\(attempt)",
                ])
            } catch let error as AMQPError where error.code == .channelClosed {
                stillRefused.append(UnrestoredDeclaration(declaration: entry.declaration, error: error))
            } catch {
                // The connection went (recovery starts over) or the client closed it.
                return false
            }
        }
        unrestored = stillRefused
        if let first = stillRefused.first {
            logger.warning("AMQP topology still refused by the broker; trying again", metadata: [
                "amqp.declaration": "\(first.declaration)", "error": "\(first.error)",
                "refused": "\(stillRefused.count)", "attempt": "\(attempt)",
                "retry_in": "\(Self.topologyRetryPolicy.delay(attempt: attempt))",
            ])
        }
        return !stillRefused.isEmpty
    }

    private func declareNow(_ declaration: RecordedDeclaration) throws {
        switch declaration {
        case .exchange(let exchange): try declareExchangeNow(exchange)
        case .queue(let queue): _ = try declareQueueNow(queue, passive: false)
        case .binding(let binding): try bindNow(binding)
        }
    }

    /// The client declared, deleted or unbound something itself: what recovery could not declare of it is
    /// settled (declared now, or no longer wanted).
    func settleUnrestored(where matches: (RecordedDeclaration) -> Bool) {
        guard !unrestored.isEmpty else { return }
        unrestored.removeAll { matches($0.declaration) }
        if unrestored.isEmpty {
            topologyRetryTask?.cancel()
            topologyRetryTask = nil
        }
    }
}

/// One declaration a connection makes again after recovery.
public enum RecordedDeclaration: Sendable, Hashable, CustomStringConvertible {
    case exchange(ExchangeDeclaration)
    case queue(QueueDeclaration)
    case binding(BindingDeclaration)

    /// What it declares, for logs and operators: `queue 'transfers'`, `exchange 'transfers.events'`,
    /// `binding of queue 'payouts' to exchange 'transfers.events' with key 'TransferCompleted'`.
    public var description: String {
        switch self {
        case .exchange(let exchange): "exchange '\(exchange.name)'"
        case .queue(let queue): "queue '\(queue.name)'"
        case .binding(let binding):
            "binding of \(binding.destinationKind.rawValue) '\(binding.destination)' to exchange '\(binding.source)' with key '\(binding.routingKey)'"
                + Self.describe(binding.arguments)
        }
    }

    /// A binding's arguments, when it has any: two bindings of a headers exchange may differ in nothing else.
    private static func describe(_ arguments: FieldTable) -> String {
        guard !arguments.isEmpty else { return "" }
        let pairs = arguments.sorted { $0.key < $1.key }.map { key, value in
            "\(key)=" + (value.stringValue.map { "'\($0)'" } ?? value.intValue.map(String.init) ?? "\(value)")
        }
        return " and arguments " + pairs.joined(separator: ", ")
    }
}

/// A declaration recovery could not make again, and the broker's reason (`error.replyCode` 406, 403, …).
public struct UnrestoredDeclaration: Sendable, Equatable, CustomStringConvertible {
    public var declaration: RecordedDeclaration
    public var error: AMQPError

    public var description: String { "\(declaration): \(error)" }
}

extension RecordedTopology {
    /// Exchanges, then queues (a dead-letter exchange need not exist first, but a binding's ends do), then
    /// bindings; within each kind by name, so logs read the same after every recovery.
    var inDeclarationOrder: [RecordedDeclaration] {
        exchanges.values.sorted { $0.name < $1.name }.map(RecordedDeclaration.exchange)
            + queues.values.sorted { $0.name < $1.name }.map(RecordedDeclaration.queue)
            + bindings.map(RecordedDeclaration.binding)
    }
}
