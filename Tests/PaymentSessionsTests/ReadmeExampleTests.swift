import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

/// README.md's "Using the library" example, verbatim but for the store path and the
/// `print` it calls: if this stops compiling or passing, the README is wrong.
///
/// The test reads README.md itself: every line of the example must stand in this file, and
/// what each `print` writes must match the `// ...` comment the README gives it (`...`
/// standing for any text, such as a generated id).
@Suite("README example", .ownThreads)
struct ReadmeExampleTests {
    @Test func theReadmeExampleCompilesAndRuns() throws {
        var printed: [String] = []
        // Shadows the standard library's `print`, to compare what the example prints.
        func print(_ items: Any...) { printed.append(items.map { "\($0)" }.joined(separator: " ")) }

        let directory = TemporaryDirectory(prefix: "readme")
        let store = try PaymentSessionStore(path: directory.appending("sessions"))

        // Create sessions for a cart; the idempotency key makes a retried request safe.
        let stripe = try store.create(NewPaymentSession(
            cartID: "cart_01G8ZH853Y6TFXWPG5EYE81X63", providerID: "stripe",
            data: ["client_secret": "pi_123_secret"], idempotencyKey: "req-7f3a", select: true))
        let manual = try store.create(NewPaymentSession(cartID: stripe.cartID, providerID: "manual"))

        // Switch the selection: the stripe session is deselected in the same transaction.
        try store.select(id: manual.id)

        // Several operations, all or nothing: a thrown error rolls every one of them back.
        let authorized = try store.write { tx in
            try tx.select(id: stripe.id)
            return try tx.update(id: stripe.id, status: .authorized, data: ["intent": "pi_123"])
        }

        // Reads see one consistent snapshot.
        let (selected, all) = try store.read { tx in
            (try tx.selectedSession(cartID: stripe.cartID), try tx.sessions(cartID: stripe.cartID))
        }
        print(selected?.jsonText() ?? "none", all.count, authorized.status)

        // Typed errors carry the failing input; nothing was written when one is thrown.
        var caught: PaymentSessionError?
        do {
            try store.update(id: stripe.id, status: .pending)
        } catch {
            // `error` is a PaymentSessionError (typed throws): here .invalidTransition(id:from:to:).
            print(error.code.rawValue, error)  // invalid_transition payment session ps_... cannot move from authorized to pending
            caught = error
        }

        // `data` straight from a provider's JSON response body: checked once, stored compact,
        // without building a dictionary for the store to encode again.
        let body = #"{"id": "pi_456", "client_secret": "pi_456_secret", "amount": 4200}"#
        let paypal = try store.create(NewPaymentSession(cartID: stripe.cartID, providerID: "paypal", dataJSON: body.utf8))
        print(paypal.data["amount"] ?? "none")  // 4200

        #expect(caught == .invalidTransition(id: stripe.id, from: .authorized, to: .pending))
        #expect(selected?.id == stripe.id)
        #expect(selected?.status == .authorized)
        #expect(all.map(\.providerID) == ["stripe", "manual"])
        #expect(paypal.data == ["id": "pi_456", "client_secret": "pi_456_secret", "amount": 4200])
        #expect(paypal.jsonText().contains(#""data":{"id":"pi_456","client_secret":"pi_456_secret","amount":4200}"#))
        #expect(try store.verify().isClean)

        try Self.checkAgainstDocument("README.md", section: "## Using the library", printed: printed)
    }

    /// The "Money and authorization" article's example (PaymentSessions.docc), verbatim but for the store.
    @Test func theMoneyArticleExampleCompilesAndRuns() throws {
        var printed: [String] = []
        func print(_ items: Any...) { printed.append(items.map { "\($0)" }.joined(separator: " ")) }
        let directory = TemporaryDirectory(prefix: "readme-money")
        let store = try PaymentSessionStore(path: directory.appending("sessions"))

        // The cart's total is known: the sessions carry it, and follow it while nothing is held.
        let stripe = try store.create(NewPaymentSession(
            cartID: "cart_7", providerID: "stripe", select: true, amount: 4200, currencyCode: "usd"))
        try store.update(id: stripe.id, amount: 5100)                 // the customer added an item

        // The provider authorized 5100: recorded with its time, in one write. A retry after a
        // timeout returns the same session and writes nothing; another amount is a conflict.
        let held = try store.authorize(id: stripe.id, amount: 5100, data: ["intent": "pi_9"])
        _ = try store.authorize(id: stripe.id, amount: 5100)         // idempotent

        // The hold cannot be orphaned: no provider switch, no delete, until it is voided.
        // try store.select(id: manualID)   -> authorizedSessionSelected (conflict)
        try store.update(id: stripe.id, status: .canceled)           // keeps payment_authorized_at

        // A cart's payment state in one read.
        let payment = try store.cartPayment(cartID: "cart_7")
        print(payment.isAuthorized(for: 5100, currencyCode: "usd"), held.paymentAuthorizedAt != nil)  // false true

        #expect(try store.session(id: stripe.id)?.paymentAuthorizedAt == held.paymentAuthorizedAt)
        try Self.checkAgainstDocument(
            "Sources/PaymentSessions/PaymentSessions.docc/MoneyAndAuthorization.md", section: "## Overview", printed: printed)
    }

    /// The example in `section` of the document at `path` (from the package's root), line
    /// for line in this file, and its `// output` comments matched against what the prints
    /// wrote, in order.
    static func checkAgainstDocument(_ path: String, section heading: String, printed: [String]) throws {
        let here = URL(fileURLWithPath: #filePath)
        let root = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
        let source = try String(contentsOf: here, encoding: .utf8)
        let section = try #require(readme.range(of: heading))
        let afterHeading = readme[section.upperBound...]
        let start = try #require(afterHeading.range(of: "```swift\n"))
        let end = try #require(afterHeading[start.upperBound...].range(of: "```"))
        let example = afterHeading[start.upperBound..<end.lowerBound].split(separator: "\n").map {
            $0.trimmingCharacters(in: .whitespaces)
        }
        let sourceLines = Set(source.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) })
        for line in example where !line.isEmpty && !line.hasPrefix("import ") && !line.hasPrefix("// Package.swift")
            && !line.contains("PaymentSessionStore(path:")
        {
            #expect(sourceLines.contains(line), "\(path) line not in the test: \(line)")
        }
        let expectations = example.filter { $0.hasPrefix("print(") }.map { line -> String? in
            guard let comment = line.range(of: "  // ") else { return nil }
            return String(line[comment.upperBound...])
        }
        #expect(expectations.count == printed.count, "\(path) prints \(expectations.count) times, the example \(printed.count)")
        for (expected, actual) in zip(expectations, printed) {
            guard let expected else { continue }
            #expect(Self.matches(actual, pattern: expected), "printed \(actual), \(path) says \(expected)")
        }
    }

    /// Whether `text` is `pattern` with each `...` standing for any run of characters.
    static func matches(_ text: String, pattern: String) -> Bool {
        let pieces = pattern.components(separatedBy: "...")
        guard text.hasPrefix(pieces[0]), text.hasSuffix(pieces[pieces.count - 1]) else { return false }
        var rest = text[text.index(text.startIndex, offsetBy: pieces[0].count)...]
        for piece in pieces.dropFirst() {
            guard let found = rest.range(of: piece) else { return false }
            rest = rest[found.upperBound...]
        }
        return true
    }
}
