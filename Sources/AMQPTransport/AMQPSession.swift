import CRabbitMQ
import Foundation

/// One rabbitmq-c connection: the socket, the login and the synchronous methods.
///
/// Not Sendable and not thread-safe, like the library under it: only `AMQPConnection` uses it, from its
/// dedicated thread. All memory the library returns is copied before the next library call.
final class AMQPSession {
    let state: amqp_connection_state_t
    private(set) var isOpen = true
    let heartbeat: Int
    /// When `sendHeartbeatIfDue` last sent a heartbeat frame (the login counts as the first).
    private var lastHeartbeatSent = ContinuousClock.now
    /// When the next heartbeat frame is due (half an interval after the last); nil without heartbeats or
    /// once the socket is closed (the pump must not wake for it then).
    var nextHeartbeat: ContinuousClock.Instant? {
        heartbeat > 0 && isOpen ? lastHeartbeatSent + .milliseconds(heartbeat * 500) : nil
    }
    let frameMax: Int
    /// The highest channel number the broker allows (its channel_max, or the client's if lower).
    let channelMax: UInt16
    let serverProperties: FieldTable

    /// Opens the socket, logs in and returns a session with no channels open.
    init(configuration c: AMQPConfiguration) throws {
        guard let state = amqp_new_connection() else {
            throw AMQPError(.library, message: "amqp_new_connection failed")
        }
        var success = false
        defer { if !success { amqp_destroy_connection(state) } }

        let socket: OpaquePointer?
        if let tls = c.tls {
            socket = amqp_ssl_socket_new(state)
            guard let socket else { throw AMQPError(.connectFailed, message: "cannot create a TLS socket") }
            if let ca = tls.caCertificateFile {
                let rc = amqp_ssl_socket_set_cacert(socket, ca)
                if rc != AMQP_STATUS_OK.rawValue {
                    throw AMQPError(.invalidConfiguration, message: "cannot load CA certificate \(ca): \(Self.statusText(rc))", libraryStatus: rc)
                }
            }
            if let cert = tls.certificateFile, let key = tls.keyFile {
                let rc = amqp_ssl_socket_set_key(socket, cert, key)
                if rc != AMQP_STATUS_OK.rawValue {
                    throw AMQPError(.invalidConfiguration, message: "cannot load client certificate \(cert) / key \(key): \(Self.statusText(rc))", libraryStatus: rc)
                }
            }
            amqp_ssl_socket_set_verify_peer(socket, tls.verifyPeer ? 1 : 0)
            amqp_ssl_socket_set_verify_hostname(socket, tls.verifyHostname ? 1 : 0)
        } else {
            socket = amqp_tcp_socket_new(state)
            guard socket != nil else { throw AMQPError(.connectFailed, message: "cannot create a TCP socket") }
        }

        if let problem = c.outOfRangeSettings { throw AMQPError(.invalidConfiguration, message: problem) }
        var timeout = Self.cTimeval(c.connectTimeout)
        let host = c.tls?.serverName ?? c.host
        let rc = amqp_socket_open_noblock(socket, host == c.host ? c.host : host, Int32(c.port), &timeout)
        guard rc == AMQP_STATUS_OK.rawValue else {
            throw AMQPError.socketOpen(rc, message: Self.connectFailure(rc, configuration: c))
        }
        var handshake = Self.cTimeval(c.connectTimeout)
        _ = amqp_set_handshake_timeout(state, &handshake)
        var rpc = Self.cTimeval(c.rpcTimeout)
        _ = amqp_set_rpc_timeout(state, &rpc)

        let arena = CArena()
        var properties = arena.table(Self.clientProperties(c))
        // In range (`outOfRangeSettings`), so the conversions cannot trap.
        let reply = csaga_amqp_login_plain(state, c.vhost, Int32(c.channelMax), Int32(c.frameMax), Int32(c.heartbeat),
                                          &properties, c.user, c.password)
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            let error = Self.error(from: reply, operation: "login to vhost '\(c.vhost)' as '\(c.user)'")
            // Whether the broker's connection.start came (it brings the server properties): a socket closed
            // before it is no answer to the login. `AMQPError.handshake` decides what is retried.
            let greetingReceived = (amqp_get_server_properties(state)?.pointee.num_entries ?? 0) > 0
            throw AMQPError.handshake(error, greetingReceived: greetingReceived, configuration: c)
        }
        self.state = state
        self.heartbeat = Int(amqp_get_heartbeat(state))
        self.frameMax = Int(amqp_get_frame_max(state))
        // rabbitmq-c stores 65535 when neither side set a limit (0 means none in the protocol).
        let channelMax = amqp_get_channel_max(state)
        self.channelMax = channelMax > 0 && channelMax < Int32(UInt16.max) ? UInt16(channelMax) : UInt16.max
        if let server = amqp_get_server_properties(state) {
            self.serverProperties = CDecode.table(server.pointee)
        } else {
            self.serverProperties = [:]
        }
        success = true
    }

    deinit {
        if isOpen { closeQuietly() }
        amqp_destroy_connection(state)
    }

    /// connection.close, without waiting long: used on shutdown and when abandoning a broken socket.
    /// The broker's close-ok is awaited at most `closeTimeout`, not the whole RPC timeout (30 s): a broker
    /// that does not answer (frozen, or cut off) held each connection's close that long, so a shutdown of
    /// an endpoint with two connections overran its 30 s limit.
    func closeQuietly() {
        guard isOpen else { return }
        isOpen = false
        var limit = Self.cTimeval(Self.closeTimeout)
        _ = amqp_set_rpc_timeout(state, &limit)
        _ = amqp_connection_close(state, 200)
    }

    static let closeTimeout: Duration = .seconds(3)

    /// Marks the socket dead (after a library error) so `deinit` does not try to talk to the broker.
    func markClosed() { isOpen = false }

    var socketFD: Int32 { amqp_get_sockfd(state) }

    /// Frames the library has read but not handed out yet (during synchronous methods).
    var hasBufferedFrames: Bool {
        amqp_frames_enqueued(state) != 0 || amqp_data_in_buffer(state) != 0
    }

    /// Whole frames a synchronous method read ahead and queued for later: they come before anything still
    /// in the socket or the read buffer.
    var hasQueuedFrames: Bool { amqp_frames_enqueued(state) != 0 }

    // MARK: Channels

    func openChannel(_ channel: UInt16) throws {
        _ = amqp_channel_open(state, channel)
        try check(channel: channel, operation: "channel.open \(channel)")
    }

    /// channel.close, waiting for close-ok. rabbitmq-c returns its reply instead of recording it for
    /// `amqp_get_rpc_reply`, so it is checked here rather than by `check`.
    func closeChannel(_ channel: UInt16) throws {
        let reply = amqp_channel_close(state, channel, AMQP_REPLY_SUCCESS)
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        let error = Self.error(from: reply, operation: "channel.close \(channel)")
        acknowledgeClose(reply, channel: channel)
        throw error
    }

    func confirmSelect(_ channel: UInt16) throws {
        _ = amqp_confirm_select(state, channel)
        try check(channel: channel, operation: "confirm.select")
    }

    func qos(_ channel: UInt16, prefetch: UInt16) throws {
        _ = amqp_basic_qos(state, channel, 0, prefetch, 0)
        try check(channel: channel, operation: "basic.qos \(prefetch)")
    }

    /// Throws the error of the last synchronous method, if it failed.
    func check(channel: UInt16, operation: String) throws {
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        let error = Self.error(from: reply, operation: operation)
        acknowledgeClose(reply, channel: channel)
        throw error
    }

    /// Answers a broker-initiated close that a synchronous method ran into, as the protocol requires.
    private func acknowledgeClose(_ reply: amqp_rpc_reply_t, channel: UInt16) {
        switch reply.reply_type {
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == CSAGA_CHANNEL_CLOSE_METHOD:
            sendChannelCloseOk(channel)
        case AMQP_RESPONSE_SERVER_EXCEPTION where reply.reply.id == CSAGA_CONNECTION_CLOSE_METHOD:
            sendConnectionCloseOk()
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            markClosed()
        default:
            break
        }
    }

    func sendChannelCloseOk(_ channel: UInt16) {
        var ok = amqp_channel_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, channel, CSAGA_CHANNEL_CLOSE_OK_METHOD, &ok)
    }

    func sendConnectionCloseOk() {
        var ok = amqp_connection_close_ok_t(dummy: 0)
        _ = amqp_send_method(state, 0, CSAGA_CONNECTION_CLOSE_OK_METHOD, &ok)
        isOpen = false
    }

    // MARK: Frames

    enum ReadResult {
        case frame(amqp_frame_t)
        case none
        case failed(AMQPError)
    }

    /// Reads one frame if one is available now, without blocking. Also sends a heartbeat when one is
    /// due and detects missed heartbeats (the library does both only inside its calls).
    func readFrame() -> ReadResult {
        var frame = amqp_frame_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        let rc = amqp_simple_wait_frame_noblock(state, &frame, &zero)
        if rc == AMQP_STATUS_OK.rawValue { return .frame(frame) }
        if rc == AMQP_STATUS_TIMEOUT.rawValue { return .none }
        markClosed()
        let code: AMQPError.Code = .connectionLost
        return .failed(AMQPError(code, message: Self.statusText(rc), operation: "reading frames", libraryStatus: rc))
    }

    func releaseBuffers() {
        amqp_maybe_release_buffers(state)
    }

    /// Sends a heartbeat frame when half the negotiated interval has passed since this client's last one.
    /// rabbitmq-c sends one only after a whole interval without other frames, and RabbitMQ closes a
    /// connection that stayed silent for about two intervals ("missed heartbeats from client"): a client
    /// thread held up for one interval on a loaded machine was cut off. RabbitMQ's own clients send at half
    /// the interval, which leaves a margin of one and a half.
    func sendHeartbeatIfDue(now: ContinuousClock.Instant) -> AMQPError? {
        guard let due = nextHeartbeat, now >= due else { return nil }
        lastHeartbeatSent = now
        var frame = amqp_frame_t()
        frame.frame_type = CSAGA_FRAME_HEARTBEAT
        frame.channel = 0
        let rc = amqp_send_frame(state, &frame)
        guard rc != AMQP_STATUS_OK.rawValue else { return nil }
        markClosed()
        return AMQPError(.connectionLost, message: Self.statusText(rc), operation: "sending a heartbeat", libraryStatus: rc)
    }

    // MARK: Helpers

    static func statusText(_ rc: Int32) -> String {
        String(cString: amqp_error_string2(rc))
    }

    /// Why the socket (or the TLS handshake) could not be opened, and for TLS what to check.
    static func connectFailure(_ rc: Int32, configuration c: AMQPConfiguration) -> String {
        let target = "\(c.host):\(c.port)"
        switch rc {
        case AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue:
            return "TLS handshake with \(target) failed: the broker's certificate could not be verified "
                + "(\(statusText(rc))); give the CA that signed it with cacertfile=PATH "
                + "(or verify=verify_none, for throwaway set-ups only)"
        case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
            return "TLS handshake with \(target) failed: the broker's certificate does not name "
                + "'\(c.tls?.serverName ?? c.host)' (\(statusText(rc))); connect by a name the certificate lists"
        case AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue, AMQP_STATUS_SSL_ERROR.rawValue:
            return "TLS handshake with \(target) failed (\(statusText(rc))): is it a TLS listener, does the broker "
                + "require a client certificate (certfile=, keyfile=), and does it trust its CA?"
        default:
            // rabbitmq-c connects without blocking and keeps the socket's own error to itself (errno then
            // says only "in progress"), so there is no more detail to give.
            return "cannot connect to \(target): \(statusText(rc))"
        }
    }

    static func cTimeval(_ duration: Duration) -> timeval {
        let (seconds, attoseconds) = duration.components
        return timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
    }

    static func error(from reply: amqp_rpc_reply_t, operation: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            let rc = reply.library_error
            return AMQPError(.connectionLost, message: statusText(rc), operation: operation, libraryStatus: rc)
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == CSAGA_CHANNEL_CLOSE_METHOD, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return AMQPError(.channelClosed, replyCode: close.reply_code,
                                 message: CDecode.string(close.reply_text), operation: operation)
            }
            if reply.reply.id == CSAGA_CONNECTION_CLOSE_METHOD, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return AMQPError(.connectionClosed, replyCode: close.reply_code,
                                 message: CDecode.string(close.reply_text), operation: operation)
            }
            return AMQPError(.library, message: "unexpected server method \(reply.reply.id)", operation: operation)
        default:
            return AMQPError(.library, message: "no reply", operation: operation)
        }
    }

    private static func clientProperties(_ c: AMQPConfiguration) -> FieldTable {
        var properties: FieldTable = [
            "product": "swift-saga-endpoint",
            "platform": "Swift",
            "information": "AMQP over rabbitmq-c",
            "capabilities": .table([
                "publisher_confirms": true,
                "consumer_cancel_notify": true,
                "basic.nack": true,
                "connection.blocked": true,
                "authentication_failure_close": true,
                "exchange_exchange_bindings": true,
            ]),
        ]
        if let name = c.connectionName { properties["connection_name"] = .string(name) }
        return properties
    }
}
