public import Sagas

/// Counts the messages of one counter: a saga whose state is a number, to detect lost updates. Shared by
/// the fixture process (`saga-endpoint-fixture --app counter`) and the in-process endpoint tests, which
/// must agree on its saga and message types.
public struct CounterSaga: Saga {
    public static let sagaType = "Counter"
    public var counterId: String
    public var count: Int

    public struct Increment: Message {
        public static let messageType = "Increment"
        public var counterId: String

        public init(counterId: String) {
            self.counterId = counterId
        }
    }

    public static func define(_ saga: inout SagaDefinition<CounterSaga>) {
        saga.startedBy(Increment.self, correlatedBy: \.counterId,
                       whenExisting: { saga, _, _ in saga.count += 1 }) { message, _ in
            CounterSaga(counterId: message.counterId, count: 1)
        }
    }
}
