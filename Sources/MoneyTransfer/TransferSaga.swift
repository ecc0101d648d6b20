public import Sagas

/// A transfer: debit the source account, credit the target, refund the source if the credit is rejected.
///
/// Each bank command is sent to queue `bank` with `reply_to: transfers` and `correlation_id: transferId`.
/// If the bank does not reply within the bank timeout, the same command is re-sent with the same message
/// id (the bank deduplicates), up to `maxResends` times; one timeout later `TransferStalled` is published
/// once and the transfer keeps waiting. Replies that do not match the current step are ignored.
public struct TransferSaga: Saga, Equatable {
    public static let sagaType = "TransferSaga"
    /// How many times a bank command is re-sent before the transfer reports itself stalled.
    public static let maxResends = 3
    /// The reason of the `TransferFailed` of a request with a non-positive amount or equal accounts.
    public static let invalidRequestReason = "InvalidRequest"

    /// The bank command the transfer is waiting for a reply to.
    public enum Step: String, Codable, Sendable {
        case debiting, crediting, refunding

        /// The message type of the step's command.
        public var commandType: String {
            switch self {
            case .debiting: DebitAccount.messageType
            case .crediting: CreditAccount.messageType
            case .refunding: RefundAccount.messageType
            }
        }
    }

    public var transferId: String
    public var fromAccount: String
    public var toAccount: String
    public var amount: Int
    public var batchId: String?
    public var step: Step
    /// The message id of the pending command: re-sends reuse it.
    public var commandMessageId: String
    /// How many times the pending command was sent (1 + re-sends).
    public var attempts: Int
    public var stalled: Bool
    public var debitFee: Int
    /// The reason of the credit rejection, reported when the refund is confirmed.
    public var creditRejection: String?

    public static func define(_ saga: inout SagaDefinition<TransferSaga>) {
        define(&saga, bankTimeout: MoneyTransferApp.defaultBankTimeout)
    }

    public static func define(_ saga: inout SagaDefinition<TransferSaga>, bankTimeout: Duration) {
        saga.startedBy(TransferRequested.self, correlatedBy: \.transferId) { request, context in
            var transfer = TransferSaga(
                transferId: request.transferId, fromAccount: request.fromAccount, toAccount: request.toAccount,
                amount: request.amount, batchId: request.batchId, step: .debiting, commandMessageId: "",
                attempts: 0, stalled: false, debitFee: 0, creditRejection: nil
            )
            guard request.amount > 0, request.fromAccount != request.toAccount else {
                try transfer.fail(reason: invalidRequestReason, refunded: 0, feesLost: 0, context)
                return transfer
            }
            try transfer.begin(.debiting, bankTimeout: bankTimeout, context)
            return transfer
        }

        saga.handles(AccountDebited.self, correlatedBy: replyCorrelation(\.transferId)) { transfer, debited, context in
            guard transfer.step == .debiting else { return }
            transfer.debitFee = debited.fee
            try transfer.begin(.crediting, bankTimeout: bankTimeout, context)
        }
        saga.handles(DebitRejected.self, correlatedBy: replyCorrelation(\.transferId)) { transfer, rejected, context in
            guard transfer.step == .debiting else { return }
            try transfer.fail(reason: rejected.reason, refunded: 0, feesLost: 0, context)
        }
        saga.handles(AccountCredited.self, correlatedBy: replyCorrelation(\.transferId)) { transfer, credited, context in
            guard transfer.step == .crediting else { return }
            try context.publish(
                TransferCompleted(transferId: transfer.transferId, amount: transfer.amount,
                                  fees: try sumOfFees(transfer.debitFee, credited.fee, in: AccountCredited.messageType),
                                  batchId: transfer.batchId),
                to: MoneyTransferApp.transferEventsExchange, routingKey: TransferCompleted.messageType
            )
            try context.markComplete()
        }
        saga.handles(CreditRejected.self, correlatedBy: replyCorrelation(\.transferId)) { transfer, rejected, context in
            guard transfer.step == .crediting else { return }
            transfer.creditRejection = rejected.reason
            try transfer.begin(.refunding, bankTimeout: bankTimeout, context)
        }
        saga.handles(AccountRefunded.self, correlatedBy: replyCorrelation(\.transferId)) { transfer, refunded, context in
            guard transfer.step == .refunding else { return }
            try transfer.fail(reason: transfer.creditRejection ?? CreditRejected.messageType,
                              refunded: refunded.amount,
                              feesLost: try sumOfFees(transfer.debitFee, refunded.fee, in: AccountRefunded.messageType),
                              context)
        }

        saga.handlesTimeout(BankReplyTimeout.self) { transfer, timeout, context in
            // Stale: the step was answered (or the command re-sent) since this timeout was requested.
            guard timeout.step == transfer.step, timeout.attempt == transfer.attempts, !transfer.stalled else { return }
            if transfer.attempts <= maxResends {
                try transfer.sendCommand(messageId: transfer.commandMessageId, context)
                transfer.attempts += 1
                try context.requestTimeout(after: bankTimeout, BankReplyTimeout(step: transfer.step, attempt: transfer.attempts))
            } else {
                transfer.stalled = true
                try context.publish(
                    TransferStalled(transferId: transfer.transferId, waitingFor: transfer.step.commandType,
                                    attempts: transfer.attempts),
                    to: MoneyTransferApp.transferEventsExchange, routingKey: TransferStalled.messageType
                )
            }
        }
    }

