// Helpers for tests of the `saga-endpoint` executable's operations endpoints: GET over HTTP and a
// parser of the Prometheus text format.
import AMQPTransport
import BrokerTestSupport
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

enum OperationsHTTP {
    /// GETs `path` on 127.0.0.1:`port`; nil when nothing answers (not listening yet, or gone).
    static func get(_ port: Int, _ path: String) async -> (status: Int, body: String)? {
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        request.timeoutInterval = 5
        guard let (data, response) = try? await URLSession.shared.data(for: request) else { return nil }
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// The samples of a `/metrics` scrape, by series (`name` or `name{labels}`).
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// The metrics of the server on `port`, empty when it does not answer.
    static func metrics(_ port: Int) async -> [String: Double] {
        guard let (status, body) = await get(port, "/metrics"), status == 200 else { return [:] }
        return samples(body)
    }
}

/// `saga-endpoint run` against a broker node of the test's own, with a fresh database folder and the
/// operations server on a free port.
struct RunProcess {
    let process: ChildProcess
    let httpPort: Int
    let directory: URL

    init(url: String, label: String, logLevel: String = "warning", extraArguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        httpPort = try DedicatedBrokerNode.freePort()
        process = try ChildProcess(executable: CLIProcessTests.executablePath, arguments: [
            "run", "--amqp-url", url, "--database", directory.appendingPathComponent("s.sqlite").path,
            "--http-port", "\(httpPort)", "--log-level", logLevel] + extraArguments)
    }

    /// Waits until the process consumes both of the reference app's input queues on the broker at `url`.
    /// Both: a broker frozen while `run` still started the second consumer would leave it stuck in its
    /// start, not in the shutdown a test means to hold up.
    func waitUntilConsuming(url: String, label: String) async throws {
        let observer = try await AMQPConnection.connect(url: url, connectionName: "\(label)-observer")
        do {
            try await waitUntil(timeout: .seconds(30), message: "run consumes its queues") {
                let transfers = try? await observer.checkQueue("transfers").consumerCount
                let payouts = try? await observer.checkQueue("payouts").consumerCount
                return transfers == 1 && payouts == 1
            }
        } catch {
            await observer.close()
            throw error
        }
        await observer.close()
    }

    /// Kills the process if it still runs and removes the folder.
    func cleanUp() {
        process.kill(signal: SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }
}
