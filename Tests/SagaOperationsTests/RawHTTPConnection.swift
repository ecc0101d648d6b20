import Foundation

/// A TCP connection to the operations server made with plain sockets, so that a test decides when it
/// opens, what it sends and when it closes (URLSession keeps its own connections in a pool, which would
/// count against the server's connection limit at times the test does not control).
final class RawHTTPConnection {
    private var descriptor: Int32

    /// Connects to 127.0.0.1:`port`; nil when nothing accepts there.
    init?(port: Int) {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            Glibc.close(descriptor)
            return nil
        }
        self.descriptor = descriptor
    }

    deinit { close() }

    /// Closes the client's end (once).
    func close() {
        guard descriptor >= 0 else { return }
        Glibc.close(descriptor)
        descriptor = -1
    }

    /// Sends a keep-alive `GET path` and reads its whole response: the status and the body, nil when the
    /// server closed the connection or did not answer within `timeout`.
    func get(_ path: String, timeout: Duration = .seconds(5)) -> (status: Int, body: String)? {
        let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else { return nil }
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        while true {
            if let response = Self.parse(received) { return response }
            guard case .bytes(let chunk) = read(until: deadline) else { return nil }
            received += chunk
        }
    }

    /// Whether the server ends the connection (end of stream or a reset) within `timeout`.
    func isClosedByServer(within timeout: Duration) -> Bool {
        switch read(until: ContinuousClock.now + timeout) {
        case .end, .failed: true
        case .bytes, .timedOut: false
        }
    }

    private enum ReadResult {
        case bytes([UInt8])
        case end
        case timedOut
        case failed(errno: Int32)
    }

    /// What the socket has next, waiting for it until `deadline`.
    private func read(until deadline: ContinuousClock.Instant) -> ReadResult {
        let left = deadline - ContinuousClock.now
        let milliseconds = left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(max(0, milliseconds))) == 1 else { return .timedOut }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count < 0 { return .failed(errno: errno) }
        return count == 0 ? .end : .bytes(Array(buffer.prefix(count)))
    }

    /// A complete response in `bytes` (head, and a body of its Content-Length), else nil.
    private static func parse(_ bytes: [UInt8]) -> (status: Int, body: String)? {
        let separator = Array("\r\n\r\n".utf8)
        guard let end = bytes.indices.first(where: { bytes[$0...].starts(with: separator) }) else { return nil }
        let head = String(decoding: bytes[..<end], as: UTF8.self).split(separator: "\r\n")
        guard let statusLine = head.first, let status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") else {
            return nil
        }
        let length = head.dropFirst().compactMap { line -> Int? in
            let parts = line.split(separator: ":", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "content-length" else { return nil }
            return Int(parts[1].trimmingCharacters(in: .whitespaces))
        }.first ?? 0
        let body = bytes[(end + separator.count)...]
        guard body.count >= length else { return nil }
        return (status, String(decoding: body.prefix(length), as: UTF8.self))
    }
}
