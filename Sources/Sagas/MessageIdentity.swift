/// Deterministic message ids for what a handler emits.
///
/// An outgoing message's id must be the same every time the same incoming message is processed (after a
/// crash, a redelivery), so downstream inboxes drop the copies; and it must not grow along a chain of
/// messages. So it is a 128-bit hash of (incoming message id, handler, position), written like a UUID.
/// Two independent 64-bit FNV-1a hashes make collisions as unlikely as with random UUIDs for any
/// realistic number of messages; nothing here needs cryptographic strength.
public enum MessageIdentity {
    public static func derive(from incomingId: String, handler: String, position: String) -> String {
        // Both hashes in one pass over (incoming id, 0, handler, 0, position), without building the
        // byte array: this runs for every message a handler emits.
        var high = Hash(basis: 0xcbf2_9ce4_8422_2325)
        var low = Hash(basis: 0x6c62_272e_07bb_0142)
        func feed(_ byte: UInt8) {
            high.add(byte)
            low.add(byte)
        }
        for byte in incomingId.utf8 { feed(byte) }
        feed(0)
        for byte in handler.utf8 { feed(byte) }
        feed(0)
        for byte in position.utf8 { feed(byte) }
        // Version 8 (custom) UUID layout: the version and variant bits say it is not a random UUID.
        let versioned = (high.finish() & ~0xF000) | 0x8000
        let varianted = (low.finish() & ~(0xC000 << 48)) | (0x8000 << 48)
        return uuidText(versioned, varianted)
    }

    /// A random version-4 UUID in lowercase text, for saga ids. Foundation's `UUID()` opens and reads
    /// `/dev/urandom` on Linux for every id (three system calls); the system random generator is one
    /// `getrandom` call.
    public static func randomUUID() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = (generator.next() & ~0xF000) | 0x4000 as UInt64
        let low = (generator.next() & ~(0xC000 << 48)) | (0x8000 << 48) as UInt64
        return uuidText(high, low)
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Two 64-bit values as lowercase hex in the 8-4-4-4-12 layout.
    private static func uuidText(_ first: UInt64, _ second: UInt64) -> String {
        let digits = hexDigits
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var index = 0
            func put(_ value: UInt64) {
                for shift in stride(from: 60, through: 0, by: -4) {
                    if index == 8 || index == 13 || index == 18 || index == 23 {
                        buffer[index] = UInt8(ascii: "-")
                        index += 1
                    }
                    buffer[index] = digits[Int((value >> UInt64(shift)) & 0xF)]
                    index += 1
                }
            }
            put(first)
            put(second)
            return index
        }
    }

    /// 64-bit FNV-1a with a final avalanche (from SplitMix64), so that similar inputs differ in every digit.
    private struct Hash {
        var value: UInt64
        init(basis: UInt64) { value = basis }
        mutating func add(_ byte: UInt8) {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
        func finish() -> UInt64 {
            var hash = value
            hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
            hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
            return hash ^ (hash >> 31)
        }
    }
}
