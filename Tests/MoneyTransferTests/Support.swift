import Foundation
import MoneyTransfer
import Sagas
import SagaTesting

typealias App = MoneyTransferApp

/// The transfer/payout endpoint, consuming `transfers` (and `payouts`).
func makeAppHost(bankTimeout: Duration = App.defaultBankTimeout) -> SagaTestHost {
    SagaTestHost(registry: App.registry(bankTimeout: bankTimeout), endpointAddress: App.transfersQueue)
}

/// The bank endpoint, consuming `bank`.
func makeBankHost(_ bank: BankSimulator = BankSimulator()) -> SagaTestHost {
    SagaTestHost(registry: App.bankRegistry(bank), endpointAddress: App.bankQueue)
}

extension SagaTestHost {
    /// Delivers a bank reply as the bank would send it: to `transfers`, with the transfer's correlation id.
    @discardableResult
    func bankReplies<M: Message>(_ reply: M, transferId: String, messageId: String? = nil) async throws -> DeliveryResult {
        try await deliver(reply, messageId: messageId, correlationId: transferId, queue: App.transfersQueue)
    }

    func transfer(_ transferId: String) -> TransferSaga? {
        state(of: TransferSaga.self, correlationId: transferId)
    }
}

/// A tiny broker for end-to-end tests: routes what the app emits to the bank and back, and the terminal
/// transfer events to `payouts` as the topology's bindings do, until nothing is left to deliver.
/// Returns the events published to exchanges (in order).
@discardableResult
func pump(_ messages: [OutgoingMessage], app: SagaTestHost, bank: SagaTestHost) async throws -> [OutgoingMessage] {
    var queue = messages
    var published: [OutgoingMessage] = []
    while !queue.isEmpty {
        let message = queue.removeFirst()
        switch (message.exchange, message.routingKey) {
        case ("", App.bankQueue):
            queue += try await bank.deliver(message).emitted
        case ("", App.transfersQueue), ("", App.payoutsQueue):
            queue += try await app.deliver(message).emitted
        case (App.transferEventsExchange, let key):
            published.append(message)
            if App.payoutBindingKeys.contains(key) {
                queue += try await app.deliver(message, queue: App.payoutsQueue).emitted
            }
        default:
            published.append(message)
        }
    }
    return published
}

func jsonKeys(_ message: some Message) throws -> Set<String> {
    let object = try JSONSerialization.jsonObject(with: MessageCoding.encode(message))
    return Set((object as? [String: Any] ?? [:]).keys)
}
