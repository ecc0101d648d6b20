@testable import saga_bench
import Testing

/// saga-bench's own parser quoted a refused argument as it was: a broker URL typed without `--url`, or
/// after the wrong option, was printed with its password.
@Suite("Bench options: a refused argument is quoted without a password")
struct OptionsRedactionTests {
    @Test(arguments: [["amqp://ops:S3CR3T@rabbit/"], ["--rounds", "amqp://ops:S3CR3T@rabbit/"],
                      ["--latency-seconds", "amqp://ops:S3CR3T@rabbit/"], ["--latency-rate", "amqp://ops:S3CR3T@rabbit/"]])
    func refusedURLIsRedacted(arguments: [String]) {
        do {
            _ = try Options.parse(arguments)
            Issue.record("accepted \(arguments)")
        } catch {
            #expect(!"\(error)".contains("S3CR3T"), "\(error)")
            #expect("\(error)".contains("amqp://ops:***@rabbit/"), "\(error)")
        }
    }
}
