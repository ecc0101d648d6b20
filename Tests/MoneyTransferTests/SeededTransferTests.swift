import Foundation
import MoneyTransfer
import Sagas
import SagaTesting
import Testing

/// The README's seeding example (Testing sagas with `SagaTesting`), word for word: it must compile and
/// pass against the public API.
@Test func aTransferTheLastReleaseStoredStillCompletes() async throws {
    let host = SagaTestHost(registry: MoneyTransferApp.registry(bankTimeout: .seconds(10)),
                            endpointAddress: MoneyTransferApp.transfersQueue)

    // A transfer waiting for the bank to credit bob, as a release without `batchId` stored it.
    try host.seed(TransferSaga.self, correlationId: "t-7", stateJSON: """
        {"amount":10000,"attempts":1,"commandMessageId":"credit-7","debitFee":25,"fromAccount":"alice",
         "stalled":false,"step":"crediting","toAccount":"bob","transferId":"t-7"}
        """)
    #expect(host.state(of: TransferSaga.self, correlationId: "t-7")?.batchId == nil)

    let credited = try await host.deliver(
        AccountCredited(transferId: "t-7", account: "bob", amount: 10_000, fee: 15), correlationId: "t-7")
    let done = try credited.expectPublished(TransferCompleted.self, to: "transfers.events",
                                            routingKey: "TransferCompleted")
    #expect(done.fees == 40)
}
