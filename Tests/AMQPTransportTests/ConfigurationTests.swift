// AMQPConfiguration(url:) (no broker needed, except for the last test): defaults, percent-decoding, TLS
// parameters, errors, and that the password never shows up in a URL or message meant for logs.
import AMQPTransport
import BrokerTestSupport
import Foundation
import Testing

@Suite("AMQPConfiguration(url:)")
struct ConfigurationTests {
    @Test("maskingPassword hides the password byte for byte, keeping the URL's length")
    func maskingPassword() {
        for (url, masked) in [
            ("amqp://ops:secret@rabbit:5672/v", "amqp://ops:******@rabbit:5672/v"),
            ("amqp://ops:p%40ss@rabbit/", "amqp://ops:******@rabbit/"),
            ("amqp://ops:p@ss@rabbit/", "amqp://ops:****@rabbit/"),
            ("amqp://ops:pässword@rabbit/", "amqp://ops:*********@rabbit/"),
            ("amqp://ops@rabbit/", "amqp://ops@rabbit/"),
            ("amqp://rabbit:5672/", "amqp://rabbit:5672/"),
        ] {
            let result = AMQPConfiguration.maskingPassword(url)
            #expect(result == masked, "\(url)")
            #expect(result.utf8.count == url.utf8.count, "\(url)")
        }
    }

    @Test("amqp://host alone gives the defaults")
    func defaults() throws {
        let c = try AMQPConfiguration(url: "amqp://broker.example")
        #expect(c.host == "broker.example")
        #expect(c.port == 5672)
        #expect(c.user == "guest")
        #expect(c.password == "guest")
        #expect(c.vhost == "/")
        #expect(c.tls == nil)
        #expect(c.heartbeat == 60)
        #expect(c.connectTimeout == .seconds(10))
        #expect(c.frameMax == 131_072)
        #expect(c.channelMax == 0)
        #expect(c.connectionName == nil)
        #expect(try AMQPConfiguration(url: "amqp://").host == "localhost")
        #expect(try AMQPConfiguration(url: "amqp://h/").vhost == "/")
        #expect(try AMQPConfiguration(url: "AMQP://h").host == "h")
    }

    @Test("user, password and vhost are percent-decoded; %2F is the vhost /")
    func percentDecoding() throws {
        let c = try AMQPConfiguration(url: "amqp://us%40er:p%40ss%3Aw%2Frd@host:1234/%2F")
        #expect(c.user == "us@er")
        #expect(c.password == "p@ss:w/rd")
        #expect(c.port == 1234)
        #expect(c.vhost == "/")
        #expect(try AMQPConfiguration(url: "amqp://host/sagas%2Fprod").vhost == "sagas/prod")
        #expect(try AMQPConfiguration(url: "amqp://host/plain").vhost == "plain")
        #expect(try AMQPConfiguration(url: "amqp://host/caf%C3%A9").vhost == "café")
        #expect(try AMQPConfiguration(url: "amqp://[::1]:5673").host == "::1")
    }

    @Test("amqps defaults to port 5671 with peer verification on")
    func amqps() throws {
        let c = try AMQPConfiguration(url: "amqps://broker.example")
        #expect(c.port == 5671)
        let tls = try #require(c.tls)
        #expect(tls.verifyPeer)
        #expect(tls.verifyHostname)
        #expect(tls.caCertificateFile == nil)
        #expect(try AMQPConfiguration(url: "amqps://h:6000").port == 6000)
        #expect(AMQPConfiguration(host: "h", tls: .init()).port == 5671)
        #expect(AMQPConfiguration(host: "h").port == 5672)
    }

