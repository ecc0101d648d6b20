public import Sagas

/// A simulated bank, as stateless handlers of `DebitAccount`, `CreditAccount` and `RefundAccount` that
/// reply (to the command's `reply_to`, with its `correlation_id`) at once:
/// - a debit of an underfunded account → `DebitRejected` reason `InsufficientFunds`, else `AccountDebited`
///   with `debitFee`;
/// - a credit of a closed account → `CreditRejected` reason `AccountClosed`, else `AccountCredited` with
///   `creditFee`;
/// - a refund → `AccountRefunded` of the full amount with `refundFee`.
///
/// Accounts are closed or underfunded when listed, or when their name starts with the configured prefix
/// (`closed-…`, `poor-…` by default) so a demo can generate them.
public struct BankSimulator: Sendable, Equatable {
    public static let insufficientFunds = "InsufficientFunds"
    public static let accountClosed = "AccountClosed"

    public var debitFee: Int
    public var creditFee: Int
    public var refundFee: Int
    public var closedAccounts: Set<String>
    public var underfundedAccounts: Set<String>
    /// Accounts whose name starts with it are closed; nil: none by prefix.
    public var closedAccountPrefix: String?
    /// Accounts whose name starts with it are underfunded; nil: none by prefix.
    public var underfundedAccountPrefix: String?

    public init(
        debitFee: Int = 25, creditFee: Int = 15, refundFee: Int = 10,
        closedAccounts: Set<String> = [], underfundedAccounts: Set<String> = [],
        closedAccountPrefix: String? = "closed-", underfundedAccountPrefix: String? = "poor-"
    ) {
        self.debitFee = debitFee
        self.creditFee = creditFee
        self.refundFee = refundFee
        self.closedAccounts = closedAccounts
        self.underfundedAccounts = underfundedAccounts
        self.closedAccountPrefix = closedAccountPrefix
        self.underfundedAccountPrefix = underfundedAccountPrefix
    }

    public func isClosed(_ account: String) -> Bool {
        closedAccounts.contains(account) || closedAccountPrefix.map { !$0.isEmpty && account.hasPrefix($0) } == true
    }

    public func isUnderfunded(_ account: String) -> Bool {
        underfundedAccounts.contains(account)
            || underfundedAccountPrefix.map { !$0.isEmpty && account.hasPrefix($0) } == true
    }

    /// Registers the handlers of the three bank commands.
    public func register(in registry: inout HandlerRegistry) {
        let bank = self
        registry.handle(DebitAccount.self) { debit, context in
            if bank.isUnderfunded(debit.account) {
                try context.reply(DebitRejected(transferId: debit.transferId, account: debit.account,
                                                reason: Self.insufficientFunds))
            } else {
                try context.reply(AccountDebited(transferId: debit.transferId, account: debit.account,
                                                 amount: debit.amount, fee: bank.debitFee))
            }
        }
        registry.handle(CreditAccount.self) { credit, context in
            if bank.isClosed(credit.account) {
                try context.reply(CreditRejected(transferId: credit.transferId, account: credit.account,
                                                 reason: Self.accountClosed))
            } else {
                try context.reply(AccountCredited(transferId: credit.transferId, account: credit.account,
                                                  amount: credit.amount, fee: bank.creditFee))
            }
        }
        registry.handle(RefundAccount.self) { refund, context in
            try context.reply(AccountRefunded(transferId: refund.transferId, account: refund.account,
                                              amount: refund.amount, fee: bank.refundFee))
        }
    }
}
