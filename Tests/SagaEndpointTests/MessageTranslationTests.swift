import AMQPTransport
import Foundation
import SagaStore
import Sagas
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

    @Test("header values reach handlers as text: strings, integers of every width and booleans; other kinds not")
    func headerValuesAsText() {
        #expect(MessageTranslation.headerText(.string("t-1")) == "t-1")
        #expect(MessageTranslation.headerText(.bytes(Data("t-2".utf8))) == "t-2")
        #expect(MessageTranslation.headerText(.int8(-8)) == "-8")
        #expect(MessageTranslation.headerText(.uint16(16)) == "16")
        #expect(MessageTranslation.headerText(.int32(42)) == "42")
        #expect(MessageTranslation.headerText(.int64(-1 << 40)) == "-1099511627776")
        #expect(MessageTranslation.headerText(.uint64(.max)) == "18446744073709551615")
        #expect(MessageTranslation.headerText(.bool(true)) == "true")
        #expect(MessageTranslation.headerText(.bool(false)) == "false")
        #expect(MessageTranslation.headerText(.double(1.5)) == nil)
        #expect(MessageTranslation.headerText(.timestamp(1_767_225_600)) == nil)
        #expect(MessageTranslation.headerText(.table(["a": "b"])) == nil)
    }

    // A replayed saga timeout that fails again is parked for its delayed retry like any delivery; the row
    // must keep the saga it belongs to, or the retry would come back as NoHandler.
    @Test("a parked retry of a replayed timeout keeps its saga instance; its headers do not reach handlers")
    func parkedReplayKeepsItsSaga() {
        let saga = SagaInstanceKey(sagaType: "Alarm", correlationId: "a-1")
        let incoming = IncomingMessage(messageId: "t-1", type: "test.RingAlarm", body: Data("{}".utf8),
                                       correlationId: "a-1", headers: ["keep": "me"], queue: "alarms",
                                       timeoutTarget: saga)
        let row = MessageTranslation.deferral(of: incoming, attempt: 2, dueAt: Date(), now: Date())
        let due = MessageTranslation.incoming(row)
        #expect(due.timeoutTarget == saga)
        #expect(due.messageId == "t-1")
        #expect(due.queue == "alarms")
        #expect(due.headers == ["keep": "me"])
        // And its error-queue copy names the saga, so that it can be replayed again.
        let copy = MessageTranslation.message(due)
        #expect(copy.properties.headers?["x-saga-timeout-saga-type"] == "Alarm")
        #expect(copy.properties.headers?["x-saga-timeout-correlation-id"] == "a-1")
    }

    // Failed before: the fallback kept only the replay headers, so such a timeout's copy replayed as
    // NoHandler.
    @Test("an error copy whose headers no longer fit keeps the saga instance a timeout belongs to")
    func headerFallbackKeepsTheTimeoutTarget() {
        let target: FieldTable = [
            MessageTranslation.timeoutSagaTypeHeader: "Alarm", MessageTranslation.timeoutCorrelationIdHeader: "a-1",
            MessageTranslation.timeoutSagaIdHeader: "s-1"]
        let crowded = target.merging(["note": .string(String(repeating: "x", count: 131_000))]) { $1 }
        let original = AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
            headers: crowded, messageId: "t-1", type: "test.RingAlarm"))
        let copy = MessageTranslation.errorQueueRequest(
            original: original, queue: "alarms", errorQueue: "alarms.error", reason: "boom", errorType: "Broken",
            attempts: 4, firstFailure: nil, lastFailure: Date(), frameMax: 131_072)
        let headers = copy.message.properties.headers ?? [:]
        #expect(headers["note"] == nil)
        #expect(headers["x-error-headers-dropped"] != nil)
        for (key, value) in target { #expect(headers[key] == value, "\(key)") }
    }

    // Failed before (a review helper): a key over 255 bytes inside a table (a producer's key that was not
    // UTF-8 grows when decoded) dropped the headers with a note that blamed frame_max.
    @Test("an error copy that drops the headers says why AMQP could not carry them")
    func droppedHeadersSayWhy() {
        let original = AMQPMessage(body: Data("{}".utf8), properties: BasicProperties(
            headers: ["nested": .table([String(repeating: "k", count: 300): .string("v")])], messageId: "m-1", type: "T"))
        let copy = MessageTranslation.errorQueueRequest(
            original: original, queue: "q", errorQueue: "q.error", reason: "boom", errorType: "Broken",
            attempts: 1, firstFailure: nil, lastFailure: Date())
        let note = copy.message.properties.headers?["x-error-headers-dropped"]?.stringValue
        #expect(note?.contains("300 bytes") == true, "\(note ?? "no note")")
        #expect((try? copy.checkLimits(frameMax: AMQPConfiguration.defaultFrameMax)) != nil)
    }
}
