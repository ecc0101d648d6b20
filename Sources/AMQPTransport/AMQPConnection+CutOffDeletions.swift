// Deletes and unbinds cut off by a connection loss. `deleteQueue`, `deleteExchange` and `unbind` forget
// what they remove, so recovery no longer declares it. One that fails because the connection was lost (or
// was down, a recovery under way) may not have reached the broker; before, it also left the object
// recorded, so recovery declared it again on the new connection: the client had deleted it, and it came
// back. Now the object is forgotten all the same, and recovery finishes the delete once the connection is
// back, after declaring the rest. The call still throws: the caller learns that it was not done yet.
extension AMQPConnection {
    /// Runs `remove` (the broker call) for `deletion` and forgets it. When it fails other than by the
    /// broker refusing it (a channel error: the object stays recorded, as it stays on the broker) and
    /// `recorded` (`recordsAny(of:)`, and the delete is unconditional: a conditional one the broker may
    /// refuse is not redone), the deletion is kept for recovery. Declaring the object again cancels a kept
    /// deletion.
    func finishCutOff<T>(_ deletion: TopologyDeletion, recorded: Bool, _ remove: () throws -> T) throws -> T {
        let result: T
        do {
            result = try remove()
        } catch let error as AMQPError where error.code != .channelClosed && recorded && !closedByClient {
            forget(deletion)
            // An unbind kept for an end deleted since is moot: the binding goes with it.
            topology.cutOffDeletions.removeAll {
                if case .binding(let binding) = $0 { deletion.goesWith(binding) } else { $0 == deletion }
            }
            topology.cutOffDeletions.append(deletion)
            throw error
        }
        forget(deletion)
        topology.cutOffDeletions.removeAll { $0 == deletion }
        return result
    }

    /// Whether recovery would declare something `deletion` removes: the object itself, or bindings made
    /// through this connection to an object another client declared. Those count too: left recorded after
    /// a delete that reached the broker, recovery bound them to the missing object, was refused (404) for
    /// as long as the connection lived, and bound them again once the other client declared it again.
    func recordsAny(of deletion: TopologyDeletion) -> Bool {
        switch deletion {
        case .queue(let name): if topology.queues[name] != nil { return true }
        case .exchange(let name): if topology.exchanges[name] != nil { return true }
        case .binding: break
        }
        return topology.bindings.contains { deletion.goesWith($0) }
    }

    /// Recovery no longer declares it, nor the bindings that went with it.
    private func forget(_ deletion: TopologyDeletion) {
        switch deletion {
        case .queue(let name): topology.queues.removeValue(forKey: name)
        case .exchange(let name): topology.exchanges.removeValue(forKey: name)
        case .binding: break
        }
        topology.bindings.removeAll { deletion.goesWith($0) }
        settleUnrestored {
            switch $0 {
            case .queue(let q): deletion == .queue(q.name)
            case .exchange(let e): deletion == .exchange(e.name)
            case .binding(let b): deletion.goesWith(b)
            }
        }
    }

    /// Makes the deletes and unbinds the loss cut off, on a recovered connection, in the order they were
    /// made. One the broker refuses is left as it is, logged; a connection error is thrown (the rest are
    /// kept for the next recovery).
    ///
    /// A queue is deleted only if unused: meanwhile another connection may have declared a queue of that
    /// name and consume it. An exchange is deleted unconditionally (an exchange's "unused" means it has no
    /// bindings, and one the broker kept across the loss still has those of the queues bound to it), as
    /// the client asked; a binding is removed (RabbitMQ accepts removing one that is gone already).
    func finishCutOffDeletions() throws {
        while let deletion = topology.cutOffDeletions.first {
            do {
                switch deletion {
                case .queue(let name):
                    let messages = try deleteQueueNow(name, ifUnused: true, ifEmpty: false)
                    logger.info("AMQP queue deleted after recovery (its delete was cut off by the connection loss)",
                                metadata: ["amqp.queue": "\(name)", "amqp.messages_deleted": "\(messages)"])
                case .exchange(let name):
                    try deleteExchangeNow(name, ifUnused: false)
                    logger.info("AMQP exchange deleted after recovery (its delete was cut off by the connection loss)",
                                metadata: ["amqp.exchange": "\(name)"])
                case .binding(let binding):
                    try unbindNow(binding)
                    logger.info("AMQP binding removed after recovery (its unbind was cut off by the connection loss)",
                                metadata: ["amqp.declaration": "\(deletion)"])
                }
            } catch let error as AMQPError where error.code == .channelClosed {
                logger.warning("AMQP topology deleted while the connection was lost could not be deleted after recovery; left as it is",
                               metadata: ["amqp.declaration": "\(deletion)", "error": "\(error)"])
            }
            topology.cutOffDeletions.removeFirst()
        }
    }
}
