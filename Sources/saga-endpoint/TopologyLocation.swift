import AMQPTransport
import Foundation
import MoneyTransfer

// Where the topology definitions are: an explicit folder, ./topology, the package's own folder, or the
// reference app's built-in topology.

extension Topology {
    /// The reference app's topology, for a binary run away from the repository (mirrors topology/transfers.json).
    static var moneyTransfer: Topology {
        let queues = [MoneyTransferApp.transfersQueue, MoneyTransferApp.payoutsQueue, MoneyTransferApp.bankQueue]
        return Topology(
            exchanges: [MoneyTransferApp.transferEventsExchange, MoneyTransferApp.payoutEventsExchange].map {
                ExchangeDeclaration(name: $0, kind: .topic)
            },
            queues: (queues + queues.map { "\($0).error" }).map { QueueDeclaration(name: $0) },
            bindings: MoneyTransferApp.payoutBindingKeys.map {
                BindingDeclaration(source: MoneyTransferApp.transferEventsExchange, destination: MoneyTransferApp.payoutsQueue,
                                   routingKey: $0)
            },
            sources: ["built-in money-transfer topology"])
    }

    /// The topology directory: `explicit` if given (it must exist); else `topology` in the current
    /// directory; else the `topology` folder of the package the executable was built in (found next to a
    /// Package.swift above the executable, or from this source file's location). Nil when none exists.
    static func directory(explicit: String?, currentDirectory: String = FileManager.default.currentDirectoryPath,
                          executablePath: String? = Topology.executablePath) throws -> URL? {
        if let explicit {
            guard isDirectory(explicit) else { throw TopologyError("--topology-dir \(explicit) is not a directory") }
            return URL(fileURLWithPath: explicit)
        }
        let local = URL(fileURLWithPath: currentDirectory).appendingPathComponent("topology")
        if isDirectory(local.path) { return local }
        var candidates: [URL] = []
        if let executablePath {
            var folder = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
            while folder.pathComponents.count > 1 {
                candidates.append(folder)
                folder = folder.deletingLastPathComponent()
            }
        }
        // Sources/saga-endpoint/TopologyLocation.swift → the package root.
        candidates.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent())
        for root in candidates where FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            let folder = root.appendingPathComponent("topology")
            if isDirectory(folder.path) { return folder }
        }
        return nil
    }

    /// Loads the definitions of `directory(explicit:)`, or the built-in topology when there is none.
    static func resolve(explicit: String?) throws -> Topology {
        guard let folder = try directory(explicit: explicit) else { return moneyTransfer }
        return try load(directory: folder)
    }

    static var executablePath: String? {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments.first
    }

    private static func isDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
