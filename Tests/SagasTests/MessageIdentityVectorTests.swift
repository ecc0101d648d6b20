import Foundation
import Sagas
import Testing

/// Derived ids are part of what is stored and sent: a copy re-sent after an upgrade must carry the id the
/// first send had, so the derivation must never change. These vectors pin it.
@Suite("Derived message ids: pinned vectors, random saga ids")
struct MessageIdentityVectorTests {
    @Test("the derivation gives the same ids as it always did", arguments: [
        ("m-1", "OrderSaga", "1", "8229f529-6c10-8fc8-8c8a-d192e1106615"),
        ("request-17", "TransferSaga", "t2", "050118be-fc83-87d7-a892-7cbecc46319d"),
        ("", "", "", "7bc21004-6bd6-86cc-beab-108601d1cb73"),
        ("ünïcødé-✓", "h", "42", "ffa92cd3-cb90-86b6-bf90-50dd6c9d5cbb"),
        ("x", "y", "z-\u{0}", "2d409595-6091-84cf-95ff-8e73289b2489"),
    ])
    func stable(incoming: String, handler: String, position: String, expected: String) {
        #expect(MessageIdentity.derive(from: incoming, handler: handler, position: position) == expected)
    }

    @Test("ids differ when any part differs, also when parts shift between fields")
    func distinct() {
        let ids = [
            MessageIdentity.derive(from: "ab", handler: "c", position: "1"),
            MessageIdentity.derive(from: "a", handler: "bc", position: "1"),
            MessageIdentity.derive(from: "ab", handler: "c", position: "2"),
            MessageIdentity.derive(from: "ab", handler: "d", position: "1"),
        ]
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.count == 36 && $0.split(separator: "-").map(\.count) == [8, 4, 4, 4, 12] })
    }

    @Test("random ids are version-4 UUIDs that Foundation parses, and differ")
    func random() {
        let ids = (0..<1000).map { _ in MessageIdentity.randomUUID() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(20) {
            #expect(UUID(uuidString: id)?.uuidString.lowercased() == id)
            #expect(Array(id)[14] == "4")
            #expect("89ab".contains(Array(id)[19]))
        }
    }
}
