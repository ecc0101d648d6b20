import CRabbitMQ
import Foundation

/// Memory for the C structures of one library call (strings, tables, properties), freed together when
/// the arena goes away (or reused after `reset()`). rabbitmq-c copies what it sends, so nothing
/// outlives the call.
///
/// A bump allocator: blocks of 4 KiB (or larger for large values) carved up in order, so encoding a
/// publish costs no `malloc` per string once the first block exists.
final class CArena {
    private static let blockSize = 4096
    private var blocks: [(start: UnsafeMutableRawPointer, capacity: Int)] = []
    private var used = 0

    deinit {
        for block in blocks { free(block.start) }
    }

    /// Makes all memory handed out so far available again (the values must not be used any more).
    func reset() {
        if blocks.count > 1 {
            for block in blocks.dropFirst() { free(block.start) }
            blocks.removeSubrange(1...)
        }
        used = 0
    }

    private func raw(byteCount: Int, alignment: Int) -> UnsafeMutableRawPointer {
        if let last = blocks.last {
            let offset = (used + alignment - 1) & ~(alignment - 1)
            if offset + byteCount <= last.capacity {
                used = offset + byteCount
                return last.start + offset
            }
        }
        let capacity = max(Self.blockSize, byteCount)
        let start = malloc(capacity)!
        blocks.append((start, capacity))
        used = byteCount
        return start
    }

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        raw(byteCount: max(1, MemoryLayout<T>.stride * count), alignment: MemoryLayout<T>.alignment)
            .bindMemory(to: T.self, capacity: count)
    }

    func bytes(_ string: String) -> amqp_bytes_t {
        var string = string
        return string.withUTF8 { copy(UnsafeRawBufferPointer($0)) }
    }

    func bytes(_ data: Data) -> amqp_bytes_t {
        data.withUnsafeBytes { copy($0) }
    }

    private func copy(_ buffer: UnsafeRawBufferPointer) -> amqp_bytes_t {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return amqp_bytes_t(len: 0, bytes: nil) }
        let target = raw(byteCount: buffer.count, alignment: 1)
        target.copyMemory(from: base, byteCount: buffer.count)
        return amqp_bytes_t(len: buffer.count, bytes: target)
    }

    /// A NUL-terminated copy, for the library's `const char *` parameters.
    func cString(_ string: String) -> UnsafePointer<CChar> {
        let utf8 = Array(string.utf8CString)
        let pointer = allocate(CChar.self, count: utf8.count)
        pointer.initialize(from: utf8, count: utf8.count)
        return UnsafePointer(pointer)
    }

    func table(_ table: FieldTable?) -> amqp_table_t {
        guard let table, !table.isEmpty else { return amqp_empty_table }
        let entries = allocate(amqp_table_entry_t.self, count: table.count)
        // Sorted keys make the encoding deterministic (and the broker does not care about order).
        for (index, (key, value)) in table.sorted(by: { $0.key < $1.key }).enumerated() {
            entries[index] = amqp_table_entry_t(key: bytes(key), value: fieldValue(value))
        }
        return amqp_table_t(num_entries: Int32(table.count), entries: entries)
    }

    func fieldValue(_ value: FieldValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        func kind(_ k: amqp_field_value_kind_t) -> UInt8 { UInt8(truncatingIfNeeded: k.rawValue) }
        switch value {
        case .bool(let v): field.kind = kind(AMQP_FIELD_KIND_BOOLEAN); field.value.boolean = v ? 1 : 0
        case .int8(let v): field.kind = kind(AMQP_FIELD_KIND_I8); field.value.i8 = v
        case .uint8(let v): field.kind = kind(AMQP_FIELD_KIND_U8); field.value.u8 = v
        case .int16(let v): field.kind = kind(AMQP_FIELD_KIND_I16); field.value.i16 = v
        case .uint16(let v): field.kind = kind(AMQP_FIELD_KIND_U16); field.value.u16 = v
        case .int32(let v): field.kind = kind(AMQP_FIELD_KIND_I32); field.value.i32 = v
        case .uint32(let v): field.kind = kind(AMQP_FIELD_KIND_U32); field.value.u32 = v
        case .int64(let v): field.kind = kind(AMQP_FIELD_KIND_I64); field.value.i64 = v
        case .uint64(let v): field.kind = kind(AMQP_FIELD_KIND_U64); field.value.u64 = v
        case .float(let v): field.kind = kind(AMQP_FIELD_KIND_F32); field.value.f32 = v
        case .double(let v): field.kind = kind(AMQP_FIELD_KIND_F64); field.value.f64 = v
        case .decimal(let scale, let v):
            field.kind = kind(AMQP_FIELD_KIND_DECIMAL)
            field.value.decimal = amqp_decimal_t(decimals: scale, value: v)
        case .string(let s): field.kind = kind(AMQP_FIELD_KIND_UTF8); field.value.bytes = bytes(s)
        case .bytes(let d): field.kind = kind(AMQP_FIELD_KIND_BYTES); field.value.bytes = bytes(d)
        case .timestamp(let v): field.kind = kind(AMQP_FIELD_KIND_TIMESTAMP); field.value.u64 = v
        case .table(let t): field.kind = kind(AMQP_FIELD_KIND_TABLE); field.value.table = table(t)
        case .array(let values):
            field.kind = kind(AMQP_FIELD_KIND_ARRAY)
            let entries = allocate(amqp_field_value_t.self, count: values.count)
            for (index, element) in values.enumerated() { entries[index] = fieldValue(element) }
            field.value.array = amqp_array_t(num_entries: Int32(values.count), entries: entries)
        case .void: field.kind = kind(AMQP_FIELD_KIND_VOID)
        }
        return field
    }

    func properties(_ p: BasicProperties) -> amqp_basic_properties_t {
        var c = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0
        if let v = p.contentType { flags |= CSAGA_BASIC_CONTENT_TYPE_FLAG; c.content_type = bytes(v) }
        if let v = p.contentEncoding { flags |= CSAGA_BASIC_CONTENT_ENCODING_FLAG; c.content_encoding = bytes(v) }
        if let v = p.headers { flags |= CSAGA_BASIC_HEADERS_FLAG; c.headers = table(v) }
        if let v = p.deliveryMode { flags |= CSAGA_BASIC_DELIVERY_MODE_FLAG; c.delivery_mode = v.rawValue }
        if let v = p.priority { flags |= CSAGA_BASIC_PRIORITY_FLAG; c.priority = v }
        if let v = p.correlationId { flags |= CSAGA_BASIC_CORRELATION_ID_FLAG; c.correlation_id = bytes(v) }
        if let v = p.replyTo { flags |= CSAGA_BASIC_REPLY_TO_FLAG; c.reply_to = bytes(v) }
        if let v = p.expiration { flags |= CSAGA_BASIC_EXPIRATION_FLAG; c.expiration = bytes(v) }
        if let v = p.messageId { flags |= CSAGA_BASIC_MESSAGE_ID_FLAG; c.message_id = bytes(v) }
        if let v = p.timestamp { flags |= CSAGA_BASIC_TIMESTAMP_FLAG; c.timestamp = v }
        if let v = p.type { flags |= CSAGA_BASIC_TYPE_FLAG; c.type = bytes(v) }
        if let v = p.userId { flags |= CSAGA_BASIC_USER_ID_FLAG; c.user_id = bytes(v) }
        if let v = p.appId { flags |= CSAGA_BASIC_APP_ID_FLAG; c.app_id = bytes(v) }
        if let v = p.clusterId { flags |= CSAGA_BASIC_CLUSTER_ID_FLAG; c.cluster_id = bytes(v) }
        c._flags = flags
        return c
    }
}

