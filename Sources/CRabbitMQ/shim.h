// Thin shim over rabbitmq-c for Swift.
//
// Why it exists:
// - rabbitmq-c 0.11 (Debian 12) installs `amqp.h` at the top of the include path; 0.12 and later install
//   `rabbitmq-c/amqp.h`. Both layouts are supported here so the Swift code never names a header.
// - `amqp_login` and `amqp_login_with_properties` are variadic, which Swift cannot call.
// - A few flag macros are expressions the Swift importer may not import; they are re-exported as
//   constants.
#ifndef CSAGA_RABBITMQ_SHIM_H
#define CSAGA_RABBITMQ_SHIM_H

#if __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/framing.h>
#include <rabbitmq-c/tcp_socket.h>
#include <rabbitmq-c/ssl_socket.h>
#else
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <amqp_ssl_socket.h>
#endif

#include <stdint.h>

/// `amqp_login_with_properties` with SASL PLAIN, callable from Swift.
static inline amqp_rpc_reply_t csaga_amqp_login_plain(amqp_connection_state_t state, const char *vhost,
                                                      int channel_max, int frame_max, int heartbeat,
                                                      const amqp_table_t *client_properties,
                                                      const char *user, const char *password) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, client_properties,
                                    AMQP_SASL_METHOD_PLAIN, user, password);
}

/// `amqp_login_with_properties` with SASL EXTERNAL (client certificate identity), callable from Swift.
static inline amqp_rpc_reply_t csaga_amqp_login_external(amqp_connection_state_t state, const char *vhost,
                                                         int channel_max, int frame_max, int heartbeat,
                                                         const amqp_table_t *client_properties,
                                                         const char *identity) {
  return amqp_login_with_properties(state, vhost, channel_max, frame_max, heartbeat, client_properties,
                                    AMQP_SASL_METHOD_EXTERNAL, identity);
}

static const amqp_flags_t CSAGA_BASIC_CONTENT_TYPE_FLAG = AMQP_BASIC_CONTENT_TYPE_FLAG;
static const amqp_flags_t CSAGA_BASIC_CONTENT_ENCODING_FLAG = AMQP_BASIC_CONTENT_ENCODING_FLAG;
static const amqp_flags_t CSAGA_BASIC_HEADERS_FLAG = AMQP_BASIC_HEADERS_FLAG;
static const amqp_flags_t CSAGA_BASIC_DELIVERY_MODE_FLAG = AMQP_BASIC_DELIVERY_MODE_FLAG;
static const amqp_flags_t CSAGA_BASIC_PRIORITY_FLAG = AMQP_BASIC_PRIORITY_FLAG;
static const amqp_flags_t CSAGA_BASIC_CORRELATION_ID_FLAG = AMQP_BASIC_CORRELATION_ID_FLAG;
static const amqp_flags_t CSAGA_BASIC_REPLY_TO_FLAG = AMQP_BASIC_REPLY_TO_FLAG;
static const amqp_flags_t CSAGA_BASIC_EXPIRATION_FLAG = AMQP_BASIC_EXPIRATION_FLAG;
static const amqp_flags_t CSAGA_BASIC_MESSAGE_ID_FLAG = AMQP_BASIC_MESSAGE_ID_FLAG;
static const amqp_flags_t CSAGA_BASIC_TIMESTAMP_FLAG = AMQP_BASIC_TIMESTAMP_FLAG;
static const amqp_flags_t CSAGA_BASIC_TYPE_FLAG = AMQP_BASIC_TYPE_FLAG;
static const amqp_flags_t CSAGA_BASIC_USER_ID_FLAG = AMQP_BASIC_USER_ID_FLAG;
static const amqp_flags_t CSAGA_BASIC_APP_ID_FLAG = AMQP_BASIC_APP_ID_FLAG;
static const amqp_flags_t CSAGA_BASIC_CLUSTER_ID_FLAG = AMQP_BASIC_CLUSTER_ID_FLAG;

// Method ids are macros with casts, which the Swift importer drops.
static const amqp_method_number_t CSAGA_BASIC_DELIVER_METHOD = AMQP_BASIC_DELIVER_METHOD;
static const amqp_method_number_t CSAGA_BASIC_ACK_METHOD = AMQP_BASIC_ACK_METHOD;
static const amqp_method_number_t CSAGA_BASIC_NACK_METHOD = AMQP_BASIC_NACK_METHOD;
static const amqp_method_number_t CSAGA_BASIC_RETURN_METHOD = AMQP_BASIC_RETURN_METHOD;
static const amqp_method_number_t CSAGA_BASIC_CANCEL_METHOD = AMQP_BASIC_CANCEL_METHOD;
static const amqp_method_number_t CSAGA_BASIC_CANCEL_OK_METHOD = AMQP_BASIC_CANCEL_OK_METHOD;
static const amqp_method_number_t CSAGA_CHANNEL_CLOSE_METHOD = AMQP_CHANNEL_CLOSE_METHOD;
static const amqp_method_number_t CSAGA_CHANNEL_CLOSE_OK_METHOD = AMQP_CHANNEL_CLOSE_OK_METHOD;
static const amqp_method_number_t CSAGA_CHANNEL_FLOW_METHOD = AMQP_CHANNEL_FLOW_METHOD;
static const amqp_method_number_t CSAGA_CONNECTION_CLOSE_METHOD = AMQP_CONNECTION_CLOSE_METHOD;
static const amqp_method_number_t CSAGA_CONNECTION_CLOSE_OK_METHOD = AMQP_CONNECTION_CLOSE_OK_METHOD;
static const amqp_method_number_t CSAGA_CONNECTION_BLOCKED_METHOD = AMQP_CONNECTION_BLOCKED_METHOD;
static const amqp_method_number_t CSAGA_CONNECTION_UNBLOCKED_METHOD = AMQP_CONNECTION_UNBLOCKED_METHOD;
static const uint8_t CSAGA_FRAME_METHOD = AMQP_FRAME_METHOD;
static const uint8_t CSAGA_FRAME_HEADER = AMQP_FRAME_HEADER;
static const uint8_t CSAGA_FRAME_BODY = AMQP_FRAME_BODY;
static const uint8_t CSAGA_FRAME_HEARTBEAT = AMQP_FRAME_HEARTBEAT;

/// The decoded method of a frame, typed, for the few methods the client reads itself.
static inline void *csaga_frame_method_decoded(const amqp_frame_t *frame) { return frame->payload.method.decoded; }

static inline amqp_bytes_t csaga_bytes(const void *bytes, size_t len) {
  amqp_bytes_t b;
  b.len = len;
  b.bytes = (void *)bytes;
  return b;
}

#endif
