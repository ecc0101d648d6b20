import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// `RequestClient`: request/response from outside a handler, against the reference app's bank endpoint on
/// the real broker.
@Suite("Request client", .timeLimit(.minutes(6)))
struct RequestClientTests {
    /// A harness, a session on a connection of its own (named, so a test can close it) and a client.
    struct Setup {
        let harness: EndpointHarness
        let session: MessageSession
        let client: RequestClient
        let connectionName: String

        static func make() async throws -> Setup {
            let harness = try await EndpointHarness.make()
            let name = TestBroker.uniqueName("requests")
            let session = try await MessageSession.connect(url: harness.url, connectionName: name, appId: "web-shop")
            let client = try await RequestClient.start(session: session)
            return Setup(harness: harness, session: session, client: client, connectionName: name)
        }

        func tearDown() async {
            await client.close()
            await session.close()
            await harness.tearDown()
        }
    }

    static func debit(_ account: String, _ amount: Int = 100, id: String = UUID().uuidString) -> DebitAccount {
        DebitAccount(transferId: id, account: account, amount: amount)
    }

    @Test("a request gets its reply: typed, or of either type the handler may answer with")
    func replies() async throws {
        let setup = try await Setup.make()
        let bank = setup.harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        let debited = try await setup.client.request(Self.debit("alice", 100), to: "bank", expecting: AccountDebited.self)
        #expect(debited.amount == 100 && debited.fee == BankSimulator().debitFee)

        let reply = try await setup.client.request(Self.debit("poor-bob"), to: "bank", messageId: "debit-poor-bob")
        #expect(reply.type == DebitRejected.messageType)
        #expect(reply.is(DebitRejected.self) && !reply.is(AccountDebited.self))
        #expect(reply.correlationId == "debit-poor-bob")
        #expect(try reply.decode(DebitRejected.self).reason == BankSimulator.insufficientFunds)
        do {
            _ = try reply.decode(AccountDebited.self)
            Issue.record("a DebitRejected decoded as AccountDebited")
        } catch {
            #expect(error.code == .unexpectedReply)
            #expect(error.messageId == "debit-poor-bob" && error.messageType == DebitAccount.messageType)
            #expect(error.reason.contains("'DebitRejected'"), "\(error)")
        }
        do {
            _ = try await setup.client.request(Self.debit("poor-carol"), to: "bank", expecting: AccountDebited.self)
            Issue.record("a rejected debit was taken for AccountDebited")
        } catch {
            #expect(error.code == .unexpectedReply)
            #expect(error.destination == "queue 'bank'")
        }
        await setup.harness.stop(bank)
        await setup.tearDown()
    }

    @Test("requests waiting at once each get their own reply")
    func concurrentRequests() async throws {
        let setup = try await Setup.make()
        let bank = setup.harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        let client = setup.client
        let answers = try await withThrowingTaskGroup(of: (Int, AccountDebited).self) { group in
            for amount in 1...60 {
                group.addTask {
                    (amount, try await client.request(Self.debit("acct-\(amount)", amount, id: "t-\(amount)"), to: "bank",
                                                      expecting: AccountDebited.self))
                }
            }
            return try await group.reduce(into: [Int: AccountDebited]()) { $0[$1.0] = $1.1 }
        }
        #expect(answers.count == 60)
        for (amount, debited) in answers {
            #expect(debited.amount == amount && debited.transferId == "t-\(amount)" && debited.account == "acct-\(amount)")
        }
        await setup.harness.stop(bank)
        await setup.tearDown()
    }

