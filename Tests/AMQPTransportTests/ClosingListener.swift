// A fake AMQP peer for connect failures a real broker cannot be made to produce on demand: a proxy that
// closes the socket before the greeting, a broker that closes the handshake with a given reply code, or
// one that lets the client log in and then refuses the set-up of its channels.
import AMQPTransport
import Foundation

/// The connection.close a `ClosingListener` answers the client's start-ok with.
struct HandshakeClose: Sendable {
    var code: UInt16
    var text: String

    /// What a node that is shutting down sends (as in a rolling restart).
    static let forced = HandshakeClose(
        code: 320, text: "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
}

/// How a `ClosingListener` that lets the client log in refuses what the client does next, the set-up of its
/// publish channel.
enum SetUpRefusal: Sendable {
    /// connection.close with this reply in answer to channel.open.
    case closeConnectionAtChannelOpen(HandshakeClose)
    /// The socket closed without a word in answer to channel.open.
    case dropAtChannelOpen
    /// channel.open-ok, then channel.close with this reply in answer to confirm.select.
    case closeChannelAtConfirmSelect(HandshakeClose)
}

/// A TCP listener on a free local port that reads the client's protocol header and closes the connection,
/// as a proxy without a backend does. `@unchecked Sendable`: `fd` and `port` never change after `init`;
/// the count is in a `Box` (lock-protected).
final class ClosingListener: @unchecked Sendable {
    let fd: Int32
    let port: Int
    private let count = Box(0)

    /// Connections accepted so far.
    var accepted: Int { count.withLock { $0 } }

    /// With `closeAfterGreeting`, the listener answers as a broker that refuses the connection in its
    /// handshake: it sends connection.start, reads the client's start-ok, and closes the connection with
    /// that reply code and text (e.g. `.forced`, a node shutting down) instead of sending connection.tune.
    ///
    /// With `afterLogin`, it lets the client log in (connection.tune, connection.open-ok) and refuses the
    /// set-up that follows as that says.
    ///
    /// With `answer`, it writes those bytes after the protocol header and closes, as a server of another
    /// protocol does (an HTTP server's 400, a TLS listener's alert).
    init(closeAfterGreeting reply: HandshakeClose? = nil, afterLogin refusal: SetUpRefusal? = nil,
         answer: [UInt8]? = nil) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw AMQPError(.library, message: "socket() failed") }
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw AMQPError(.library, message: "bind/listen failed") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let count = self.count
        let thread = Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                count.withLock { $0 += 1 }
                // Read the 8-byte protocol header, so the close is a clean FIN rather than a reset.
                var header = [UInt8](repeating: 0, count: 8)
                _ = Self.readFully(client, &header)
                if let answer {
                    Self.write(answer, to: client)
                } else if let reply {
                    Self.write(Self.startFrame, to: client)
                    Self.skipFrame(client)
                    Self.write(Self.closeFrame(class: 10, method: 50, channel: 0, reply), to: client)
                    Self.skipFrame(client)
                } else if let refusal {
                    Self.logIn(client)
                    Self.refuse(refusal, client)
                }
                close(client)
            }
        }
        thread.start()
    }

    /// The broker's side of a login that succeeds: start, tune (channel_max 0, frame_max 128 KiB, no
    /// heartbeat), open-ok.
    private static func logIn(_ client: Int32) {
        write(startFrame, to: client)
        skipFrame(client)
        write(methodFrame(class: 10, method: 30, arguments: short(0) + long(131_072) + short(0)), to: client)
        skipFrame(client)
        skipFrame(client)
        write(methodFrame(class: 10, method: 41, arguments: [0]), to: client)
    }

    private static func refuse(_ refusal: SetUpRefusal, _ client: Int32) {
        skipFrame(client)
        switch refusal {
        case .closeConnectionAtChannelOpen(let reply):
            write(closeFrame(class: 10, method: 50, channel: 0, reply), to: client)
            skipFrame(client)
        case .dropAtChannelOpen:
            break
        case .closeChannelAtConfirmSelect(let reply):
            write(methodFrame(class: 20, method: 11, channel: 2, arguments: long(0)), to: client)
            skipFrame(client)
            write(closeFrame(class: 20, method: 40, channel: 2, reply), to: client)
            skipFrame(client)
        }
    }

    /// connection.close or channel.close (same arguments) with `reply`.
    private static func closeFrame(class classId: UInt16, method: UInt16, channel: UInt16, _ reply: HandshakeClose) -> [UInt8] {
        let text = Array(reply.text.utf8.prefix(255))
        return methodFrame(class: classId, method: method, channel: channel,
                           arguments: short(reply.code) + [UInt8(text.count)] + text + short(0) + short(0))
    }

    private static let startFrame = methodFrame(class: 10, method: 10, arguments: [0, 9] + long(0)
        + long(5) + Array("PLAIN".utf8) + long(5) + Array("en_US".utf8))

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private static func short(_ value: UInt16) -> [UInt8] { [UInt8(value >> 8), UInt8(value & 0xFF)] }
    private static func long(_ value: UInt32) -> [UInt8] { [24, 16, 8, 0].map { UInt8((value >> $0) & 0xFF) } }

    private static func methodFrame(class classId: UInt16, method: UInt16, channel: UInt16 = 0, arguments: [UInt8]) -> [UInt8] {
        let payload = short(classId) + short(method) + arguments
        return [1] + short(channel) + long(UInt32(payload.count)) + payload + [0xCE]
    }

    private static func write(_ bytes: [UInt8], to client: Int32) {
        _ = bytes.withUnsafeBytes { Glibc.write(client, $0.baseAddress!, $0.count) }
    }

    /// Reads one frame (or gives up when the client closes).
    private static func skipFrame(_ client: Int32) {
        var header = [UInt8](repeating: 0, count: 7)
        guard readFully(client, &header) else { return }
        let size = header[3...6].reduce(0) { $0 << 8 | Int($1) }
        var rest = [UInt8](repeating: 0, count: size + 1)
        _ = readFully(client, &rest)
    }

    private static func readFully(_ client: Int32, _ buffer: inout [UInt8]) -> Bool {
        var received = 0
        let count = buffer.count
        while received < count {
            let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress! + received, count - received) }
            if n <= 0 { return false }
            received += n
        }
        return true
    }
}
