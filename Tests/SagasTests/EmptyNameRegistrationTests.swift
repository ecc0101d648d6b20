import Sagas
import Testing

// Found by a library user's walkthrough: an empty `messageType` or `sagaType` (a name read from an unset
// setting, say) was registered without a word. Messages are routed by their AMQP `type`, and the endpoint
// error-queues a message without one unread: the handler never ran. Before the check these registrations
// returned normally (the exit tests below expected a failure and saw success).

enum Unnamed {
    struct Ping: Message {
        static let messageType = ""
        var id: String
    }
    struct Named: Message { var id: String }
    struct Tracker: Saga {
        static let sagaType = ""
        var id: String
        static func define(_ saga: inout SagaDefinition<Tracker>) {
            saga.startedBy(Named.self, correlatedBy: \.id) { named, _ in Tracker(id: named.id) }
        }
    }
    struct Starter: Saga {
        var id: String
        static func define(_ saga: inout SagaDefinition<Starter>) {
            saga.startedBy(Ping.self, correlatedBy: \.id) { ping, _ in Starter(id: ping.id) }
        }
    }
}

@Suite("Registering a saga or handler under an empty name")
struct EmptyNameRegistrationTests {
    @Test("a stateless handler of a message type with an empty messageType stops the program, naming it")
    func emptyMessageTypeHandler() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.handle(Unnamed.Ping.self) { _, _ in }
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("Unnamed.Ping has an empty `messageType`"), "\(output)")
    }

    @Test("a saga started by a message type with an empty messageType stops the program, naming it")
    func emptyMessageTypeInSaga() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.register(Unnamed.Starter.self)
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("Unnamed.Ping has an empty `messageType`"), "\(output)")
    }

    @Test("a saga with an empty sagaType stops the program, naming it")
    func emptySagaType() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            var registry = HandlerRegistry()
            registry.register(Unnamed.Tracker.self)
        }
        let output = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(output.contains("Unnamed.Tracker has an empty `sagaType`"), "\(output)")
    }
}
