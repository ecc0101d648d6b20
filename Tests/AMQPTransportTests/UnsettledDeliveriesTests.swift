// The bookkeeping that decides when a cancelled consumer's channel can be closed: which of the deliveries
// handed to the reader are still unsettled, whatever order they are settled in.
@testable import AMQPTransport
import Testing

@Suite("Unsettled deliveries")
struct UnsettledDeliveriesTests {
    @Test("in-order, out-of-order and multiple settlements; nothing handed out is nothing to settle")
    func settlements() {
        var unsettled = UnsettledDeliveries()
        #expect(unsettled.isEmpty)
        for tag in UInt64(1)...5 { unsettled.handOut(tag) }
        unsettled.settle(1, multiple: false)
        unsettled.settle(4, multiple: false)
        unsettled.settle(3, multiple: false)
        #expect(!unsettled.isEmpty)
        unsettled.settle(2, multiple: false)  // 1...4 now settled
        #expect(!unsettled.isEmpty)
        unsettled.settle(5, multiple: false)
        #expect(unsettled.isEmpty)

        for tag in UInt64(6)...10 { unsettled.handOut(tag) }
        unsettled.settle(9, multiple: false)
        unsettled.settle(7, multiple: true)  // 6...7, with 9 settled above
        #expect(!unsettled.isEmpty)
        unsettled.settle(8, multiple: false)
        #expect(!unsettled.isEmpty)
        unsettled.settle(10, multiple: false)
        #expect(unsettled.isEmpty)
    }

    @Test("settling twice, or a tag never handed out, changes nothing")
    func repeatedAndUnknown() {
        var unsettled = UnsettledDeliveries()
        unsettled.handOut(1)
        unsettled.handOut(2)
        unsettled.settle(1, multiple: false)
        unsettled.settle(1, multiple: false)
        unsettled.settle(3, multiple: true)
        #expect(!unsettled.isEmpty)
        unsettled.settle(2, multiple: true)
        #expect(unsettled.isEmpty)
    }
}

@Suite("Unsettled deliveries: runs settled out of order")
struct UnsettledDeliveryRunsTests {
    @Test("runs merge from either side and in any order; the mark moves over them")
    func runs() {
        var unsettled = UnsettledDeliveries()
        for tag in UInt64(1)...20 { unsettled.handOut(tag) }
        for tag: UInt64 in [5, 7, 6, 10, 3, 9, 12, 11, 4] { unsettled.settle(tag, multiple: false) }
        // 3...7, 9...12
        #expect(unsettled.runsSettledOutOfOrder == 2)
        unsettled.settle(8, multiple: false)
        #expect(unsettled.runsSettledOutOfOrder == 1)
        unsettled.settle(1, multiple: false)
        #expect(unsettled.runsSettledOutOfOrder == 1)
        unsettled.settle(2, multiple: false)  // 1...12
        #expect(unsettled.runsSettledOutOfOrder == 0)
        unsettled.settle(15, multiple: false)
        unsettled.settle(17, multiple: false)
        unsettled.settle(16, multiple: true)  // 1...17
        #expect(unsettled.runsSettledOutOfOrder == 0)
        #expect(!unsettled.isEmpty)
        unsettled.settle(20, multiple: false)
        unsettled.settle(19, multiple: false)
        unsettled.settle(18, multiple: false)
        #expect(unsettled.isEmpty)
    }
}
