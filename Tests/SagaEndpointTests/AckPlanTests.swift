@testable import AMQPTransport
@testable import SagaEndpoint
import Testing

@Suite("AckPlan: acknowledgements per channel opening")
struct AckPlanTests {
    private func tag(_ value: UInt64, channel: UInt16 = 1, epoch: UInt64 = 1) -> DeliveryTag {
        DeliveryTag(channel: channel, channelEpoch: epoch, value: value)
    }

    @Test("one multiple ack of the highest tag per channel")
    func multiplePerChannel() {
        let acks = AckPlan.acks([tag(3), tag(4), tag(5), tag(1, channel: 2)], requeued: [], multipleAcks: true)
        #expect(acks == [.init(tag: tag(5), multiple: true), .init(tag: tag(1, channel: 2), multiple: true)])
    }

    // A batch that holds deliveries from before and after the consumer's channel was reopened: the old
    // tags are higher, and a multiple ack of the highest (an old one) fails, acknowledging none of the
    // new ones. Failed on the grouping by channel alone.
    @Test("a batch across a channel reopening acks each opening on its own")
    func acrossReopening() {
        let old = [tag(117, epoch: 1), tag(118, epoch: 1)]
        let new = [tag(1, epoch: 2), tag(2, epoch: 2)]
        let acks = AckPlan.acks(old + new, requeued: [], multipleAcks: true)
        #expect(acks == [.init(tag: tag(118, epoch: 1), multiple: true), .init(tag: tag(2, epoch: 2), multiple: true)])
    }

    @Test("a requeue on one opening makes only that opening's acks single")
    func requeueKeepsOtherOpeningsMultiple() {
        let acks = AckPlan.acks([tag(117, epoch: 1), tag(1, epoch: 2), tag(3, epoch: 2)],
                                requeued: [tag(2, epoch: 2)], multipleAcks: true)
        #expect(acks == [.init(tag: tag(117, epoch: 1), multiple: true),
                         .init(tag: tag(1, epoch: 2), multiple: false), .init(tag: tag(3, epoch: 2), multiple: false)])
    }

    @Test("without multiple acks every tag is acked on its own, grouped by opening")
    func single() {
        let acks = AckPlan.acks([tag(4), tag(1, epoch: 2), tag(5)], requeued: [], multipleAcks: false)
        #expect(acks == [tag(4), tag(5), tag(1, epoch: 2)].map { .init(tag: $0, multiple: false) })
    }
}
