import Foundation
import Synchronization

/// A TCP proxy in front of the broker that cuts the first connection whose client sends a method of the
/// given class and method (the frame is not forwarded: both sockets are shut down instead); every other
/// connection passes untouched. For a connection lost at an exact step, which closing it from the broker
/// side cannot time. `@unchecked Sendable`: `listener` and `port` never change after `init`; the one
/// mutable flag is in a `Mutex`.
final class CuttingProxy: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let cutDone = Mutex(false)

    /// Whether the connection was cut.
    var didCut: Bool { cutDone.withLock { $0 } }

    init(upstreamPort: Int, cutAtClass classId: UInt16, method: UInt16) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0, listen(fd, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                guard let upstream = Self.connect(port: upstreamPort) else { close(client); continue }
                Thread { Self.pump(from: upstream, to: client) }.start()
                Thread { self.forwardFrames(from: client, to: upstream, classId: classId, method: method) }.start()
            }
        }.start()
    }

    func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    /// Client to broker, frame by frame, cutting at the first matching method (of any connection, once).
    private func forwardFrames(from client: Int32, to upstream: Int32, classId: UInt16, method: UInt16) {
        defer { shutdown(client, Int32(SHUT_RDWR)); shutdown(upstream, Int32(SHUT_RDWR)) }
        var header = [UInt8](repeating: 0, count: 8)
        guard Self.read(client, &header), Self.write(upstream, header) else { return }
        while true {
            var frameHeader = [UInt8](repeating: 0, count: 7)
            guard Self.read(client, &frameHeader) else { return }
            let size = frameHeader[3...6].reduce(0) { $0 << 8 | Int($1) }
            var rest = [UInt8](repeating: 0, count: size + 1)
            guard Self.read(client, &rest) else { return }
            if frameHeader[0] == 1, size >= 4,
               UInt16(rest[0]) << 8 | UInt16(rest[1]) == classId, UInt16(rest[2]) << 8 | UInt16(rest[3]) == method,
               cutDone.withLock({ done in defer { done = true }; return !done }) {
                return
            }
            guard Self.write(upstream, frameHeader + rest) else { return }
        }
    }

    private static func pump(from source: Int32, to destination: Int32) {
        defer { shutdown(source, Int32(SHUT_RDWR)); shutdown(destination, Int32(SHUT_RDWR)) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(source, $0.baseAddress!, $0.count) }
            if n <= 0 || !write(destination, Array(buffer[0..<n])) { return }
        }
    }

    private static func connect(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if connected != 0 { close(fd); return nil }
        return fd
    }

    private static func read(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        var received = 0
        let count = buffer.count
        while received < count {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + received, count - received) }
            if n <= 0 { return false }
            received += n
        }
        return true
    }

    private static func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, bytes.count - sent) }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}
