/// A 64-bit FNV-1a hash of a saga's (type, correlation id), the key of the sagas table's index.
///
/// Why not index the two texts: with a million live sagas an index of random UUID strings is about 60
/// MiB, so nearly every saga start read one of its leaves back from the OS and wrote it to the WAL. An
/// index of 8-byte hashes is a quarter of that and stays in the page cache. Lookups compare the texts
/// too, so a collision costs one more row read, never a wrong saga. The hash is stored: it must be
/// the same in every process and release (unlike Swift's `Hasher`, which is seeded per process).
public enum SagaKeyHash {
    public static func hash(sagaType: String, correlationId: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func add(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        for byte in sagaType.utf8 { add(byte) }
        // A separator that neither text can hold in its place: ("ab", "c") and ("a", "bc") differ.
        add(0)
        for byte in correlationId.utf8 { add(byte) }
        return Int64(bitPattern: hash)
    }
}
