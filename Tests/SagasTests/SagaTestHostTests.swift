import Foundation
import Sagas
import SagaTesting
import Testing

@Suite struct SagaTestHostTests {
    let host = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")

    // MARK: Start, update, complete

    @Test func startUpdateComplete() async throws {
        let started = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 500), messageId: "m-1")
        #expect(started.disposition == .handled)
        #expect(started.outcome(of: OrderSaga.self) == .started)
        let charge = try started.expectSent(ChargeCard.self, to: "payments")
        #expect(charge.amount == 500)
        #expect(started.timeoutsRequested.count == 2)
        #expect(host.state(of: OrderSaga.self, correlationId: "o-1")?.amount == 500)
        #expect(host.isLive(OrderSaga.self, correlationId: "o-1"))
        #expect(host.liveSagaCount == 1)

        let paid = try await host.deliver(PaymentReceived(orderId: "o-1"))
        #expect(paid.outcome(of: OrderSaga.self, correlationId: "o-1") == .updated)
        #expect(host.state(of: OrderSaga.self, correlationId: "o-1")?.paid == true)
        #expect(host.storedSaga(of: OrderSaga.self, correlationId: "o-1")?.version == 2)

        let shipped = try await host.deliver(ShipmentConfirmed(trackingNumber: "TN-9"), correlationId: "o-1")
        #expect(shipped.outcome(of: OrderSaga.self) == .completed)
        let event = try shipped.expectPublished(OrderShipped.self, to: OrderSaga.ordersEvents, routingKey: "OrderShipped")
        #expect(event == OrderShipped(orderId: "o-1", trackingNumber: "TN-9"))
        #expect(host.state(of: OrderSaga.self, correlationId: "o-1") == nil)
        #expect(host.isCompleted(OrderSaga.self, correlationId: "o-1"))
        #expect(!host.isLive(OrderSaga.self, correlationId: "o-1"))
        #expect(host.liveSagaCount == 0)
        #expect(host.pendingTimeouts.isEmpty, "completion cancels the timeouts")
        #expect(host.sent.count == 1 && host.published.count == 1 && host.replied.count == 0)
    }

    @Test func startAndCompleteInOneStep() async throws {
        let result = try await host.deliver(OrderPlaced(orderId: "o-0", amount: 0))
        #expect(result.outcome(of: OrderSaga.self) == .startedAndCompleted)
        result.expectNothingEmitted()
        #expect(host.liveSagaCount == 0)
        #expect(host.isCompleted(OrderSaga.self, correlationId: "o-0"))
    }

    @Test func secondStartMessageIsIgnored() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        let again = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 7))
        #expect(again.outcome(of: OrderSaga.self) == .ignoredExistingStart)
        again.expectNothingEmitted()
        #expect(host.state(of: OrderSaga.self, correlationId: "o-1")?.amount == 5)
    }

    // MARK: Not-found policies

    @Test func notFoundDiscardCommits() async throws {
        let result = try await host.deliver(PaymentReceived(orderId: "nope"), messageId: "late-1")
        #expect(result.outcome(of: OrderSaga.self) == .notFound(.discard))
        #expect(result.disposition == .handled)
        #expect(result.notFound.map(\.policy) == [.discard])
        #expect(try await host.deliver(PaymentReceived(orderId: "nope"), messageId: "late-1").isDuplicate)
    }

    @Test func notFoundErrorQueueDeadLetters() async throws {
        let result = try await host.deliver(ShipmentConfirmed(trackingNumber: "TN"), messageId: "s-1", correlationId: "ghost")
        #expect(result.outcome(of: OrderSaga.self) == .notFound(.errorQueue))
        guard case .deadLettered = result.disposition else {
            Issue.record("expected dead-lettered, got \(result.disposition)")
            return
        }
        #expect(host.deadLetters.map(\.message.messageId) == ["s-1"])
        #expect(!host.persistence.hasProcessed(messageId: "s-1"), "not in the inbox: it can be replayed")
    }

    @Test func notFoundRetryLaterIsRedeliveredWhenTimeAdvances() async throws {
        let early = try await host.deliver(OrderCancelled(orderId: "o-2"), messageId: "c-1")
        #expect(early.outcome(of: OrderSaga.self) == .notFound(.retryLater(attempts: 2, delay: .seconds(5))))
        #expect(early.disposition == .deferred(retryAt: SagaTestHost.defaultStartDate.addingTimeInterval(5), retry: 1))

        try await host.deliver(OrderPlaced(orderId: "o-2", amount: 10))
        let advance = try await host.advanceTime(by: .seconds(5))
        #expect(advance.deliveries.map(\.message.messageId) == ["c-1"])
        #expect(advance.sagas.map(\.outcome) == [.completed])
        #expect(host.isCompleted(OrderSaga.self, correlationId: "o-2"))
    }

    // Before, it threw as soon as the limit was reached, even with nothing left to deliver.
    @Test func exactlyTheDeliveryLimitIsNotTooMany() async throws {
        host.maxDeliveriesPerAdvance = 1
        try await host.deliver(OrderPlaced(orderId: "o-9", amount: 10))
        // The payment deadline (20 s) falls due; the reminder (30 s) does not.
        let advance = try await host.advanceTime(by: .seconds(25))
        #expect(advance.deliveries.count == 1)
        #expect(host.now == SagaTestHost.defaultStartDate.addingTimeInterval(25))
    }

    @Test func notFoundRetryLaterRunsOutOfAttempts() async throws {
        try await host.deliver(OrderCancelled(orderId: "o-3"), messageId: "c-2")
        let advance = try await host.advanceTime(by: .seconds(60))
        #expect(advance.deliveries.map(\.disposition) == [DeliveryResult.Disposition](arrayLiteral:
            .deferred(retryAt: SagaTestHost.defaultStartDate.addingTimeInterval(10), retry: 2),
            .deadLettered(reason: "no saga instance after 2 retries")
        ))
        #expect(host.deadLetters.map(\.message.messageId) == ["c-2"])
        #expect(host.deferred.isEmpty)
    }

    // MARK: Correlation

    @Test func correlationByPropertyAndByCorrelationId() async throws {
        try await host.deliver(OrderPlaced(orderId: "a", amount: 1))
        try await host.deliver(OrderPlaced(orderId: "b", amount: 2))
        #expect(host.liveSagas(of: OrderSaga.self) == ["a", "b"])

        try await host.deliver(PaymentReceived(orderId: "b"))
        #expect(host.state(of: OrderSaga.self, correlationId: "a")?.paid == false)
        #expect(host.state(of: OrderSaga.self, correlationId: "b")?.paid == true)

        let shipped = try await host.deliver(ShipmentConfirmed(trackingNumber: "T"), correlationId: "a")
        #expect(shipped.sagas.map(\.saga) == [SagaInstanceKey(sagaType: "OrderSaga", correlationId: "a")])
        #expect(host.liveSagas(of: OrderSaga.self) == ["b"])
    }

    // The error named neither the AMQP correlation_id nor a body field: a reply sent without
    // correlationId read like a message missing a field.
    @Test func missingCorrelationIdIsAnError() async throws {
        let error = await #expect(throws: SagaError.self) {
            try await host.deliver(ShipmentConfirmed(trackingNumber: "T"))
        }
        #expect(error == .missingCorrelationId(sagaType: "OrderSaga", messageType: "ShipmentConfirmed",
                                               correlation: "correlation_id"))
        #expect(error.map { "\($0)" } == "message 'ShipmentConfirmed' has no correlation id for saga OrderSaga: "
                    + "its correlation_id is missing or empty")
        let empty = await #expect(throws: SagaError.self) { try await host.deliver(PaymentReceived(orderId: "")) }
        #expect(empty.map { "\($0)" }?.hasSuffix("its \\PaymentReceived.orderId is missing or empty") == true,
                "\(String(describing: empty))")
    }

    @Test func optionalCorrelationWithoutValueIsNotForTheSaga() async throws {
        try await host.deliver(GroupOpened(groupId: "g"))
        let loose = try await host.deliver(ItemProcessed(itemId: "i-1", groupId: nil))
        #expect(loose.disposition == .handled)
        #expect(loose.sagas.isEmpty)
        let empty = try await host.deliver(ItemProcessed(itemId: "i-2", groupId: ""))
        #expect(empty.sagas.isEmpty)
        let grouped = try await host.deliver(ItemProcessed(itemId: "i-3", groupId: "g"))
        #expect(grouped.outcome(of: GroupSaga.self) == .updated)
        let other = try await host.deliver(ItemProcessed(itemId: "i-4", groupId: "other"))
        #expect(other.outcome(of: GroupSaga.self) == .notFound(.discard))
        #expect(host.state(of: GroupSaga.self, correlationId: "g")?.items == ["i-3"])
    }

    // MARK: Ids and duplicates

    @Test func outgoingIdsAreDeterministic() async throws {
        let first = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        #expect(first.emitted.map(\.messageId) == [MessageIdentity.derive(from: "m-1", handler: "OrderSaga", position: "1")])
        #expect(first.timeoutsRequested.map(\.timeoutId) == [
            MessageIdentity.derive(from: "m-1", handler: "OrderSaga", position: "t2"),
            MessageIdentity.derive(from: "m-1", handler: "OrderSaga", position: "t3"),
        ])
        let charge = try #require(first.sent.first)
        #expect(charge.correlationId == "o-1")
        #expect(charge.replyTo == "orders")
        #expect(charge.queue == "payments")

        let other = SagaTestHost(registry: exampleRegistry(), endpointAddress: "orders")
        let again = try await other.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        #expect(again.emitted == first.emitted)

        // Generated incoming ids are deterministic too.
        let generated = try await other.deliver(Ping(text: "x"), replyTo: "client")
        #expect(generated.message.messageId == "msg-1")
        #expect(generated.emitted.map(\.messageId) == [MessageIdentity.derive(from: "msg-1", handler: "handler:" + Ping.messageType, position: "1")])
    }

    @Test func duplicateMessageIdDoesNothing() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        let first = try await host.deliver(PaymentReceived(orderId: "o-1"), messageId: "p-1", replyTo: "x")
        #expect(first.outcome(of: OrderSaga.self) == .updated)
        let before = host.persistence.contents

        let second = try await host.deliver(PaymentReceived(orderId: "o-1"), messageId: "p-1")
        #expect(second.isDuplicate)
        #expect(second.sagas.isEmpty)
        second.expectNothingEmitted()
        #expect(host.persistence.contents == before)
        #expect(host.history.count == 3)
    }

    // MARK: Timeouts

    @Test func timeoutsFireInDueOrderOnAdvanceTime() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        #expect(host.pendingTimeouts.map(\.type) == ["OrderSaga.PaymentDeadline", "OrderSaga.PaymentReminder"])

        let nothingYet = try await host.advanceTime(by: .seconds(19))
        #expect(nothingYet.deliveries.isEmpty)

        let advance = try await host.advanceTime(by: .seconds(81))
        let start = SagaTestHost.defaultStartDate
        #expect(advance.deliveries.map(\.message.type) == [
            "OrderSaga.PaymentDeadline", "OrderSaga.PaymentReminder", "OrderSaga.PaymentReminder", "OrderSaga.PaymentReminder",
        ])
        #expect(advance.deliveries.map(\.deliveredAt) == [20, 30, 60, 90].map { start.addingTimeInterval($0) })
        #expect(advance.firedTimeouts.allSatisfy { $0.timeoutTarget?.correlationId == "o-1" })
        #expect(advance.sent.count == 3, "one ChargeCard per reminder")
        #expect(host.now == start.addingTimeInterval(100))
        let state = try #require(host.state(of: OrderSaga.self, correlationId: "o-1"))
        #expect(state.reminders == 3 && state.deadlinePassed)
        #expect(host.pendingTimeouts.isEmpty)
        // A fired timeout is in the inbox under its timeout id.
        #expect(host.persistence.hasProcessed(messageId: advance.firedTimeouts[0].messageId))
    }

    @Test func timeoutsNeverFireAfterCompletion() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        try await host.advanceTime(by: .seconds(25))
        #expect(host.pendingTimeouts(of: OrderSaga.self, correlationId: "o-1").count == 1)
        let done = try await host.deliver(ShipmentConfirmed(trackingNumber: "T"), correlationId: "o-1")
        #expect(done.timeoutsRequested.isEmpty, "a completing step's timeouts are dropped")
        #expect(host.pendingTimeouts.isEmpty)
        let later = try await host.advanceTime(by: .seconds(3600))
        #expect(later.deliveries.isEmpty)
        later.expectNothingEmitted()
    }

    @Test func timeoutFiredTwiceIsADuplicate() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        let reminder = try #require(host.pendingTimeouts.last)
        // The same timeout delivered again (fired twice) is a duplicate.
        try await host.advanceTime(by: .seconds(30))
        let twice = try await host.deliver(reminder.asIncomingMessage())
        #expect(twice.isDuplicate)
    }

    // MARK: JSON round trip and errors

    @Test func nonEncodableStateFailsAndRollsBack() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        let before = host.persistence.contents
        let emittedBefore = host.emitted.count
        await #expect {
            try await host.deliver(SetScore(orderId: "o-1", points: 0, outOf: 0), messageId: "nan-1")
        } throws: { error in
            guard case SagaError.encodingFailed(let type, _) = error else { return false }
            return type == "OrderSaga"
        }
        #expect(host.persistence.contents == before, "nothing stored, no inbox row")
        #expect(host.emitted.count == emittedBefore, "nothing emitted")
        #expect(!host.persistence.hasProcessed(messageId: "nan-1"))
    }

    @Test func nonEncodableMessageFails() async throws {
        await #expect(throws: SagaError.self) {
            try await host.deliver(SetScore(orderId: "o-1", points: .infinity, outOf: 1))
        }
    }

    @Test func malformedJSONIsAMalformedMessage() async throws {
        let raw = IncomingMessage(messageId: "bad-1", type: "OrderPlaced", body: Data("{not json".utf8))
        await #expect {
            try await host.deliver(raw)
        } throws: { error in
            guard case SagaError.malformedMessage(let type, let reason) = error else { return false }
            return type == "OrderPlaced" && reason.contains("not valid JSON")
        }
        #expect(host.liveSagaCount == 0 && host.history.isEmpty)
    }

    @Test func missingFieldIsNamed() async throws {
        let raw = IncomingMessage(messageId: "bad-2", type: "OrderPlaced", body: Data(#"{"orderId":"o-1"}"#.utf8))
        await #expect(throws: SagaError.malformedMessage(type: "OrderPlaced", reason: "missing required field 'amount'")) {
            try await host.deliver(raw)
        }
        let wrongType = IncomingMessage(messageId: "bad-3", type: "OrderPlaced",
                                        body: Data(#"{"orderId":"o-1","amount":"lots"}"#.utf8))
        await #expect(throws: SagaError.malformedMessage(type: "OrderPlaced", reason: "field 'amount' is not of type Int")) {
            try await host.deliver(wrongType)
        }
    }

    @Test func unknownTypeHasNoHandler() async throws {
        await #expect(throws: SagaError.noHandler(type: "Nope")) {
            try await host.deliver(IncomingMessage(messageId: "x", type: "Nope", body: Data("{}".utf8)))
        }
    }

    // MARK: Replies and stateless handlers

    @Test func statelessHandlerRunsAndReplies() async throws {
        let result = try await host.deliver(Ping(text: "hi"), correlationId: "req-1", replyTo: "client")
        #expect(result.sagas.isEmpty)
        let pong = try result.expectReplied(Pong.self, to: "client")
        #expect(pong.text == "HI")
        #expect(result.replied.first?.correlationId == "req-1")
    }

    @Test func replyWithoutReplyToIsAnError() async throws {
        await #expect {
            try await host.deliver(Ping(text: "hi"), messageId: "p-9")
        } throws: { error in
            error as? SagaError == .noReplyAddress(messageType: "Ping", messageId: "p-9")
        }
        #expect(host.emitted.isEmpty && !host.persistence.hasProcessed(messageId: "p-9"))
    }

    @Test func replyToOriginatorUsesTheStartingMessagesProperties() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), correlationId: "shop-req-7", replyTo: "shop")
        let paid = try await host.deliver(PaymentReceived(orderId: "o-1"), correlationId: "other", replyTo: "elsewhere")
        let accepted = try paid.expectReplied(OrderAccepted.self, to: "shop")
        #expect(accepted.orderId == "o-1")
        #expect(paid.replied.first?.correlationId == "shop-req-7")
        #expect(host.storedSaga(of: OrderSaga.self, correlationId: "o-1")?.originator
            == Originator(replyTo: "shop", correlationId: "shop-req-7"))
    }

    @Test func replyToOriginatorWithoutReplyToIsAnError() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5))
        let before = host.persistence.contents
        await #expect(throws: SagaError.noReplyAddress(messageType: "OrderStatusRequested", messageId: "q-1")) {
            try await host.deliver(OrderStatusRequested(orderId: "o-1"), messageId: "q-1", replyTo: "ignored")
        }
        #expect(host.persistence.contents == before, "rolled back")

        try await host.deliver(OrderPlaced(orderId: "o-2", amount: 5), correlationId: "c-2", replyTo: "shop")
        let status = try await host.deliver(OrderStatusRequested(orderId: "o-2"))
        #expect(try status.expectReplied(OrderAccepted.self, to: "shop").orderId == "o-2")
    }

    @Test func forwardingAnEmittedMessage() async throws {
        let ping = try await host.deliver(Ping(text: "a"), replyTo: "orders")
        let pong = try #require(ping.replied.first)
        var registry = HandlerRegistry()
        registry.handle(Pong.self) { _, _ in }
        let client = SagaTestHost(registry: registry)
        let forwarded = try await client.deliver(pong)
        #expect(forwarded.message.messageId == pong.messageId)
        #expect(forwarded.message.queue == "orders")
        #expect(try await client.deliver(pong).isDuplicate)
    }

    // MARK: Readable failures

    @Test func failedExpectationListsWhatWasEmitted() async throws {
        let result = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        try withKnownIssue {
            try result.expectSent(ChargeCard.self, to: "billing")
        } matching: { issue in
            let text = issue.comments.map(\.rawValue).joined(separator: "\n")
            return text.contains("expected ChargeCard sent to queue 'billing'")
                && text.contains(#"send ChargeCard to queue 'payments' [id \#(MessageIdentity.derive(from: "m-1", handler: "OrderSaga", position: "1")), correlation_id o-1, reply_to orders] {"amount":5,"orderId":"o-1"}"#)
        }
        withKnownIssue {
            try result.expectPublished(OrderShipped.self)
        }
        withKnownIssue {
            result.expectNothingEmitted()
        }
        withKnownIssue {
            result.expectNone(ChargeCard.self)
        }
    }

    /// With nothing emitted, "(nothing was emitted)" alone read as if the saga had run and sent nothing: a
    /// reply that found no instance (a mistyped correlation id) or a reused message id (a duplicate) never
    /// reached a handler at all. The issue says what the delivery did.
    @Test func failedExpectationSaysWhatTheDeliveryDid() async throws {
        try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        let unknown = try await host.deliver(PaymentReceived(orderId: "o-9"), messageId: "m-2")
        try withKnownIssue {
            try unknown.expectSent(ChargeCard.self)
        } matching: { issue in
            let text = issue.comments.map(\.rawValue).joined(separator: "\n")
            return text.contains("(nothing was emitted)") && text.contains("PaymentReceived [id m-2]")
                && text.contains("saga OrderSaga/o-9: notFound(discard)")
        }
        let copy = try await host.deliver(OrderPlaced(orderId: "o-1", amount: 5), messageId: "m-1")
        try withKnownIssue {
            try copy.expectSent(ChargeCard.self)
        } matching: { issue in
            issue.comments.map(\.rawValue).joined(separator: "\n").contains("OrderPlaced [id m-1] at 2026-01-01 00:00:00 +0000: duplicate")
        }
        let advanced = try await host.advanceTime(by: .seconds(1))
        try withKnownIssue {
            try advanced.expectPublished(OrderShipped.self)
        } matching: { issue in
            issue.comments.map(\.rawValue).joined(separator: "\n").contains("0 deliveries")
        }
    }
}
