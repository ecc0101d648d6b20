/// A long-running process: private state plus the behaviour that messages invoke.
///
/// The conforming type *is* the saga's state: it is stored as JSON between messages. `define` declares
/// which messages start it, how each message finds its instance, and what each one does:
///
/// ```swift
/// struct Transfer: Saga {
///     var transferId: String
///     var amount: Int
///
///     static func define(_ saga: inout SagaDefinition<Transfer>) {
///         saga.startedBy(TransferRequested.self, correlatedBy: \.transferId) { request, context in
///             try context.send(DebitAccount(...), to: "bank")
///             return Transfer(transferId: request.transferId, amount: request.amount)
///         }
///         saga.handles(AccountDebited.self, correlatedBy: .correlationId) { transfer, debited, context in
///             ...
///             try context.markComplete()
///         }
///     }
/// }
/// ```
public protocol Saga: Codable, Sendable {
    /// A stable name: the key of stored instances. Defaults to the Swift type's name.
    static var sagaType: String { get }
    static func define(_ saga: inout SagaDefinition<Self>)
}

extension Saga {
    public static var sagaType: String { String(describing: Self.self) }
}

/// How a message finds its saga instance.
public struct Correlation<M: Message>: Sendable {
    let extract: @Sendable (M, IncomingMessage) -> String?
    let label: String
    /// When true, a message whose correlation value is nil or empty is not for this saga (see
    /// `optionalProperty`); otherwise it is an error (`SagaError.missingCorrelationId`).
    var absentValueMeansNotForThisSaga = false

    /// A property of the message body.
    public static func property(_ keyPath: any KeyPath<M, String> & Sendable) -> Correlation {
        Correlation(extract: { message, _ in message[keyPath: keyPath] }, label: "\(keyPath)")
    }

    /// An optional property of the message body, for messages that only sometimes belong to a saga of
    /// this type (e.g. a transfer event that carries a `batchId` only when the transfer is part of a batch).
    ///
    /// Rule: a message whose value is nil or empty is *not for this saga*. The saga neither loads nor starts
    /// an instance, no not-found policy applies, no error is raised, and the dispatcher reports no
    /// `SagaInvocation` for this saga (other sagas and handlers of the message still run). A message
    /// that has a value follows the usual rules, including the not-found policy. Every other correlation
    /// treats a missing or empty value as an error (`SagaError.missingCorrelationId`).
    public static func optionalProperty(_ keyPath: any KeyPath<M, String?> & Sendable) -> Correlation {
        Correlation(extract: { message, _ in message[keyPath: keyPath] }, label: "\(keyPath)",
                    absentValueMeansNotForThisSaga: true)
    }

    /// The AMQP `correlation_id` of the message (how replies usually find their saga).
    public static var correlationId: Correlation {
        Correlation(extract: { _, incoming in incoming.correlationId }, label: "correlation_id")
    }

    /// Any function of the message and its envelope.
    public static func custom(_ label: String, _ extract: @escaping @Sendable (M, IncomingMessage) -> String?) -> Correlation {
        Correlation(extract: extract, label: label)
    }
}

/// What happens to a message that is handled by a saga but finds no live instance.
public enum NotFoundPolicy: Sendable, Equatable {
    /// Log, count and drop it (the default: typically a late reply after the saga completed).
    case discard
    /// Send it to the error queue with the reason.
    case errorQueue
    /// Retry it later, for messages that may arrive before the message that starts the saga; after
    /// `attempts` it goes to the error queue.
    case retryLater(attempts: Int, delay: Duration)
}
