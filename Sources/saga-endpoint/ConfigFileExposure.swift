import AMQPTransport
import Foundation
import Logging
import Synchronization

// The config file may hold the broker URL with its password (README: "readable by the service's user only,
// chmod 600"), but nothing checked that it is: a file left 0644 by an editor or a deployment tool gave the
// password to every local user, silently. As ssh does for a private key and the PostgreSQL client for
// `.pgpass`, a file that holds a password and is readable by its group or by others is reported: a warning
// naming the file and its mode, never the password, once per file. It does not stop the command (a
// deployment that works would stop working), and a file with no password in it (no `amqp-url`, or one
// without user info) is nobody's secret and is not reported.
//
// The file is read before the log handler exists (its `log-level` and `log-format` decide them), so what
// is found then waits for `logHandlerInstalled`.

enum ConfigFileExposure {
    private struct State {
        var installed = false
        /// Files found exposed before the log handler was installed, with their mode.
        var pending: [(path: String, mode: mode_t)] = []
        var reported: Set<String> = []
    }

    private static let state = Mutex(State())

    /// Called when a config file is loaded, with its `amqp-url` values (top level and every section).
    static func loaded(path: String, amqpURLs: [String]) {
        guard amqpURLs.contains(where: { AMQPConfiguration.maskingPassword($0) != $0 }) else { return }
        var status = stat()
        guard stat(path, &status) == 0, status.st_mode & (S_IRGRP | S_IROTH) != 0 else { return }
        let reportNow = state.withLock { state -> Bool in
            guard !state.reported.contains(path) else { return false }
            state.reported.insert(path)
            if !state.installed { state.pending.append((path, status.st_mode)) }
            return state.installed
        }
        if reportNow { report(path: path, mode: status.st_mode) }
    }

    /// Called when the process-wide log handler is installed: reports what was found before.
    static func logHandlerInstalled() {
        let pending = state.withLock { state in
            state.installed = true
            defer { state.pending = [] }
            return state.pending
        }
        for file in pending { report(path: file.path, mode: file.mode) }
    }

    private static func report(path: String, mode: mode_t) {
        Logger(label: "saga-endpoint").warning(
            "the config file holds the broker's password and is readable by other users; make it readable by the service's user only (chmod 600)",
            metadata: ["path": "\(path)", "mode": "\(String(format: "%04o", Int(mode & 0o7777)))"])
    }
}
