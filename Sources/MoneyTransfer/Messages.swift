public import Sagas

// The wire contract of the reference app. FIXED: clients outside the repository test against it.
// Every message travels as a JSON body with the AMQP `type` set to its `messageType`. Amounts and fees
// are integers in minor units. Optional fields (`batchId`) are omitted when absent.

// MARK: Transfers

/// Sent to queue `transfers`: starts a transfer saga, correlated by `transferId`.
public struct TransferRequested: Message, Hashable {
    public static let messageType = "TransferRequested"
    public var transferId: String
    public var fromAccount: String
    public var toAccount: String
    public var amount: Int
    /// Set when the transfer is part of a payout batch; carried on the terminal event.
    public var batchId: String?

    public init(transferId: String, fromAccount: String, toAccount: String, amount: Int, batchId: String? = nil) {
        self.transferId = transferId
        self.fromAccount = fromAccount
        self.toAccount = toAccount
        self.amount = amount
        self.batchId = batchId
    }
}

/// Published to `transfers.events` (routing key `TransferCompleted`). `fees` = debit fee + credit fee.
public struct TransferCompleted: Message, Hashable {
    public static let messageType = "TransferCompleted"
    public var transferId: String
    public var amount: Int
    public var fees: Int
    public var batchId: String?

    public init(transferId: String, amount: Int, fees: Int, batchId: String? = nil) {
        self.transferId = transferId
        self.amount = amount
        self.fees = fees
        self.batchId = batchId
    }
}

/// Published to `transfers.events` (routing key `TransferFailed`). `refunded` is the amount refunded
/// after a credit rejection, `feesLost` the fees charged (debit + refund).
public struct TransferFailed: Message, Hashable {
    public static let messageType = "TransferFailed"
    public var transferId: String
    public var reason: String
    public var refunded: Int
    public var feesLost: Int
    public var batchId: String?

    public init(transferId: String, reason: String, refunded: Int, feesLost: Int, batchId: String? = nil) {
        self.transferId = transferId
        self.reason = reason
        self.refunded = refunded
        self.feesLost = feesLost
        self.batchId = batchId
    }
}

/// Published once to `transfers.events` (routing key `TransferStalled`) when the bank did not answer a
/// command after it was re-sent 3 times. The transfer keeps waiting.
public struct TransferStalled: Message, Hashable {
    public static let messageType = "TransferStalled"
    public var transferId: String
    /// The command type the transfer waits for a reply to: `DebitAccount`, `CreditAccount` or `RefundAccount`.
    public var waitingFor: String
    /// The number of times the command was sent (1 + re-sends).
    public var attempts: Int

    public init(transferId: String, waitingFor: String, attempts: Int) {
        self.transferId = transferId
        self.waitingFor = waitingFor
        self.attempts = attempts
    }
}

// MARK: Bank commands (sent to queue `bank`, reply_to `transfers`, correlation_id = transferId)

public struct DebitAccount: Message, Hashable {
    public static let messageType = "DebitAccount"
    public var transferId: String
    public var account: String
    public var amount: Int

    public init(transferId: String, account: String, amount: Int) {
        self.transferId = transferId
        self.account = account
        self.amount = amount
    }
}

public struct CreditAccount: Message, Hashable {
    public static let messageType = "CreditAccount"
    public var transferId: String
    public var account: String
    public var amount: Int

    public init(transferId: String, account: String, amount: Int) {
        self.transferId = transferId
        self.account = account
        self.amount = amount
    }
}

public struct RefundAccount: Message, Hashable {
    public static let messageType = "RefundAccount"
    public var transferId: String
    public var account: String
    public var amount: Int

    public init(transferId: String, account: String, amount: Int) {
        self.transferId = transferId
        self.account = account
        self.amount = amount
    }
}

// MARK: Bank replies (to the command's reply_to, with its correlation_id)

public struct AccountDebited: Message, Hashable {
    public static let messageType = "AccountDebited"
    public var transferId: String
    public var account: String
    public var amount: Int
    public var fee: Int

    public init(transferId: String, account: String, amount: Int, fee: Int) {
        self.transferId = transferId
        self.account = account
        self.amount = amount
        self.fee = fee
    }
}

public struct DebitRejected: Message, Hashable {
    public static let messageType = "DebitRejected"
    public var transferId: String
    public var account: String
    public var reason: String

    public init(transferId: String, account: String, reason: String) {
        self.transferId = transferId
        self.account = account
        self.reason = reason
    }
}

public struct AccountCredited: Message, Hashable {
    public static let messageType = "AccountCredited"
    public var transferId: String
    public var account: String
    public var amount: Int
    public var fee: Int

    public init(transferId: String, account: String, amount: Int, fee: Int) {
        self.transferId = transferId
        self.account = account
        self.amount = amount
        self.fee = fee
    }
}

public struct CreditRejected: Message, Hashable {
    public static let messageType = "CreditRejected"
    public var transferId: String
    public var account: String
    public var reason: String

    public init(transferId: String, account: String, reason: String) {
        self.transferId = transferId
        self.account = account
        self.reason = reason
    }
}

public struct AccountRefunded: Message, Hashable {
    public static let messageType = "AccountRefunded"
    public var transferId: String
    public var account: String
    /// The amount given back (the transfer's amount).
    public var amount: Int
    public var fee: Int

    public init(transferId: String, account: String, amount: Int, fee: Int) {
        self.transferId = transferId
        self.account = account
        self.amount = amount
        self.fee = fee
    }
}

// MARK: Payouts

/// Sent to queue `payouts`: starts a payout saga, correlated by `batchId`, that requests every transfer.
public struct PayoutRequested: Message, Hashable {
    public static let messageType = "PayoutRequested"

    public struct Transfer: Codable, Sendable, Hashable {
        public var transferId: String
        public var fromAccount: String
        public var toAccount: String
        public var amount: Int

        public init(transferId: String, fromAccount: String, toAccount: String, amount: Int) {
            self.transferId = transferId
            self.fromAccount = fromAccount
            self.toAccount = toAccount
            self.amount = amount
        }
    }

    public var batchId: String
    public var transfers: [Transfer]

    public init(batchId: String, transfers: [Transfer]) {
        self.batchId = batchId
        self.transfers = transfers
    }
}

/// Published to `payouts.events` (routing key `PayoutCompleted`) when every transfer of the batch ended.
/// `fees` = the `fees` of the completed transfers + the `feesLost` of the failed ones.
public struct PayoutCompleted: Message, Hashable {
    public static let messageType = "PayoutCompleted"
    public var batchId: String
    public var completed: Int
    public var failed: Int
    public var fees: Int

    public init(batchId: String, completed: Int, failed: Int, fees: Int) {
        self.batchId = batchId
        self.completed = completed
        self.failed = failed
        self.fees = fees
    }
}
