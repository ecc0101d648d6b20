import Foundation

/// Where and how to connect: parsed from an AMQP URI
/// (`amqp://user:pass@host:port/vhost?heartbeat=10&connection_timeout=5000`, `amqps://…` for TLS).
///
/// Follows RabbitMQ's URI spec: user, password and vhost are percent-decoded; the default vhost (no path)
/// is `/`, written `%2F` in a URI; defaults are guest/guest, localhost, 5672 (5671 for amqps). Query
/// parameters: `heartbeat` (seconds), `connection_timeout` (ms), `frame_max`, `channel_max`,
/// `connection_name`, and for TLS `cacertfile`, `certfile`, `keyfile`, `verify` (`verify_peer` or
/// `verify_none`), `server_name_indication` (the host name to verify, which is also the name connected to:
/// see `TLS.serverName`).
public struct AMQPConfiguration: Sendable, Hashable, CustomStringConvertible {
    public struct TLS: Sendable, Hashable {
        /// PEM file of the CA(s) that signed the broker's certificate.
        public var caCertificateFile: String?
        /// PEM client certificate and key, for brokers that require them.
        public var certificateFile: String?
        public var keyFile: String?
        /// Verify the broker's certificate chain (on by default; off only for throwaway set-ups).
        public var verifyPeer: Bool = true
        /// Verify that the certificate names `serverName` (or the host).
        public var verifyHostname: Bool = true
        /// The name sent in SNI and checked against the certificate. rabbitmq-c 0.11 takes one name for
        /// the socket and the TLS handshake, so the connection goes to this name, not to the URL's host:
        /// it must resolve to the broker (use it when the URL's host is another alias of the same broker).
        public var serverName: String?

        public init(caCertificateFile: String? = nil, certificateFile: String? = nil, keyFile: String? = nil,
                    verifyPeer: Bool = true, verifyHostname: Bool = true, serverName: String? = nil) {
            self.caCertificateFile = caCertificateFile
            self.certificateFile = certificateFile
            self.keyFile = keyFile
            self.verifyPeer = verifyPeer
            self.verifyHostname = verifyHostname
            self.serverName = serverName
        }
    }

    public var host: String = "localhost"
    public var port: Int = 5672
    public var user: String = "guest"
    public var password: String = "guest"
    public var vhost: String = "/"
    /// TLS settings; nil for a plain TCP connection.
    public var tls: TLS?
    /// Requested heartbeat in seconds (0 disables; the broker may negotiate it down).
    public var heartbeat: Int = 60
    /// How long opening the socket and the AMQP handshake may take.
    public var connectTimeout: Duration = .seconds(10)
    /// How long a synchronous AMQP method (declare, bind, …) may wait for the broker's reply.
    public var rpcTimeout: Duration = .seconds(30)
    /// RabbitMQ's default `frame_max` (128 KiB), which this client asks for too.
    public static let defaultFrameMax = 131_072

    /// What the handshake can carry: heartbeat and channel_max are AMQP shorts, and rabbitmq-c takes the
    /// frame size as a C int. Checked for a URL when it is parsed, for values set in code at connect.
    static let shortRange = 0...Int(UInt16.max)
    static let frameMaxRange = 0...Int(Int32.max)
    static let portRange = 1...65535

    /// Why these settings cannot be sent in a handshake, or nil when they can (set in code rather than from
    /// a URL, a value past a C int stopped the process at its conversion, and a port past 65535 failed to
    /// connect, which is transient and was retried for ever).
    var outOfRangeSettings: String? {
        if !Self.portRange.contains(port) { return "port \(port) out of range: it must be 1…65535" }
        if channelMax == 1 { return Self.channelMaxOfOne }
        if Self.shortRange.contains(heartbeat), Self.shortRange.contains(channelMax), Self.frameMaxRange.contains(frameMax) {
            return nil
        }
        return "connection settings out of range (heartbeat \(heartbeat), channel_max \(channelMax), frame_max "
            + "\(frameMax)): heartbeat and channel_max must be 0…65535, frame_max 0…\(Int32.max)"
    }

    /// A connection uses channel 1 for declarations and channel 2 for publishing. With a channel_max of 1
    /// RabbitMQ (which counts open channels, not their numbers) let channel 2 open and then closed the
    /// whole connection (530) at the first use of channel 1: connected, recovered, closed again, for ever.
    static let channelMaxOfOne = "channel_max 1 leaves no room: this client uses channel 1 for declarations and "
        + "channel 2 for publishing, so channel_max must be 0 (the broker's limit) or at least 2"
    public var frameMax: Int = AMQPConfiguration.defaultFrameMax
    /// 0: take the broker's limit.
    public var channelMax: Int = 0
    /// Shown in the management UI and `rabbitmqctl list_connections name client_properties`.
    public var connectionName: String?

    public init(host: String = "localhost", port: Int? = nil, user: String = "guest", password: String = "guest",
                vhost: String = "/", tls: TLS? = nil) {
        self.host = host
        self.port = port ?? (tls == nil ? 5672 : 5671)
        self.user = user
        self.password = password
        self.vhost = vhost
        self.tls = tls
    }

