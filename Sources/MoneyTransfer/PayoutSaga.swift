public import Sagas

/// A payout batch: requests one transfer per entry (with the batch id) and waits for their terminal
/// events, which reach queue `payouts` through bindings of `transfers.events`. When none is pending it
/// publishes `PayoutCompleted` and completes.
///
/// Terminal events correlate by their `batchId` (`Correlation.optionalProperty`): an event without one
/// belongs to no batch and is not for this saga; one for a batch that is gone is discarded. An event for
/// a transfer already counted (or not in the batch) is ignored. Entries repeating a `transferId` are
/// requested and counted once. A request with an entry whose `transferId` is empty or over 255 bytes is
/// malformed (it goes to the error queue): that transfer could never start, so the batch could never
/// complete.
public struct PayoutSaga: Saga, Equatable {
    public static let sagaType = "PayoutSaga"

    public var batchId: String
    /// Transfers without a terminal event yet, in request order.
    public var pending: [String]
    public var completed: Int
    public var failed: Int
    public var fees: Int

    public static func define(_ saga: inout SagaDefinition<PayoutSaga>) {
        saga.startedBy(PayoutRequested.self, correlatedBy: \.batchId) { request, context in
            // A transfer without an id cannot start (its saga has no correlation id), nor can one whose id is
            // longer than an AMQP correlation_id (255 bytes: its first command could not be sent), so it would
            // never end and the payout would wait for it for ever: the whole request is refused instead.
            if let bad = request.transfers.first(where: { $0.transferId.isEmpty || $0.transferId.utf8.count > 255 }) {
                throw SagaError.malformedMessage(
                    type: PayoutRequested.messageType,
                    reason: bad.transferId.isEmpty ? "a transfer of the batch has an empty transferId"
                        : "a transfer of the batch has a transferId of \(bad.transferId.utf8.count) bytes "
                            + "(at most 255: it travels as the AMQP correlation_id)")
            }
            var payout = PayoutSaga(batchId: request.batchId, pending: [], completed: 0, failed: 0, fees: 0)
            // A set beside the list: `pending.contains` made a batch of 11,000 entries take over a minute.
            var requested = Set<String>()
            for entry in request.transfers where requested.insert(entry.transferId).inserted {
                payout.pending.append(entry.transferId)
                try context.send(
                    TransferRequested(transferId: entry.transferId, fromAccount: entry.fromAccount,
                                      toAccount: entry.toAccount, amount: entry.amount, batchId: request.batchId),
                    to: MoneyTransferApp.transfersQueue, correlationId: request.batchId,
                    replyTo: MoneyTransferApp.payoutsQueue
                )
            }
            try payout.completeIfDone(context)
            return payout
        }
        saga.handles(TransferCompleted.self, correlatedBy: .optionalProperty(\.batchId), whenNotFound: .discard) { payout, event, context in
            guard payout.count(event.transferId) else { return }
            payout.completed += 1
            payout.fees = try sumOfFees(payout.fees, event.fees, in: TransferCompleted.messageType)
            try payout.completeIfDone(context)
        }
        saga.handles(TransferFailed.self, correlatedBy: .optionalProperty(\.batchId), whenNotFound: .discard) { payout, event, context in
            guard payout.count(event.transferId) else { return }
            payout.failed += 1
            payout.fees = try sumOfFees(payout.fees, event.feesLost, in: TransferFailed.messageType)
            try payout.completeIfDone(context)
        }
    }

    /// Removes the transfer from the pending ones; false if it was not pending (counted already).
    private mutating func count(_ transferId: String) -> Bool {
        guard let index = pending.firstIndex(of: transferId) else { return false }
        pending.remove(at: index)
        return true
    }

    private func completeIfDone(_ context: HandlerContext) throws {
        guard pending.isEmpty else { return }
        try context.publish(
            PayoutCompleted(batchId: batchId, completed: completed, failed: failed, fees: fees),
            to: MoneyTransferApp.payoutEventsExchange, routingKey: PayoutCompleted.messageType
        )
        try context.markComplete()
    }
}
