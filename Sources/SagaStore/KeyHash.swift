/// 64-bit FNV-1a hashes of the store's random text keys (a saga's type and correlation id, a message
/// id), the keys of the sagas and inbox indexes.
///
/// Why not index the texts: with a million live sagas an index of random UUID strings is about 60 MiB,
/// so nearly every saga start read one of its leaves back from the OS and wrote it to the WAL (and the
/// inbox grows the same way over a long deduplication window). An index of 8-byte hashes is a quarter
/// of that and stays in the page cache. Lookups compare the texts too, so a collision costs one more
/// row read, never a wrong row. The hashes are stored: they must be the same in every process and
/// release (unlike Swift's `Hasher`, which is seeded per process).
public enum KeyHash {
    public static func saga(type sagaType: String, correlationId: String) -> Int64 {
        var hash = FNV1a()
        hash.add(sagaType)
        // A separator that neither text can hold in its place: ("ab", "c") and ("a", "bc") differ.
        hash.add(0)
        hash.add(correlationId)
        return hash.value
    }

    public static func message(id messageId: String) -> Int64 {
        var hash = FNV1a()
        hash.add(messageId)
        return hash.value
    }

    private struct FNV1a {
        private var state: UInt64 = 0xcbf2_9ce4_8422_2325

        mutating func add(_ byte: UInt8) {
            state ^= UInt64(byte)
            state = state &* 0x0000_0100_0000_01b3
        }

        mutating func add(_ text: String) {
            for byte in text.utf8 { add(byte) }
        }

        var value: Int64 { Int64(bitPattern: state) }
    }
}
