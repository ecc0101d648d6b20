// `scripts/broker.sh` (behind `make broker` and every dedicated test node) must keep the node on the
// loopback interface: AMQP, and the Erlang distribution port rabbitmqctl uses, which listens on every
// interface unless told otherwise.
import BrokerTestSupport
import Foundation
import Testing

@Suite("Broker script", .timeLimit(.minutes(6)))
struct BrokerScriptTests {
    /// The local addresses (as "a.b.c.d") of the IPv4 sockets listening on `port`, from /proc/net/tcp
    /// (no tool needed: `ss` may not be installed).
    static func listeningAddresses(port: Int) throws -> [String] {
        let table = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
        return table.split(separator: "\n").dropFirst().compactMap { line in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count > 3, fields[3] == "0A" else { return nil }  // 0A: LISTEN
            let local = fields[1].split(separator: ":")
            guard local.count == 2, Int(local[1], radix: 16) == port, let hex = UInt32(local[0], radix: 16) else { return nil }
            // Little-endian on x86: the first octet is the lowest byte.
            return (0..<4).map { String((hex >> (8 * $0)) & 0xFF) }.joined(separator: ".")
        }
    }

    // Failed before: the distribution port listened on 0.0.0.0.
    @Test("a node listens on 127.0.0.1 only, AMQP and distribution port alike")
    func loopbackOnly() async throws {
        let node = try await runOnThread { try DedicatedBrokerNode.start(name: "loopback-\(UInt16.random(in: 1000...9999))") }
        defer { node.shutdown() }
        for port in [node.port, node.distPort] {
            let addresses = try Self.listeningAddresses(port: port)
            #expect(!addresses.isEmpty, "nothing listens on \(port)")
            #expect(addresses.allSatisfy { $0 == "127.0.0.1" }, "port \(port): \(addresses)")
        }
    }
}