    /// Bank replies find their transfer by `correlation_id`, falling back to the body's `transferId`.
    static func replyCorrelation<M: Message>(_ transferId: any KeyPath<M, String> & Sendable) -> Correlation<M> {
        .custom("correlation_id or transferId") { message, incoming in
            if let correlationId = incoming.correlationId, !correlationId.isEmpty { return correlationId }
            return message[keyPath: transferId]
        }
    }

    /// Moves to `step` and sends its command for the first time.
    private mutating func begin(_ step: Step, bankTimeout: Duration, _ context: HandlerContext) throws {
        self.step = step
        stalled = false
        commandMessageId = try sendCommand(messageId: nil, context)
        attempts = 1
        try context.requestTimeout(after: bankTimeout, BankReplyTimeout(step: step, attempt: attempts))
    }

    @discardableResult
    private func sendCommand(messageId: String?, _ context: HandlerContext) throws -> String {
        try context.send(command, to: MoneyTransferApp.bankQueue, correlationId: transferId,
                         replyTo: MoneyTransferApp.transfersQueue, messageId: messageId)
    }

    /// The bank command of the current step, as the saga sends it (to `bank`, with `correlation_id`
    /// transferId, `reply_to` transfers, `message_id` commandMessageId once sent). One place, so that
    /// `saga-endpoint sagas resend` publishes the very message a re-send would.
    public var command: any Message {
        switch step {
        case .debiting: DebitAccount(transferId: transferId, account: fromAccount, amount: amount)
        case .crediting: CreditAccount(transferId: transferId, account: toAccount, amount: amount)
        case .refunding: RefundAccount(transferId: transferId, account: fromAccount, amount: amount)
        }
    }

    private func fail(reason: String, refunded: Int, feesLost: Int, _ context: HandlerContext) throws {
        try context.publish(
            TransferFailed(transferId: transferId, reason: reason, refunded: refunded, feesLost: feesLost,
                           batchId: batchId),
            to: MoneyTransferApp.transferEventsExchange, routingKey: TransferFailed.messageType
        )
        try context.markComplete()
    }
}

/// `a + b` for fees, which come from the bank and from events (outside this repository): a sum that does
/// not fit an `Int` is a malformed message (error queue), where `+` trapped and crashed the endpoint.
func sumOfFees(_ a: Int, _ b: Int, in messageType: String) throws -> Int {
    let (sum, overflow) = a.addingReportingOverflow(b)
    guard !overflow else {
        throw SagaError.malformedMessage(type: messageType, reason: "the fees \(a) and \(b) add up past the largest integer")
    }
    return sum
}

/// The transfer saga's own timeout: "no reply to the command of `step`, sent for the `attempt`th time".
/// Internal to the saga (never on the broker); stored with the timeout.
public struct BankReplyTimeout: Message, Equatable {
    public static let messageType = "TransferSaga.BankReplyTimeout"
    public var step: TransferSaga.Step
    public var attempt: Int

    public init(step: TransferSaga.Step, attempt: Int) {
        self.step = step
        self.attempt = attempt
    }
}
