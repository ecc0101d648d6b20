import AMQPTransport
import BrokerTestSupport
import Foundation
import MoneyTransfer
import SagaEndpoint
import Sagas
import Testing

/// A caller that means "no timeout" may pass the largest `Duration` it can write. The deadline the client
/// waits for (`Task.sleep(until:)`) must then not overflow the clock's seconds.
@Suite("Request client with an effectively unlimited timeout", .timeLimit(.minutes(3)))
struct RequestClientLongTimeoutTests {
    // Failed before: `now + .seconds(Int64.max)` was slept until, and the clock's conversion of that
    // deadline to whole seconds trapped (SIGILL), ending the caller's process.
    @Test("a request with a timeout of Int64.max seconds gets its reply")
    func largestTimeout() async throws {
        let setup = try await RequestClientTests.Setup.make()
        let bank = setup.harness.startEndpoint(MoneyTransferApp.bankRegistry(), queues: ["bank"], database: "bank")
        let debited = try await setup.client.request(RequestClientTests.debit("alice", 100), to: "bank",
                                                     expecting: AccountDebited.self, timeout: .seconds(Int64.max))
        #expect(debited.amount == 100)
        await setup.harness.stop(bank)
        await setup.tearDown()
    }
}
