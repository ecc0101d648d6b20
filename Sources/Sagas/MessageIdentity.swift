/// Deterministic message ids for what a handler emits.
///
/// An outgoing message's id must be the same every time the same incoming message is processed (after a
/// crash, a redelivery), so downstream inboxes drop the copies; and it must not grow along a chain of
/// messages. So it is a 128-bit hash of (incoming message id, handler, position), written like a UUID.
/// Two independent 64-bit FNV-1a hashes make collisions as unlikely as with random UUIDs for any
/// realistic number of messages; nothing here needs cryptographic strength.
public enum MessageIdentity {
    public static func derive(from incomingId: String, handler: String, position: String) -> String {
        var bytes = Array(incomingId.utf8)
        bytes.append(0)
        bytes += handler.utf8
        bytes.append(0)
        bytes += position.utf8
        let high = fnv1a(bytes, basis: 0xcbf2_9ce4_8422_2325)
        let low = fnv1a(bytes, basis: 0x6c62_272e_07bb_0142)
        // Version 8 (custom) UUID layout: the version and variant bits say it is not a random UUID.
        let versioned = (high & ~0xF000) | 0x8000
        let varianted = (low & ~(0xC000 << 48)) | (0x8000 << 48)
        let hex = String(versioned, radix: 16).leftPadded(to: 16) + String(varianted, radix: 16).leftPadded(to: 16)
        let c = Array(hex)
        return String(c[0..<8]) + "-" + String(c[8..<12]) + "-" + String(c[12..<16]) + "-" + String(c[16..<20]) + "-"
            + String(c[20..<32])
    }

    private static func fnv1a(_ bytes: [UInt8], basis: UInt64) -> UInt64 {
        var hash = basis
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        // Final avalanche (from SplitMix64) so that similar inputs differ in every digit.
        hash = (hash ^ (hash >> 30)) &* 0xbf58_476d_1ce4_e5b9
        hash = (hash ^ (hash >> 27)) &* 0x94d0_49bb_1331_11eb
        return hash ^ (hash >> 31)
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