/// Copies of library-owned memory: frames live in rabbitmq-c's pools only until the next release, so
/// everything a delivery carries is copied into Swift values first.
enum CDecode {
    static func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let base = bytes.bytes else { return "" }
        let buffer = UnsafeRawBufferPointer(start: base, count: bytes.len)
        return String(decoding: buffer, as: UTF8.self)
    }

    /// `string`, and whether the bytes were valid UTF-8 (invalid bytes become U+FFFD).
    static func checkedString(_ bytes: amqp_bytes_t) -> (String, valid: Bool) {
        guard bytes.len > 0, let base = bytes.bytes else { return ("", true) }
        let buffer = UnsafeRawBufferPointer(start: base, count: bytes.len)
        if let valid = String(validating: buffer, as: UTF8.self) { return (valid, true) }
        return (String(decoding: buffer, as: UTF8.self), false)
    }

    static func data(_ bytes: amqp_bytes_t) -> Data {
        guard bytes.len > 0, let base = bytes.bytes else { return Data() }
        return Data(bytes: base, count: bytes.len)
    }

    /// `depth` counts the tables and arrays around this one: past `AMQPConnection.maximumHeaderNesting`
    /// a value is replaced by a note. Every level costs stack here, when the value is freed, and when it is
    /// encoded again (an error-queue copy): a producer must not be able to nest its way to a crash.
    static func table(_ table: amqp_table_t, depth: Int = 0) -> FieldTable {
        var keysValid = true
        return self.table(table, depth: depth, keysValid: &keysValid)
    }

    /// `table`, telling whether its own keys (not those of tables inside it) were valid UTF-8: each key is
    /// decoded once (a second pass over the message's headers to check them cost every delivery).
    static func table(_ table: amqp_table_t, depth: Int, keysValid: inout Bool) -> FieldTable {
        var result: FieldTable = [:]
        guard table.num_entries > 0, let entries = table.entries else { return result }
        for index in 0..<Int(table.num_entries) {
            let entry = entries[index]
            let (key, valid) = checkedString(entry.key)
            keysValid = keysValid && valid
            result[key] = value(entry.value, depth: depth + 1)
        }
        return result
    }

    static func value(_ field: amqp_field_value_t, depth: Int = 0) -> FieldValue {
        func kind(_ k: amqp_field_value_kind_t) -> UInt8 { UInt8(truncatingIfNeeded: k.rawValue) }
        let limit = AMQPConnection.maximumHeaderNesting
        if depth >= limit, field.kind == kind(AMQP_FIELD_KIND_TABLE) || field.kind == kind(AMQP_FIELD_KIND_ARRAY) {
            return .string("(nested deeper than \(limit) levels: cut by the client)")
        }
        switch field.kind {
        case kind(AMQP_FIELD_KIND_BOOLEAN): return .bool(field.value.boolean != 0)
        case kind(AMQP_FIELD_KIND_I8): return .int8(field.value.i8)
        case kind(AMQP_FIELD_KIND_U8): return .uint8(field.value.u8)
        case kind(AMQP_FIELD_KIND_I16): return .int16(field.value.i16)
        case kind(AMQP_FIELD_KIND_U16): return .uint16(field.value.u16)
        case kind(AMQP_FIELD_KIND_I32): return .int32(field.value.i32)
        case kind(AMQP_FIELD_KIND_U32): return .uint32(field.value.u32)
        case kind(AMQP_FIELD_KIND_I64): return .int64(field.value.i64)
        case kind(AMQP_FIELD_KIND_U64): return .uint64(field.value.u64)
        case kind(AMQP_FIELD_KIND_F32): return .float(field.value.f32)
        case kind(AMQP_FIELD_KIND_F64): return .double(field.value.f64)
        case kind(AMQP_FIELD_KIND_DECIMAL):
            return .decimal(scale: field.value.decimal.decimals, value: field.value.decimal.value)
        case kind(AMQP_FIELD_KIND_UTF8):
            // A long string is bytes on the wire, and producers put non-UTF-8 in it (the .NET client sends
            // a byte[] as one): as text its invalid bytes would become U+FFFD, and an error-queue copy or
            // a replay would republish other bytes. Such a value stays bytes.
            let bytes = field.value.bytes
            guard bytes.len > 0, let base = bytes.bytes else { return .string("") }
            let buffer = UnsafeRawBufferPointer(start: base, count: bytes.len)
            return String(validating: buffer, as: UTF8.self).map(FieldValue.string) ?? .bytes(Data(buffer))
        case kind(AMQP_FIELD_KIND_BYTES): return .bytes(data(field.value.bytes))
        case kind(AMQP_FIELD_KIND_TIMESTAMP): return .timestamp(field.value.u64)
        case kind(AMQP_FIELD_KIND_TABLE): return .table(table(field.value.table, depth: depth))
        case kind(AMQP_FIELD_KIND_ARRAY):
            let array = field.value.array
            guard array.num_entries > 0, let entries = array.entries else { return .array([]) }
            return .array((0..<Int(array.num_entries)).map { value(entries[$0], depth: depth + 1) })
        default: return .void
        }
    }

    static func properties(_ c: amqp_basic_properties_t) -> BasicProperties {
        let flags = c._flags
        func has(_ flag: amqp_flags_t) -> Bool { flags & flag != 0 }
        var p = BasicProperties()
        var invalid: [String] = []
        func text(_ bytes: amqp_bytes_t, _ name: String) -> String {
            let (value, valid) = checkedString(bytes)
            if !valid { invalid.append(name) }
            return value
        }
        if has(CSAGA_BASIC_CONTENT_TYPE_FLAG) { p.contentType = text(c.content_type, "content-type") }
        if has(CSAGA_BASIC_CONTENT_ENCODING_FLAG) { p.contentEncoding = text(c.content_encoding, "content-encoding") }
        if has(CSAGA_BASIC_HEADERS_FLAG) {
            var keysValid = true
            p.headers = table(c.headers, depth: 0, keysValid: &keysValid)
            if !keysValid { invalid.append("a header key") }
        }
        if has(CSAGA_BASIC_DELIVERY_MODE_FLAG) { p.deliveryMode = .init(rawValue: c.delivery_mode) }
        if has(CSAGA_BASIC_PRIORITY_FLAG) { p.priority = c.priority }
        if has(CSAGA_BASIC_CORRELATION_ID_FLAG) { p.correlationId = text(c.correlation_id, "correlation-id") }
        if has(CSAGA_BASIC_REPLY_TO_FLAG) { p.replyTo = text(c.reply_to, "reply-to") }
        if has(CSAGA_BASIC_EXPIRATION_FLAG) { p.expiration = text(c.expiration, "expiration") }
        if has(CSAGA_BASIC_MESSAGE_ID_FLAG) { p.messageId = text(c.message_id, "message-id") }
        if has(CSAGA_BASIC_TIMESTAMP_FLAG) { p.timestamp = c.timestamp }
        if has(CSAGA_BASIC_TYPE_FLAG) { p.type = text(c.type, "type") }
        if has(CSAGA_BASIC_USER_ID_FLAG) { p.userId = text(c.user_id, "user-id") }
        if has(CSAGA_BASIC_APP_ID_FLAG) { p.appId = text(c.app_id, "app-id") }
        if has(CSAGA_BASIC_CLUSTER_ID_FLAG) { p.clusterId = text(c.cluster_id, "cluster-id") }
        p.invalidUTF8 = invalid
        return p
    }
}

/// The strings decoded most recently (exchange names, routing keys), reused when the same bytes come
/// again, as they do delivery after delivery: no allocation for them.
struct RecentStrings {
    private var entries: [(bytes: [UInt8], string: String)] = []
    private var next = 0

    mutating func string(_ bytes: amqp_bytes_t) -> String {
        guard bytes.len > 0, let base = bytes.bytes else { return "" }
        for entry in entries where entry.bytes.count == bytes.len {
            if entry.bytes.withUnsafeBytes({ memcmp($0.baseAddress!, base, bytes.len) == 0 }) { return entry.string }
        }
        let buffer = UnsafeRawBufferPointer(start: base, count: bytes.len)
        let string = String(decoding: buffer, as: UTF8.self)
        guard bytes.len <= 255 else { return string }
        if entries.count < 8 {
            entries.append((Array(buffer), string))
        } else {
            entries[next] = (Array(buffer), string)
            next = (next + 1) % entries.count
        }
        return string
    }
}
