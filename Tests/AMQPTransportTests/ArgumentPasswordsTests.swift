import Foundation
@testable import AMQPTransport
import Testing

@Suite("Passwords in the process's arguments")
struct ArgumentPasswordsTests {
    /// An argument vector of our own: C strings the overwrite may change in place.
    private func withArguments(_ arguments: [String], _ body: (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Void)
        -> [String] {
        let vector = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
        defer { vector.deallocate() }
        for (index, argument) in arguments.enumerated() { vector[index] = strdup(argument) }
        vector[arguments.count] = nil
        body(arguments.count, vector)
        defer { for index in arguments.indices { free(vector[index]) } }
        return arguments.indices.map { String(cString: vector[$0]!) }
    }

    @Test("a URL's password becomes asterisks in place; other arguments and the program name stay")
    func masksPasswords() {
        let after = withArguments(["saga-bench", "--url", "amqp://ops:s3cret@rabbit:5672/v", "--rounds", "3"]) {
            ArgumentPasswords.hide(argc: $0, argv: $1)
        }
        #expect(after == ["saga-bench", "--url", "amqp://ops:******@rabbit:5672/v", "--rounds", "3"])
    }

    // Failed before: `1..<argc` with argc 0 trapped (the process died before its command ran).
    @Test("no arguments at all (argc 0, argc 1): nothing to do, no trap")
    func emptyVector() {
        #expect(withArguments([]) { ArgumentPasswords.hide(argc: $0, argv: $1) } == [])
        #expect(withArguments(["saga-endpoint"]) { ArgumentPasswords.hide(argc: $0, argv: $1) } == ["saga-endpoint"])
    }
}
