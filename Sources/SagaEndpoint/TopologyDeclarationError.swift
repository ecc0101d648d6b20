public import AMQPTransport

/// Some exchanges, queues or bindings of an `EndpointTopology` could not be declared: each with the
/// broker's or the client's reason (406 PRECONDITION_FAILED when one exists with other settings, 403 when
/// the user may not configure it, not connected, …).
public struct TopologyDeclarationError: Error, CustomStringConvertible {
    public struct Failure: Sendable, CustomStringConvertible {
        public var declaration: RecordedDeclaration
        public var error: any Error

        public var description: String { "\(declaration): \(error)" }
    }

    public var failures: [Failure]

    public var description: String {
        "cannot declare the topology:\n  " + failures.map(\.description).joined(separator: "\n  ")
    }
}
