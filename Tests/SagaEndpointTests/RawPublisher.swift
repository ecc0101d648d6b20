import AMQPTransport
import CRabbitMQ
import Foundation

/// Publishes a message whose short-string properties are raw bytes, straight through rabbitmq-c: the
/// transport's properties are Swift strings, which cannot carry what other clients may put on the wire
/// (bytes that are not UTF-8). Blocking; for tests only.
enum RawPublisher {
    struct Failure: Error, CustomStringConvertible { var description: String }

    /// Publishes `body` to `queue` through the default exchange with these properties (a nil one is
    /// absent), then closes the channel, which the broker answers only after it routed the message.
    static func publish(url: String, queue: String, body: [UInt8], messageId: [UInt8]?, type: [UInt8]?,
                        correlationId: [UInt8]? = nil, replyTo: [UInt8]? = nil, appId: [UInt8]? = nil) throws {
        let c = try AMQPConfiguration(url: url)
        guard let state = amqp_new_connection() else { throw Failure(description: "amqp_new_connection") }
        defer { amqp_destroy_connection(state) }
        guard let socket = amqp_tcp_socket_new(state), amqp_socket_open(socket, c.host, Int32(c.port)) == 0 else {
            throw Failure(description: "cannot connect to \(c.host):\(c.port)")
        }
        var none = amqp_table_t(num_entries: 0, entries: nil)
        guard csaga_amqp_login_plain(state, c.vhost, 0, 131_072, 0, &none, c.user, c.password).reply_type
            == AMQP_RESPONSE_NORMAL else { throw Failure(description: "login refused") }
        defer { _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS)) }
        _ = amqp_channel_open(state, 1)
        guard amqp_get_rpc_reply(state).reply_type == AMQP_RESPONSE_NORMAL else { throw Failure(description: "channel.open") }

        var allocations: [UnsafeMutableRawPointer] = []
        defer { allocations.forEach { free($0) } }
        func bytes(_ value: [UInt8]) -> amqp_bytes_t {
            let memory = malloc(max(1, value.count))!
            allocations.append(memory)
            value.withUnsafeBytes { memory.copyMemory(from: $0.baseAddress!, byteCount: value.count) }
            return amqp_bytes_t(len: value.count, bytes: memory)
        }
        var properties = amqp_basic_properties_t()
        var flags = CSAGA_BASIC_CONTENT_TYPE_FLAG | CSAGA_BASIC_DELIVERY_MODE_FLAG
        properties.content_type = bytes(Array("application/json".utf8))
        properties.delivery_mode = 2
        if let messageId { flags |= CSAGA_BASIC_MESSAGE_ID_FLAG; properties.message_id = bytes(messageId) }
        if let type { flags |= CSAGA_BASIC_TYPE_FLAG; properties.type = bytes(type) }
        if let correlationId { flags |= CSAGA_BASIC_CORRELATION_ID_FLAG; properties.correlation_id = bytes(correlationId) }
        if let replyTo { flags |= CSAGA_BASIC_REPLY_TO_FLAG; properties.reply_to = bytes(replyTo) }
        if let appId { flags |= CSAGA_BASIC_APP_ID_FLAG; properties.app_id = bytes(appId) }
        properties._flags = flags
        let rc = amqp_basic_publish(state, 1, amqp_bytes_t(len: 0, bytes: nil), bytes(Array(queue.utf8)), 0, 0,
                                    &properties, bytes(body))
        guard rc == 0 else { throw Failure(description: "basic.publish: \(rc)") }
        _ = amqp_channel_close(state, 1, Int32(AMQP_REPLY_SUCCESS))
    }
}
