import Foundation
import SagaTesting
import Sagas
import Testing
@testable import SagaEndpoint

/// `retryLater` counts the attempts of each copy of a message, as `SagaTestHost` does and as NServiceBus's
/// and MassTransit's retry counts travel with the message: a producer's re-send (same `message_id`) that
/// arrives while the first copy waits for its saga is not the first copy's next attempt.
@Suite("retryLater: copies of one message", .timeLimit(.minutes(3)))
struct RetryLaterCopiesTests {
    @Test("two copies parked by retryLater keep their own attempts: the saga starting in time takes one, the other is a duplicate")
    func copiesKeepTheirOwnAttempts() async throws {
        // Early's policy: retryLater(attempts: 2, delay: 1 s). Both copies come before their saga; it
        // starts after their first retry, before their second (a second apart: with 400 ms, a loaded machine
        // once handled the start message after the second retry, and the endpoint rightly error-queued a copy). Counted together, the second copy's first
        // retry was the message's third attempt, and it went to the error queue as SagaNotFound although
        // the saga started in time and handled the first copy.
        try await KitEndpointDifferentialTests.differential([
            .message(DiffSaga.Early(id: "c"), id: "early-c"),
            .message(DiffSaga.Early(id: "c"), id: "early-c"),
            .advance(.milliseconds(1_050)),
            .message(DiffSaga.Open(id: "c", note: "c"), id: "open-c"),
            .advance(.milliseconds(1_050)),
        ], registry: DiffSaga.registry(earlyRetry: .seconds(1)))
    }
}
