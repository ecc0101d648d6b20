import SagaEndpoint
import Testing

@Suite("EndpointConfiguration")
struct EndpointConfigurationTests {
    // Found by a code review: a host app that logged its configuration logged the broker's password.
    @Test("printed or logged, it hides the broker's password and shows the rest")
    func descriptionHidesThePassword() {
        let configuration = EndpointConfiguration(amqpURL: "amqps://app:s3cret-pw@broker:5671/prod?keyfile=/etc/app/key.pem",
                                                  inputQueues: ["orders"], databasePath: "/var/lib/orders.sqlite")
        for text in ["\(configuration)", String(reflecting: configuration)] {
            #expect(!text.contains("s3cret-pw"))
            #expect(text.contains("amqps://app:***@broker:5671/prod"))
            #expect(!text.contains("key.pem"), "as the endpoint logs it: no query")
            #expect(text.contains("inputQueues: [\"orders\"]"))
            #expect(text.contains("databasePath: \"/var/lib/orders.sqlite\""))
        }
    }

    // Found in review: a URL that does not parse kept its query in the description, so a password put in
    // the query (`?password=…`), which the URL's own parse error hides, was printed by a host app that
    // logs its configuration.
    @Test("a URL that does not parse is shown with its password and its query values hidden")
    func descriptionOfAnUnparseableURL() {
        for url in ["amqp://app@broker/prod?password=s3cret-pw", "amqp://app:s3cret-pw@broker/prod?heartbeat=soon",
                    "amqp://app@broker/prod?s3cret-pw"] {
            let configuration = EndpointConfiguration(amqpURL: url, inputQueues: ["orders"], databasePath: "o.sqlite")
            for text in ["\(configuration)", String(reflecting: configuration)] {
                #expect(!text.contains("s3cret-pw"), "\(text)")
                #expect(text.contains("amqp://app"), "\(text)")
            }
        }
    }

}
