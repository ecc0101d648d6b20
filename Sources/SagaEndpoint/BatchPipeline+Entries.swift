import AMQPTransport
import Foundation
import Logging
import SagaStore
import Sagas
import Tracing

// What a batch carries from stage to stage (BatchPipeline.swift): one entry per delivery or due row, and the
// batch between its handlers, its transaction, and its publishing and settlement.
extension BatchPipeline {
    /// Per-source bookkeeping through the stages of a batch.
    struct Entry {
        var source: WorkSource
        var incoming: IncomingMessage?
        var rejection: RejectionReason?
        var handlerError: (any Error)?
        /// The handler failed while the endpoint was being cancelled (a shutdown past its time limit): it
        /// was cut short, so the failure is not the message's and is not counted.
        var cutShortByCancellation = false
        var item: WorkItem?
        var result: WorkResult?
        /// Indices into the batch's publish list that must be confirmed before the delivery is acked.
        var publishes: [Int] = []
        /// Requeued for a transient reason (busy or full database), not counted as a failure.
        var transient = false
        /// Requeued because the database cannot be written (full disk, I/O error, corrupt, replaced): why.
        var storageUnavailable: String?
        /// Requeued because another connection held the database's write lock: the error.
        var storageLocked: String?
        /// The store's transaction ran for it (processed, a duplicate, parked, withdrawn, no saga found):
        /// the database's write lock could be taken.
        var storeAnswered: Bool {
            switch result {
            case .none, .failed: false
            default: true
            }
        }
        /// How often the message was delivered, when it came redelivered.
        var deliveries: Int?
        /// Diverted as a poison message (counted as error-queued once its copy is confirmed). Its delivery
        /// count stays in the store until housekeeping purges it; a replay of the copy starts it afresh.
        var poison = false
        /// What to do with the delivery once publishes are settled. For a due row, `.requeue` means: it
        /// stays due and is tried again at the next poll.
        var settle: Settlement = .ack
        /// A due row whose message went to the error queue: deleted once that copy is confirmed.
        var deleteRowAfterPublish = false
        /// Something of the message was written to the database (its transaction committed it, its failed
        /// attempt was counted, it was parked): proof the database can be written.
        var wroteDatabase = false
        /// The message's error-queue copy: counted and logged once the broker confirmed it. Counted when
        /// it was planned, a copy the broker did not take (the error queue deleted, or full) counted and
        /// logged the same message again at every round, while the error queue stayed empty.
        var errorQueued: ErrorQueued?
        /// The message's span (consumer span of a delivery), ended once the message is settled.
        var span: (any Span)?
        /// Its stateless handlers' result is the one `statelessResults` keeps for copies: forgotten once
        /// this batch's transaction has ended.
        var recordedStatelessResult = false

        var delivery: AMQPDelivery? {
            if case .delivery(let delivery) = source { return delivery }
            return nil
        }

        /// The saga timeout or parked retry this entry came from.
        var dueRow: TimeoutRecord? {
            if case .due(let row) = source { return row }
            return nil
        }
    }

    enum Settlement { case ack, requeue }

    /// What an error-queue copy counts for and the line that says so, for when it is confirmed.
    struct ErrorQueued {
        /// Index of the copy in the batch's publish list.
        var publish: Int
        var rejected = false
        var errorQueued = true
        var level: Logger.Level
        var message: Logger.Message
        var metadata: Logger.Metadata
        /// The message's failure count (its attempts) is deleted once the copy is confirmed, so a replay of
        /// the copy starts its retries afresh. Deleted when the copy was planned, a copy the broker did not
        /// take sent the redelivered message through all its retries again before the next copy.
        var clearsFailure = false
    }

    /// One publish of outbox rows: its message id, and every row it settles (a saga that sent a command
    /// again under its first id to the same queue has two rows with that id; one publish in a batch
    /// covers both).
    struct OutboxPublish: Sendable {
        var messageId: String
        var rows: [OutboxKey]
    }

    /// A batch whose transaction has committed: what is left is to publish, await the confirms and
    /// settle the deliveries (`finish`). The endpoint runs the next batch's transaction meanwhile.
    struct PreparedBatch: Sendable {
        var entries: [Entry]
        var requests: [PublishRequest]
        /// The publishes (by index into `requests`) that send outbox rows.
        var outbox: [Int: OutboxPublish]
        var multipleAcks: Bool
        var now: Date
        var started: ContinuousClock.Instant
    }

    /// A batch whose handlers have run and which waits for its transaction (`commit`).
    struct PendingBatch: Sendable {
        var entries: [Entry]
        /// The saga states its handlers wrote, when they ran ahead (for the next batch's handlers).
        var sagaStates: [SagaInstanceKey: StoredSaga?] = [:]
        var now: Date
        var multipleAcks: Bool
        var started: ContinuousClock.Instant
    }
}
