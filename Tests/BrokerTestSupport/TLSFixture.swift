// Throwaway TLS material for tests, made with the openssl command-line tool: a CA, a server certificate for
// localhost / 127.0.0.1 and a client certificate, plus the rabbitmq.conf lines for a TLS listener.
import Foundation

/// A throwaway CA with a server and a client certificate, in a temporary folder the broker can read.
///
///     let tls = try TLSFixture.make()
///     defer { tls.remove() }
///     let node = try DedicatedBrokerNode.start(tls: tls)   // or extraConfig: tls.rabbitmqConfig(port: …)
///     … connect to node.tlsURL! trusting tls.caCert, optionally presenting tls.clientCert/clientKey …
///
/// Certificates are valid for 30 days from now; keys are unencrypted RSA 2048 (PEM).
public struct TLSFixture: Sendable {
    /// The folder holding all the files.
    public let directory: String
    /// The CA certificate (PEM) that signed the server and client certificates.
    public let caCert: String
    /// The server certificate: CN `localhost`, SANs DNS:localhost, IP:127.0.0.1 (and DNS:127.0.0.1 for
    /// clients that match IP literals against DNS names).
    public let serverCert: String
    public let serverKey: String
    /// A client certificate (CN `saga-test-client`, extended key usage clientAuth).
    public let clientCert: String
    public let clientKey: String

    /// Generates fresh material with `openssl` (about half a second).
    public static func make() throws -> TLSFixture {
        let directory = try makeBrokerReachableTemporaryDirectory(prefix: "saga-tls")
        do {
            return try generate(in: directory)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// rabbitmq.conf lines for a TLS listener on 127.0.0.1:`port` that uses this CA and server certificate,
    /// asks clients for a certificate (verify_peer) but accepts clients without one.
    public func rabbitmqConfig(port: Int) -> String {
        """
        listeners.ssl.default = 127.0.0.1:\(port)
        ssl_options.cacertfile = \(caCert)
        ssl_options.certfile = \(serverCert)
        ssl_options.keyfile = \(serverKey)
        ssl_options.verify = verify_peer
        ssl_options.fail_if_no_peer_cert = false

        """
    }

    /// Deletes the folder.
    public func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private static func generate(in directory: String) throws -> TLSFixture {
        func path(_ name: String) -> String { "\(directory)/\(name)" }
        func openssl(_ arguments: [String]) throws {
            try runChecked("openssl", arguments, currentDirectory: directory, timeout: .seconds(60))
        }
        func serial() -> String {
            "0x" + (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        }

        try """
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature, keyEncipherment
        extendedKeyUsage = serverAuth
        subjectAltName = DNS:localhost, IP:127.0.0.1, DNS:127.0.0.1

        """.write(toFile: path("server.ext"), atomically: true, encoding: .utf8)
        try """
        basicConstraints = critical, CA:FALSE
        keyUsage = critical, digitalSignature, keyEncipherment
        extendedKeyUsage = clientAuth

        """.write(toFile: path("client.ext"), atomically: true, encoding: .utf8)

        try openssl([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
            "-keyout", path("ca.key"), "-out", path("ca.pem"), "-subj", "/CN=saga-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ])
        for (name, subject) in [("server", "/CN=localhost"), ("client", "/CN=saga-test-client")] {
            try openssl([
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-sha256",
                "-keyout", path("\(name).key"), "-out", path("\(name).csr"), "-subj", subject,
            ])
            try openssl([
                "x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-set_serial", serial(), "-days", "30", "-sha256",
                "-extfile", path("\(name).ext"), "-out", path("\(name).pem"),
            ])
        }
        try ServiceUser.handOver(directory, recursive: true)
        return TLSFixture(
            directory: directory,
            caCert: path("ca.pem"),
            serverCert: path("server.pem"),
            serverKey: path("server.key"),
            clientCert: path("client.pem"),
            clientKey: path("client.key")
        )
    }
}
