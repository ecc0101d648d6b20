// The reason `/health/ready` gives quotes the broker's error text, which names the vhost as it was created:
// an operator reading it with `curl` got its line breaks and escape sequences raw, and a URL in it with its
// password.
import BrokerTestSupport
import Foundation
import Testing

@Suite("saga-endpoint: the readiness reason is one line of visible text, without passwords", .timeLimit(.minutes(3)))
struct CLIReadinessReasonTests {
    // Failed before: the body held the vhost's ESC and line break as they were, and `s3cret`.
    @Test("a vhost whose name holds an escape sequence, a line break and a URL, deleted under run: the 503 body escapes them and hides the password")
    func reasonIsEscapedAndRedacted() async throws {
        let vhost = TestBroker.uniqueName("ready-reason") + "\u{1B}[2J\nnext amqp://ops:s3cret@rabbit/"
        try await runOnThread {
            try TestBroker.rabbitmqctl(["add_vhost", vhost])
            try TestBroker.rabbitmqctl(["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])
        }
        // Deleted by the test itself; this only cleans up after a failure before that.
        defer { _ = try? TestBroker.rabbitmqctl(["delete_vhost", vhost]) }
        let run = try RunProcess(url: TestBroker.url(TestBroker.url, vhost: vhost), label: "ready-reason",
                                 extraArguments: ["--no-declare-topology"])
        defer { run.cleanUp() }
        try await waitUntil(timeout: .seconds(60), message: "ready after start") {
            await OperationsHTTP.get(run.httpPort, "/health/ready")?.status == 200
        }
        _ = try await runOnThread { try TestBroker.rabbitmqctl(["delete_vhost", vhost]) }
        // Every reconnect is refused now, naming the vhost, until an operator creates it again.
        try await waitUntil(timeout: .seconds(60), message: "not ready, quoting the broker's refusal") {
            await OperationsHTTP.get(run.httpPort, "/health/ready")?.body.contains("refuses to reconnect") == true
        }
        let answer = try #require(await OperationsHTTP.get(run.httpPort, "/health/ready"))
        #expect(answer.status == 503)
        let body = answer.body
        #expect(body.hasSuffix("\n") && body.dropLast().allSatisfy { !$0.isNewline }, "one line: \(body.debugDescription)")
        #expect(!body.unicodeScalars.contains("\u{1B}"), "\(body.debugDescription)")
        #expect(body.contains(#"\u{1B}[2J\nnext"#), "escaped as the text log does: \(body.debugDescription)")
        #expect(!body.contains("s3cret"), "\(body.debugDescription)")
        #expect(body.contains("amqp://ops:***@rabbit/"), "\(body.debugDescription)")
        run.process.kill(signal: SIGTERM)
        _ = try await runOnThread { try run.process.waitUntilExit(timeout: .seconds(60)) }
        // The log quotes the same text (the "not ready" warning, the transport's reconnect warnings). Failed
        // before: `ops:s3cret@` in both. (The `amqp.url` field keeps the vhost, percent-encoded, as its path:
        // a name, not the connection's password.)
        let log = run.process.errorOutput() + run.process.output()
        #expect(log.contains("not ready"), "\(log.suffix(2000))")
        #expect(!log.contains("ops:s3cret"),
                "\(log.components(separatedBy: "\n").filter { $0.contains("ops:s3cret") }.prefix(3))")
    }
}