    @Test("query parameters")
    func queryParameters() throws {
        let c = try AMQPConfiguration(url:
            "amqps://h/v?heartbeat=5&connection_timeout=2500&frame_max=65536&channel_max=100"
            + "&connection_name=orders%20service&cacertfile=/etc/ca.pem&certfile=/etc/c.pem&keyfile=/etc/c.key"
            + "&server_name_indication=rabbit.internal&auth_mechanism=plain&locale=en_US")
        #expect(c.heartbeat == 5)
        #expect(c.connectTimeout == .milliseconds(2500))
        #expect(c.frameMax == 65536)
        #expect(c.channelMax == 100)
        #expect(c.connectionName == "orders service")
        #expect(c.tls?.caCertificateFile == "/etc/ca.pem")
        #expect(c.tls?.certificateFile == "/etc/c.pem")
        #expect(c.tls?.keyFile == "/etc/c.key")
        #expect(c.tls?.serverName == "rabbit.internal")
        let unverified = try AMQPConfiguration(url: "amqps://h?verify=verify_none")
        #expect(unverified.tls?.verifyPeer == false)
        #expect(unverified.tls?.verifyHostname == false)
        #expect(try AMQPConfiguration(url: "amqps://h?verify=verify_peer").tls?.verifyPeer == true)
        #expect(try AMQPConfiguration(url: "amqp://h?heartbeat=0").heartbeat == 0)
    }