    /// Parses an AMQP URI. Throws `AMQPError` with code `.invalidURL` naming what is wrong (never the
    /// password).
    public init(url: String) throws {
        func invalid(_ reason: String) -> AMQPError {
            AMQPError(.invalidURL, message: "\(reason) in \(AMQPConfiguration.redact(url))")
        }
        guard let components = URLComponents(string: url) else { throw invalid("malformed URI") }
        switch components.scheme?.lowercased() {
        case "amqp": tls = nil
        case "amqps": tls = TLS()
        default: throw invalid("scheme must be amqp or amqps")
        }
        // An '@' with no user info before the host means a user info that did not parse as one: a raw '/',
        // '?' or '#' in a password starting with digits ends the authority early (`user:1234` parses as
        // host and port), and `amqp:user:pass@host` (no `//`) has no authority at all. Accepted, the
        // password became the port, the vhost or a fragment, and was printed with the redacted URL.
        if components.percentEncodedUser == nil, url.contains("@") {
            throw invalid("no user info before the host, yet an '@' after it (write amqp://user:pass@host; "
                          + "a password must percent-encode '?', '#', '/' and '@', a vhost or parameter its '@' as %40)")
        }
        if let host = components.percentEncodedHost, !host.isEmpty {
            var decoded = host.removingPercentEncoding ?? host
            if decoded.hasPrefix("["), decoded.hasSuffix("]") { decoded = String(decoded.dropFirst().dropLast()) }
            self.host = decoded
        }
        port = components.port ?? (tls == nil ? 5672 : 5671)
        guard Self.portRange.contains(port) else { throw invalid("port out of range") }
        if let user = components.percentEncodedUser { self.user = user.removingPercentEncoding ?? user }
        if let password = components.percentEncodedPassword {
            self.password = password.removingPercentEncoding ?? password
        }
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            vhost = "/"
        } else {
            let raw = String(path.dropFirst())
            guard !raw.contains("/") else { throw invalid("vhost must be one path segment (write / as %2F)") }
            vhost = raw.removingPercentEncoding ?? raw
        }
        for item in components.queryItems ?? [] {
            let value = item.value ?? ""
            // Bounded by what the handshake can carry (`shortRange`, `frameMaxRange`): `frame_max=3000000000`
            // passed a check for negative numbers alone and stopped the process at the conversion.
            func int(in range: ClosedRange<Int>) throws -> Int {
                guard let n = Int(value), range.contains(n) else {
                    throw invalid("\(item.name) must be an integer from \(range.lowerBound) to \(range.upperBound)")
                }
                return n
            }
            switch item.name {
            case "heartbeat": heartbeat = try int(in: Self.shortRange)
            case "connection_timeout": connectTimeout = .milliseconds(try int(in: 0...Int(Int32.max)))
            case "frame_max": frameMax = try int(in: Self.frameMaxRange)
            case "channel_max":
                channelMax = try int(in: Self.shortRange)
                if channelMax == 1 { throw invalid(Self.channelMaxOfOne) }
            case "connection_name": connectionName = value
            case "cacertfile": tls?.caCertificateFile = value
            case "certfile": tls?.certificateFile = value
            case "keyfile": tls?.keyFile = value
            case "server_name_indication": tls?.serverName = value
            case "verify":
                switch value {
                case "verify_peer": tls?.verifyPeer = true
                case "verify_none": tls?.verifyPeer = false; tls?.verifyHostname = false
                default: throw invalid("verify must be verify_peer or verify_none")
                }
            case "auth_mechanism", "locale": break
            default:
                // With a raw '?' in the password, the query holds its tail: then no name is quoted.
                let hidden = AMQPConfiguration.passwordRange(in: url)
                let quotable = hidden.map { hidden in url.firstIndex(of: "?").map { $0 >= hidden.upperBound } ?? true } ?? true
                throw invalid(quotable && item.value != nil ? "unknown query parameter '\(item.name)'"
                                       : "unknown query parameter (a password must percent-encode '?', '#', '/' and '@')")
            }
        }
        if tls == nil, (components.queryItems ?? []).contains(where: { ["cacertfile", "certfile", "keyfile"].contains($0.name) }) {
            throw invalid("TLS parameters need the amqps scheme")
        }
    }

    /// The URI with the password replaced by `***`: safe for logs.
    public var redactedURL: String {
        let scheme = tls == nil ? "amqp" : "amqps"
        // RFC 3986's unreserved characters stay as they are: `rev-readme` printed as `rev%2Dreadme` was not
        // found by an operator comparing it with `rabbitmqctl list_vhosts`.
        let vhostPart = vhost == "/" ? "" : "/" + (vhost.addingPercentEncoding(withAllowedCharacters: Self.unreserved) ?? vhost)
        return "\(scheme)://\(user):***@\(host):\(port)\(vhostPart)"
    }

    public var description: String { redactedURL }

    /// Letters, digits and `-._~`: what a URL path segment holds without percent-encoding.
    private static let unreserved = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))

    /// Replaces the password of any AMQP URI in `text` with `***`, for messages that quote input.
    ///
    /// The user info ends at the last `@` before the query or fragment, so a password holding a raw `@`
    /// (invalid, but typed anyway) is hidden whole. A raw `?`, `#` or `/` in the password ends the
    /// authority early (`user:pa`, or `user:1234` when it starts with digits, which parses as a port):
    /// when an `@` comes after such an authority, everything from its colon to the last `@` is hidden;
    /// an authority whose "port" is not a number and no `@` anywhere (no host) is hidden from its colon
    /// on. This can hide more than the password (a host and a query holding an `@`), never less.
    ///
    /// The query's values are hidden too (see `redactQueryValues`): the callers that quote a URL which
    /// did not parse (`EndpointConfiguration`'s description) showed a `?password=…` that the URL's own
    /// parse error hides.
    public static func redact(_ text: String) -> String {
        guard let hidden = passwordRange(in: text) else { return redactQueryValues(text) }
        return redactQueryValues(String(text[..<hidden.lowerBound]) + "***" + String(text[hidden.upperBound...]))
    }

    /// `text` with `AMQPConfiguration.redact` applied to every whitespace-separated word holding `://`, or
    /// a colon before an `@` (`user:pass@host`, and a URL whose `//` a path operation folded into one: the
    /// folder of `--database amqp://ops:secret@host/x` is `amqp:/ops:secret@host`). A word, not the whole
    /// text: `redact` hides from a URL's colon to the last `@` after it, which in a sentence could be
    /// another word's. For text that may quote a URL among other words: an error naming a database path
    /// typed as a URL, a readiness reason quoting the broker's text about a vhost.
    public static func redactingURLs(in text: String) -> String {
        var result = ""
        var word = ""
        func holdsCredentials(_ word: String) -> Bool {
            if word.contains("://") { return true }
            guard let at = word.lastIndex(of: "@") else { return false }
            return word[..<at].contains(":")
        }
        func flush() {
            result += holdsCredentials(word) ? redact(word) : word
            word = ""
        }
        for character in text {
            if character.isWhitespace {
                flush()
                result.append(character)
            } else {
                word.append(character)
            }
        }
        flush()
        return result
    }

    /// `text` with every byte of the password `redact` would hide replaced by `*`, so the result has the
    /// same length in UTF-8: for overwriting a URL where it lies, such as the process's own arguments.
    /// Unchanged when there is no password.
    public static func maskingPassword(_ text: String) -> String {
        guard let hidden = passwordRange(in: text) else { return text }
        let count = text.utf8[hidden].count
        return String(text[..<hidden.lowerBound]) + String(repeating: "*", count: count) + String(text[hidden.upperBound...])
    }

    /// `text` with the value of every query parameter replaced by `…`: an error quoting a URL must not
    /// echo `?password=…` (a password put in the wrong place) or a key file's path. The names stay.
    /// A bare item (no `=`) and a fragment are hidden whole: either may be the tail of a password.
    static func redactQueryValues(_ text: String) -> String {
        guard let question = text.firstIndex(of: "?") else { return text }
        let end = text[question...].firstIndex(of: "#") ?? text.endIndex
        let items = text[text.index(after: question)..<end].split(separator: "&", omittingEmptySubsequences: false)
            .map { item in item.isEmpty ? "" : item.contains("=") ? item.prefix { $0 != "=" } + "=…" : "…" }
        return text[...question] + items.joined(separator: "&") + (end < text.endIndex ? "#…" : "")
    }

    /// Where `redact` puts `***`: after the user name's colon, up to the `@` (or the end).
    static func passwordRange(in text: String) -> Range<String.Index>? {
        // Without "://" (`user:pass@host` with no scheme, `amqp:user:pass@host`) the text is read from its
        // start: the scheme, if any, then counts as part of the user name and the colon after it starts
        // what is hidden. Returning nil quoted such a password whole in "scheme must be amqp or amqps".
        // Only a "://" before the query or fragment is the scheme's: one in a parameter's value
        // (`user:pass@host?connection_name=a://b`) would have hidden nothing before it.
        let queryOrFragment = text.firstIndex { $0 == "?" || $0 == "#" } ?? text.endIndex
        let rest = text[(text[..<queryOrFragment].range(of: "://")?.upperBound ?? text.startIndex)...]
        let authorityAndPath = rest[..<(rest.firstIndex { $0 == "?" || $0 == "#" } ?? rest.endIndex)]
        if let at = authorityAndPath.lastIndex(of: "@") {
            guard let colon = text[rest.startIndex..<at].firstIndex(of: ":") else { return nil }
            return text.index(after: colon)..<at
        }
        let authority = rest[..<(rest.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? rest.endIndex)]
        guard !authority.hasPrefix("["), let colon = authority.firstIndex(of: ":") else { return nil }
        if let at = rest.lastIndex(of: "@") { return text.index(after: colon)..<at }
        guard !authority[authority.index(after: colon)...].allSatisfy(\.isASCIIDigit) else { return nil }
        return text.index(after: colon)..<text.endIndex
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
