import Foundation
import SagaStore
import Testing
@testable import SagaEndpoint

@Suite("Outbox rows as publishes")
struct MessageTranslationTests {
    private func row(exchange: String, routingKey: String, mandatory: Bool) -> OutboxRecord {
        OutboxRecord(messageId: "m", incomingMessageId: "in", position: 0, exchange: exchange, routingKey: routingKey,
                     mandatory: mandatory, messageType: "T", body: Data("{}".utf8), createdAt: Date())
    }

    // Rows of events stored before events stopped being mandatory carry mandatory = 1: unroutable, they
    // were re-sent by housekeeping for ever.
    @Test("an event row is published without mandatory, whatever it stored; commands and replies keep it")
    func eventsAreNeverMandatory() {
        #expect(!MessageTranslation.publishRequest(row(exchange: "transfers.events", routingKey: "TransferStalled",
                                                       mandatory: true)).mandatory)
        #expect(MessageTranslation.publishRequest(row(exchange: "", routingKey: "bank", mandatory: true)).mandatory)
        #expect(!MessageTranslation.publishRequest(row(exchange: "", routingKey: "bank", mandatory: false)).mandatory)
    }
}