    @Test("invalid URLs are rejected with .invalidURL naming the problem", arguments: [
        ("http://guest:guest@host", "scheme"),
        ("host:5672", "scheme"),
        ("amqp://host:0", "port"),
        ("amqp://host:70000", "port"),
        ("amqp://host:port", "malformed"),
        ("amqp://host/a/b", "vhost"),
        ("amqp://host?heartbeat=soon", "heartbeat"),
        ("amqp://host?heartbeat=-1", "heartbeat"),
        ("amqp://host?frame_max=", "frame_max"),
        // Failed before: accepted, and the connect stopped the process converting it to a C int.
        ("amqp://host?frame_max=3000000000", "frame_max must be an integer from 0 to 2147483647"),
        ("amqp://host?heartbeat=70000", "heartbeat must be an integer from 0 to 65535"),
        ("amqp://host?channel_max=65536", "channel_max must be an integer from 0 to 65535"),
        ("amqp://host?bogus=1", "bogus"),
        ("amqps://host?verify=sometimes", "verify"),
        ("amqp://host?cacertfile=/ca.pem", "amqps"),
    ])
    func invalid(url: String, mentions: String) {
        do {
            _ = try AMQPConfiguration(url: url)
            Issue.record("\(url) was accepted")
        } catch let error as AMQPError {
            #expect(error.code == .invalidURL)
            #expect(error.message.contains(mentions), "\(error.message)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("redactedURL and descriptions never contain the password")
    func redactedURL() throws {
        let c = try AMQPConfiguration(url: "amqp://alice:s3cret-pw@host:5673/sagas?heartbeat=5")
        #expect(c.redactedURL == "amqp://alice:***@host:5673/sagas")
        #expect(c.description == c.redactedURL)
        #expect(!"\(c)".contains("s3cret"))
        #expect(try AMQPConfiguration(url: "amqps://h").redactedURL == "amqps://guest:***@h:5671")
        #expect(try AMQPConfiguration(url: "amqp://h/%2Fweird%20name").redactedURL == "amqp://guest:***@h:5672/%2Fweird%20name")
    }

    // Failed before: every log line and message showed the vhost `rev-readme` as `rev%2Dreadme`, so an
    // operator comparing it with `rabbitmqctl list_vhosts` (or grepping the logs for it) did not find it.
    @Test("redactedURL writes a vhost's unreserved characters as they are")
    func redactedURLKeepsUnreservedCharacters() throws {
        #expect(try AMQPConfiguration(url: "amqp://h/rev-readme").redactedURL == "amqp://guest:***@h:5672/rev-readme")
        #expect(try AMQPConfiguration(url: "amqp://h/payments.eu_1~x").redactedURL
                == "amqp://guest:***@h:5672/payments.eu_1~x")
        // What a URL path segment cannot hold stays encoded.
        #expect(try AMQPConfiguration(url: "amqp://h/a%40b%3Fc%23d%25e").redactedURL == "amqp://guest:***@h:5672/a%40b%3Fc%23d%25e")
    }

    @Test("errors about a URL never quote its password", arguments: [
        "amqp://alice:s3cret-pw@host?bogus=1",
        "amqp://alice:s3cret-pw@host:99999",
        "amqp://alice:s3cret-pw@host/a/b",
        "amqx://alice:s3cret-pw@host",
        "amqp://alice:s3cret-pw@host:port",
        "amqp://alice:s3cret@pw@host?bogus=1",
        "amqp://alice:s3cret-pw@host?connection_name=a@b&bogus=1",
        "amqp://alice:s3cret-pw@[::1:5672",
        // A raw '#', '?' or '/' in the password ends the authority early ("alice:s3"), and no host at
        // all leaves "alice:s3cret-pw" looking like host and port: the password is hidden all the same.
        "amqp://alice:s3#cret-pw@host",
        "amqp://alice:s3?cret-pw@host",
        "amqp://alice:s3/cret-pw@host",
        "amqp://alice:s3cret-pw",
        "amqp://alice:s3cret#pw",
        // Digits first, then a raw '?': parses as host "alice", port 1234 and a query item named after the
        // rest of the password.
        "amqp://alice:1234?s3cret-pw@host",
        "amqp://alice:1234?s3=cret-pw@host",
        // A password in the query (an unknown parameter): failed before, the error quoted the query.
        "amqp://alice@host?password=s3cret-pw",
        "amqp://alice@host?heartbeat=s3cret-pw",
        // Found in review: a fragment and a bare item were still quoted.
        "amqp://alice@host?password=s3#cret-pw",
        "amqp://alice@host?s3cret-pw",
    ])
    func errorsHideThePassword(url: String) {
        do {
            _ = try AMQPConfiguration(url: url)
            Issue.record("\(url) was accepted")
        } catch {
            #expect(!"\(error)".contains("s3cret"), "\(error)")
            #expect(!"\(error)".contains("pw@"), "\(error)")
            #expect("\(error)".contains("alice"), "the user name still helps: \(error)")
        }
    }

    // Found in review: with no user info before the host, these parsed, and the password (or its digits)
    // became the vhost, the port or a fragment, printed in the redacted URL and in connection errors
    // ("cannot connect to alice:1234"); with no "://" at all, "scheme must be amqp or amqps" quoted it
    // whole.
    @Test("a user info that does not parse as one is rejected, its password hidden", arguments: [
        "alice:s3cret-pw@host",
        "alice:s3cret-pw@host:5672/vh",
        "amqp//alice:s3cret-pw@host",
        "amqp:alice:s3cret-pw@host",
        "amqp:/alice:s3cret-pw@host",
        "amqp:///alice:s3cret-pw@host",
        "amqp://alice:1234/s3cret-pw@host",
        "amqp://alice:1234#s3cret-pw@host",
        "amqp://alice:1234?connection_name=s3cret-pw@host",
        // A "://" in a parameter is not the scheme's.
        "alice:s3cret-pw@host?connection_name=a://b",
        "alice:s3cret-pw@host/vh#a://b",
    ])
    func userInfoThatDidNotParse(url: String) {
        do {
            let c = try AMQPConfiguration(url: url)
            Issue.record("\(url) was accepted as \(c.redactedURL)")
        } catch {
            #expect(!"\(error)".contains("s3cret"), "\(error)")
            #expect(!"\(error)".contains("1234"), "\(error)")
        }
    }

    @Test("an '@' in the vhost or a parameter still parses after a user info, or percent-encoded")
    func atSignsThatAreNoUserInfo() throws {
        #expect(try AMQPConfiguration(url: "amqp://alice@host/v@x").vhost == "v@x")
        #expect(try AMQPConfiguration(url: "amqp://host/v%40x").vhost == "v@x")
        #expect(try AMQPConfiguration(url: "amqp://host?connection_name=a%40b").connectionName == "a@b")
    }
}