    @Test("no reply within the timeout is noReply; the late reply answers the request sent again under its id only")
    func timeoutAndLateReply() async throws {
        let setup = try await Setup.make()
        try await setup.harness.declareQueue("slow-bank")
        let started = ContinuousClock.now
        do {
            _ = try await setup.client.request(Self.debit("alice"), to: "slow-bank", timeout: .milliseconds(300),
                                               messageId: "unanswered")
            Issue.record("a request with nobody to answer it returned")
        } catch {
            #expect(error.code == .noReply)
            #expect(error.messageId == "unanswered" && error.destination == "queue 'slow-bank'")
            #expect(ContinuousClock.now - started < .seconds(10))
        }
        // The bank comes up, answers the old request (nobody waits for it) and then the new one.
        let bank = setup.harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["slow-bank"], database: "bank")
        let debited = try await setup.client.request(Self.debit("dave", 7), to: "slow-bank", expecting: AccountDebited.self,
                                                     timeout: .seconds(30))
        #expect(debited.account == "dave" && debited.amount == 7)
        try await waitUntil(timeout: .seconds(20)) { try await setup.harness.depth(setup.client.replyQueue) == 0 }
        // The old request's reply came late and was kept: sent again under its id (which the bank's inbox would
        // drop unanswered), it is answered at once.
        let late = try await setup.client.request(Self.debit("alice"), to: "slow-bank", expecting: AccountDebited.self,
                                                  timeout: .seconds(5), messageId: "unanswered")
        #expect(late.account == "alice")
        await setup.harness.stop(bank)
        await setup.tearDown()
    }

    @Test("a missing queue is unroutable at once; a cancelled wait is cancelled; after close the queue is gone")
    func failures() async throws {
        let setup = try await Setup.make()
        do {
            _ = try await setup.client.request(Self.debit("alice"), to: "nowhere", timeout: .seconds(30))
            Issue.record("a request to a missing queue returned")
        } catch {
            #expect(error.code == .unroutable)
        }
        try await setup.harness.declareQueue("slow-bank")
        let client = setup.client
        let waiting = Task { try await client.request(Self.debit("erin"), to: "slow-bank", timeout: .seconds(60)) }
        try await waitUntil(timeout: .seconds(10)) { try await setup.harness.depth("slow-bank") == 1 }
        waiting.cancel()
        do {
            _ = try await waiting.value
            Issue.record("a cancelled request returned")
        } catch let error as MessageSessionError {
            #expect(error.code == .cancelled)
        }

        let pending = Task { try await client.request(Self.debit("frank"), to: "slow-bank", timeout: .seconds(60)) }
        try await waitUntil(timeout: .seconds(10)) { try await setup.harness.depth("slow-bank") == 2 }
        await client.close()
        do {
            _ = try await pending.value
            Issue.record("a request waiting when its client closed returned")
        } catch let error as MessageSessionError {
            #expect(error.code == .closed)
        }
        do {
            _ = try await client.request(Self.debit("gina"), to: "slow-bank")
            Issue.record("a closed client sent a request")
        } catch {
            #expect(error.code == .closed)
        }
        await #expect(throws: AMQPError.self) { try await setup.harness.connection.checkQueue(client.replyQueue) }
        await setup.tearDown()
    }

    @Test("the session's connection closed under a waiting request: it ends as closed at once, and so do later ones")
    func sessionClosedUnderRequest() async throws {
        let setup = try await Setup.make()
        try await setup.harness.declareQueue("slow-bank")
        let client = setup.client
        let pending = Task { try await client.request(Self.debit("kim"), to: "slow-bank", timeout: .seconds(120)) }
        try await waitUntil(timeout: .seconds(10)) { try await setup.harness.depth("slow-bank") == 1 }
        let closed = ContinuousClock.now
        await setup.session.close()
        do {
            _ = try await pending.value
            Issue.record("a request whose connection was closed returned")
        } catch let error as MessageSessionError {
            // Failed before: it waited out its timeout and ended as noReply.
            #expect(error.code == .closed, "\(error)")
            #expect(ContinuousClock.now - closed < .seconds(30))
        }
        do {
            _ = try await client.request(Self.debit("lee"), to: "slow-bank")
            Issue.record("a request on a closed connection returned")
        } catch {
            #expect(error.code == .closed)
            #expect(error.reason.contains("connection was closed"), "\(error)")
        }
        await setup.tearDown()
    }

    @Test("a request waiting while its connection is lost and recovered gets its reply")
    func replyAcrossLostConnection() async throws {
        let setup = try await Setup.make()
        try await setup.harness.declareQueue("slow-bank")
        let client = setup.client
        let waiting = Task {
            try await client.request(Self.debit("hana", 42), to: "slow-bank", expecting: AccountDebited.self,
                                     timeout: .seconds(60))
        }
        try await waitUntil(timeout: .seconds(10)) { try await setup.harness.depth("slow-bank") == 1 }
        try await runOnThread { [name = setup.connectionName] in _ = try TestBroker.closeConnections(named: name) }
        let bank = setup.harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["slow-bank"], database: "bank")
        let debited = try await waiting.value
        #expect(debited.account == "hana" && debited.amount == 42)
        await setup.harness.stop(bank)
        await setup.tearDown()
    }

    @Test("a reply queue deleted under the client is declared again, and requests are answered")
    func replyQueueDeleted() async throws {
        let setup = try await Setup.make()
        let bank = setup.harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        _ = try await setup.client.request(Self.debit("ivan"), to: "bank", expecting: AccountDebited.self)
        _ = try await setup.harness.connection.deleteQueue(setup.client.replyQueue)
        try await waitUntil(timeout: .seconds(20)) {
            (try? await setup.harness.connection.checkQueue(setup.client.replyQueue).consumerCount) == 1
        }
        let debited = try await setup.client.request(Self.debit("jane", 3), to: "bank", expecting: AccountDebited.self)
        #expect(debited.account == "jane")
        await setup.harness.stop(bank)
        await setup.tearDown()
    }

    // A review of this change: two replicas of an application configured with one reply queue name were
    // competing consumers of it, and each dropped the other's replies ("no waiting request"): requests
    // ended as noReply.
    @Test("a second client on a reply queue another client consumes is refused at start")
    func sharedReplyQueueRefused() async throws {
        let harness = try await EndpointHarness.make()
        let sessionA = try await MessageSession.connect(url: harness.url, connectionName: "replica-a", appId: "web")
        let sessionB = try await MessageSession.connect(url: harness.url, connectionName: "replica-b", appId: "web")
        let clientA = try await RequestClient.start(session: sessionA, replyQueue: "web.replies")
        do {
            _ = try await RequestClient.start(session: sessionB, replyQueue: "web.replies")
            Issue.record("a second client started on a reply queue another one consumes")
        } catch let error as AMQPError {
            #expect(error.code == .invalidConfiguration)
            #expect(error.message.contains("of its own"), "\(error)")
        }
        let bank = harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        for index in 0..<4 {
            _ = try await clientA.request(Self.debit("acct-\(index)"), to: "bank", expecting: AccountDebited.self)
        }
        await clientA.close()
        await sessionA.close()
        await sessionB.close()
        await harness.stop(bank)
        await harness.tearDown()
    }

    // A review: start() read the consumer count at the declare, then consumed: two replicas starting at
    // once both saw 0 and both consumed (competing consumers of one reply queue).
    @Test("two clients starting at once on one reply queue: one is refused")
    func sharedReplyQueueRace() async throws {
        let harness = try await EndpointHarness.make()
        var bothStarted = 0
        for round in 0..<10 {
            let a = try await MessageSession.connect(url: harness.url, connectionName: "a\(round)", appId: "web")
            let b = try await MessageSession.connect(url: harness.url, connectionName: "b\(round)", appId: "web")
            async let ca = try? RequestClient.start(session: a, replyQueue: "web.replies.\(round)")
            async let cb = try? RequestClient.start(session: b, replyQueue: "web.replies.\(round)")
            let (x, y) = await (ca, cb)
            if x != nil, y != nil { bothStarted += 1 }
            await a.close(); await b.close()
        }
        #expect(bothStarted == 0, "both clients started (competing consumers) in \(bothStarted) of 10 rounds")
        await harness.tearDown()
    }

    @Test("an app id too long for a queue name is cut in the reply queue's name")
    func longAppId() async throws {
        let harness = try await EndpointHarness.make()
        let session = MessageSession(connection: harness.connection, appId: String(repeating: "a", count: 300))
        let client = try await RequestClient.start(session: session)
        #expect(client.replyQueue.utf8.count <= 255 && client.replyQueue.hasPrefix("aaaa"))
        #expect(try await harness.connection.checkQueue(client.replyQueue).consumerCount == 1)
        await client.close()
        await harness.tearDown()
    }

    // A review of this change: the timeout was only applied once the request was confirmed, and during
    // a resource alarm the broker holds confirms back for as long as it lasts: the request waited that
    // long. Its own node: the alarm would stall every other test.
    @Test("a confirm held back by a resource alarm ends the request at its timeout as notConfirmed")
    func resourceAlarmBoundsTheSend() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(name: "request-alarm-\(UInt16.random(in: 1000...9999))") }
        defer { node.shutdown() }
        let session = try await MessageSession.connect(url: node.url, connectionName: "request-alarm")
        try await session.connection.declareQueue(QueueDeclaration(name: "bank"))
        let client = try await RequestClient.start(session: session)
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.0000001"]) }
        let started = ContinuousClock.now
        do {
            _ = try await client.request(Self.debit("alarm"), to: "bank", timeout: .seconds(2))
            Issue.record("a request during an alarm returned")
        } catch {
            #expect(error.code == .notConfirmed, "\(error)")
            #expect(error.reason.contains("blocks publishing"), "\(error)")
        }
        #expect(ContinuousClock.now - started < .seconds(20))
        _ = try await runOnThread { try node.rabbitmqctl(["set_vm_memory_high_watermark", "0.4"]) }
        await client.close()
        await session.close()
    }

    @Test("the README's example")
    func readmeExample() async throws {
        let harness = try await EndpointHarness.make()
        let bank = harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        let url = harness.url
        // From the README:
        let session = try await MessageSession.connect(url: url, connectionName: "web-shop", appId: "web-shop")
        let requests = try await RequestClient.start(session: session)
        let reply = try await requests.request(DebitAccount(transferId: "t-9", account: "alice", amount: 50),
                                               to: "bank", timeout: .seconds(10))
        if reply.is(AccountDebited.self) {
            let debited = try reply.decode(AccountDebited.self)
            print("debited \(debited.amount), fee \(debited.fee)")
        } else {
            print("rejected: \(try reply.decode(DebitRejected.self).reason)")
        }
        await requests.close()
        await session.close()
        #expect(reply.is(AccountDebited.self))
        await harness.stop(bank)
        await harness.tearDown()
    }
}
