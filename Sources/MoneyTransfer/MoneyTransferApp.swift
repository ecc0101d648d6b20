public import Sagas

/// The reference app's addresses and handler registries.
public enum MoneyTransferApp {
    /// The transfer endpoint's input queue: `TransferRequested` and the bank's replies.
    public static let transfersQueue = "transfers"
    /// The payout endpoint's input queue: `PayoutRequested` and, through bindings of
    /// `transfers.events`, the terminal transfer events.
    public static let payoutsQueue = "payouts"
    /// The bank's input queue: `DebitAccount`, `CreditAccount`, `RefundAccount`.
    public static let bankQueue = "bank"
    /// Topic exchange of `TransferCompleted`, `TransferFailed`, `TransferStalled` (routing key = type).
    public static let transferEventsExchange = "transfers.events"
    /// Topic exchange of `PayoutCompleted` (routing key = type).
    public static let payoutEventsExchange = "payouts.events"
    /// The routing keys bound from `transfers.events` to `payouts`.
    public static let payoutBindingKeys = [TransferCompleted.messageType, TransferFailed.messageType]
    /// How long a transfer waits for a bank reply before re-sending the command.
    public static let defaultBankTimeout: Duration = .seconds(10)

    /// The transfer and payout sagas.
    public static func registry(bankTimeout: Duration = defaultBankTimeout) -> HandlerRegistry {
        var registry = HandlerRegistry()
        registry.register(TransferSaga.self) { TransferSaga.define(&$0, bankTimeout: bankTimeout) }
        registry.register(PayoutSaga.self)
        return registry
    }

    /// The simulated bank's handlers (for the bank endpoint, consuming `bank`).
    public static func bankRegistry(_ bank: BankSimulator = BankSimulator()) -> HandlerRegistry {
        var registry = HandlerRegistry()
        bank.register(in: &registry)
        return registry
    }
}
