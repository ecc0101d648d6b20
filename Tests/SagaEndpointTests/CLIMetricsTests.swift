// `/metrics` of `saga-endpoint run` after known traffic, scraped over HTTP as Prometheus would: every
// count exact. `run` and `bank` are child processes on a vhost of the test's own.
import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import Sagas
import Testing

@Suite("saga-endpoint metrics", .timeLimit(.minutes(6)))
struct CLIMetricsTests {
    @Test("after N transfers, a duplicate and two bad messages, /metrics counts each exactly and shows the gauges")
    func metricsCountKnownTraffic() async throws {
        let harness = try await EndpointHarness.make()
        let port = try DedicatedBrokerNode.freePort()
        // A bank timeout far beyond the test: no re-sends or timeouts to blur the counts.
        let run = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: [
            "run", "--amqp-url", harness.url, "--database", harness.databasePath("run"), "--no-declare-topology",
            "--http-port", "\(port)", "--bank-timeout", "600", "--log-level", "warning"])
        let bank = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: [
            "bank", "--amqp-url", harness.url, "--database", harness.databasePath("bank"), "--no-declare-topology",
            "--log-level", "warning"])
        try await waitUntil(timeout: .seconds(30), message: "run and bank consume") {
            let transfers = try await harness.connection.checkQueue("transfers").consumerCount
            let bank = try await harness.connection.checkQueue("bank").consumerCount
            return transfers == 1 && bank == 1
        }

        let transfers = 5
        var firstMessageId = ""
        var firstRequest: TransferRequested?
        for index in 0..<transfers {
            let request = TransferRequested(transferId: "metrics-\(index)-\(UUID().uuidString.prefix(6))",
                                            fromAccount: "alice-\(index)", toAccount: "bob-\(index)", amount: 100)
            let messageId = UUID().uuidString
            if index == 0 { (firstMessageId, firstRequest) = (messageId, request) }
            try await harness.send(request, to: "transfers", messageId: messageId)
        }
        let completed = try await harness.receive(from: harness.eventsQueue, count: transfers, timeout: .seconds(60))
        #expect(completed.count == transfers && completed.allSatisfy { $0.properties.type == TransferCompleted.messageType })

        // The same message again (same message id); a type nobody handles (refused before any handler
        // runs: rejected); a body that is not JSON (its handler fails to decode it: failed, and straight to
        // the error queue without retries).
        try await harness.send(try #require(firstRequest), to: "transfers", messageId: firstMessageId)
        try await harness.sendRaw(Data("{}".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: UUID().uuidString,
            type: "NobodyHandlesThis"), to: "transfers")
        try await harness.sendRaw(Data("{not json".utf8), properties: BasicProperties(
            contentType: "application/json", deliveryMode: .persistent, messageId: UUID().uuidString,
            type: TransferRequested.messageType), to: "transfers")
        _ = try await harness.errorMessages(of: "transfers", count: 2)

        // Per transfer: TransferRequested, AccountDebited and AccountCredited on `transfers`, and its
        // TransferCompleted on `payouts` (no batch: no payout saga runs). Plus the duplicate and the bad ones.
        let received = Double(4 * transfers + 3)
        // DebitAccount, CreditAccount and TransferCompleted per transfer, and the two error-queue copies.
        // A copy is counted once its confirm is back, which can be after the test saw it in the error
        // queue: wait for it (at least), then expect exactly.
        let published = Double(3 * transfers + 2)
        var metrics: [String: Double] = [:]
        try await waitUntil(timeout: .seconds(30), message: "the last deliveries are counted and the gauges refreshed") {
            metrics = await OperationsHTTP.metrics(port)
            return metrics["saga_messages_received_total"] == received && metrics["saga_outbox_backlog"] == 0
                && metrics["saga_timeouts_pending"] == 0 && (metrics["saga_messages_published_total"] ?? 0) >= published
        }
        let context = "\(metrics.filter { $0.key.hasPrefix("saga_") && !$0.key.contains("_bucket") })"
        #expect(metrics["saga_messages_processed_total"] == Double(4 * transfers), "\(context)")
        #expect(metrics["saga_messages_deduplicated_total"] == 1, "\(context)")
        #expect(metrics["saga_messages_rejected_total"] == 1, "\(context)")
        #expect(metrics["saga_messages_failed_total"] == 1, "\(context)")
        #expect(metrics["saga_messages_error_queued_total"] == 1, "\(context)")
        #expect(metrics["saga_messages_retried_total"] == 0, "\(context)")
        #expect(metrics["saga_sagas_started_total"] == Double(transfers), "\(context)")
        #expect(metrics["saga_sagas_completed_total"] == Double(transfers), "\(context)")
        #expect(metrics["saga_messages_published_total"] == published, "\(context)")
        #expect(metrics["saga_connection_recoveries_total"] == 0, "\(context)")
        // Every saga handler call is timed: the three messages of each transfer at least.
        #expect((metrics["saga_handler_duration_seconds_count"] ?? 0) >= Double(3 * transfers), "\(context)")
        #expect(metrics["saga_publish_confirm_duration_seconds_count"] != nil, "\(context)")

        run.kill(signal: SIGTERM)
        bank.kill(signal: SIGTERM)
        #expect(try await runOnThread { try run.waitUntilExit(timeout: .seconds(15)) } == 0)
        #expect(try await runOnThread { try bank.waitUntilExit(timeout: .seconds(15)) } == 0)
        await harness.tearDown()
    }
}
