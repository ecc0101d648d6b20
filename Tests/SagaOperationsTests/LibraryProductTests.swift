import Foundation
import Testing

/// A package that hosts a `SagaEndpoint` itself (not through `saga-endpoint run`) needs this module to serve
/// `/metrics` and `/health/*`: without a library product for it, SwiftPM refuses `.product(name:
/// "SagaOperations", …)` in the user's manifest, and the README's `OperationsServer` was out of reach.
@Suite("SagaOperations as a library product")
struct LibraryProductTests {
    @Test func theManifestOffersSagaOperationsToOtherPackages() throws {
        var root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        let manifest = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let products = try #require(manifest.components(separatedBy: "products: [").dropFirst().first?
            .components(separatedBy: "],").first, "no products list in Package.swift")
        let declared = products.replacingOccurrences(of: " ", with: "")
        #expect(declared.contains(#".library(name:"SagaOperations",targets:["SagaOperations"])"#),
                "Package.swift's products: \(products)")
    }
}
