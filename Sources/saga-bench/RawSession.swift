// A rabbitmq-c connection for the bench's loops that speak the C API themselves (the raw baseline and the
// latency run's paced client): channel 1 consumes, channel 2 publishes in confirm mode, as AMQPTransport
// does. Used only from the thread that opened it.
import AMQPTransport
import CRabbitMQ

final class RawSession {
    static let consumeChannel: amqp_channel_t = 1
    static let publishChannel: amqp_channel_t = 2

    let state: amqp_connection_state_t

    /// `role` names the loop in the error for a TLS URL (these loops speak plain TCP only).
    init(_ c: AMQPConfiguration, role: String) throws {
        guard c.tls == nil else { throw BenchmarkError("\(role) speaks plain TCP only (use an amqp:// URL)") }
        guard let state = amqp_new_connection() else { throw BenchmarkError("amqp_new_connection failed") }
        self.state = state
        guard let socket = amqp_tcp_socket_new(state) else { throw BenchmarkError("amqp_tcp_socket_new failed") }
        let rc = amqp_socket_open(socket, c.host, Int32(c.port))
        guard rc == AMQP_STATUS_OK.rawValue else { throw Self.failure("connect to \(c.host):\(c.port)", rc) }
        var properties = amqp_empty_table
        try check(csaga_amqp_login_plain(state, c.vhost, 0, Int32(c.frameMax), 0, &properties, c.user, c.password), "login")
        for channel in [Self.consumeChannel, Self.publishChannel] {
            _ = amqp_channel_open(state, channel)
            try check(amqp_get_rpc_reply(state), "channel.open \(channel)")
        }
        _ = amqp_confirm_select(state, Self.publishChannel)
        try check(amqp_get_rpc_reply(state), "confirm.select")
    }

    deinit {
        _ = amqp_connection_close(state, 200)
        amqp_destroy_connection(state)
    }

    func check(_ reply: amqp_rpc_reply_t, _ operation: String) throws {
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION { throw Self.failure(operation, reply.library_error) }
        throw BenchmarkError("\(operation) failed: the broker closed the channel or connection (method \(reply.reply.id))")
    }

    static func failure(_ operation: String, _ rc: Int32) -> BenchmarkError {
        BenchmarkError("\(operation) failed: \(String(cString: amqp_error_string2(rc)))")
    }
}
