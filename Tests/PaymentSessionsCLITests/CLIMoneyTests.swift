import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

/// Amounts and authorization through the command line.
@Suite("payment-sessions money commands", .ownThreads)
struct CLIMoneyTests {
    @Test func authorizeIsIdempotentAndRefusesAnotherAmount() throws {
        let cli = CLI()
        let session = try cli.session(["create", "--cart", "c", "--provider", "stripe", "--select", "--amount", "4200", "--currency", "usd"])
        #expect(session.amount == 4200 && session.currencyCode == "usd")
        let secret = cli.directory.appending("answer.json")
        try Data(#"{"intent":"pi_1"}"#.utf8).write(to: URL(fileURLWithPath: secret))
        let authorized = try cli.session(["authorize", session.id, "--amount", "4200", "--data", "@" + secret])
        #expect(authorized.status == .authorized && authorized.paymentAuthorizedAt != nil)
        #expect(authorized.data == ["intent": "pi_1"])
        // A repeat prints the same session and exits 0.
        #expect(try cli.session(["authorize", session.id, "--amount", "4200"]) == authorized)
        let other = try cli.run(["authorize", session.id, "--amount", "4300"])
        #expect(other.status == 3)
        #expect(errorCode(other) == "conflict")
        // The amount is the hold's: another is a conflict.
        let amount = try cli.run(["update", session.id, "--amount", "5000"])
        #expect(amount.status == 3)
        #expect(try cli.session(["get", session.id]) == authorized)
    }

    @Test func holdsAreNotOrphanedFromTheCommandLine() throws {
        let cli = CLI()
        let stripe = try cli.session(["create", "--cart", "c", "--provider", "stripe", "--select", "--amount", "100", "--currency", "eur"])
        let manual = try cli.session(["create", "--cart", "c", "--provider", "manual"])
        let notSelected = try cli.run(["authorize", manual.id, "--amount", "100", "--currency", "eur"])
        #expect(notSelected.status == 3)
        try cli.session(["authorize", stripe.id, "--amount", "100"])
        for arguments in [["select", manual.id], ["deselect", "--cart", "c"], ["delete", stripe.id]] {
            let refused = try cli.run(arguments)
            #expect(refused.status == 3, "\(arguments)")
            #expect(errorCode(refused) == "conflict", "\(arguments)")
        }
        #expect(try cli.json(["purge", "--older-than", "0s"]) == ["purged": 1, "kept_authorized": 1, "reservations_dropped": 0, "changes_trimmed": 0])
        #expect(try cli.json(["delete", stripe.id, "--force"]) == ["deleted": .string(stripe.id)])
        #expect(try cli.json(["verify"]) == ["sessions": 0, "problems": [], "legacy_authorized": [], "reservations": 0])
    }

    @Test func amountsOutOfRangeAreInvalidInput() throws {
        let cli = CLI()
        let session = try cli.session(["create", "--cart", "c", "--provider", "p", "--select"])
        for arguments in [
            ["create", "--cart", "d", "--provider", "p", "--amount", "9007199254740992", "--currency", "usd"],
            ["create", "--cart", "d", "--provider", "p", "--amount=-5", "--currency", "usd"],
            ["create", "--cart", "d", "--provider", "p", "--amount", "12", "--currency", "USD"],
            ["create", "--cart", "d", "--provider", "p", "--amount", "12"],
            ["authorize", session.id, "--amount", "1e3", "--currency", "usd"],
            ["update", session.id, "--currency", "usd"],
        ] {
            let output = try cli.run(arguments)
            #expect(output.status == 2, "\(arguments): \(output.stderr)")
            #expect(errorCode(output) == "invalid_input", "\(arguments)")
        }
        #expect(try cli.json(["stats"]).objectValue?["sessions"] == 1)
    }

    /// A retried create with the key of a deleted session is `not_found` (exit 1): the key
    /// stays reserved for 24 hours.
    @Test func aDeletedSessionsKeyIsNotReused() throws {
        let cli = CLI()
        let session = try cli.session(["create", "--cart", "c", "--provider", "p", "--idempotency-key", "order-7"])
        #expect(try cli.json(["delete", session.id]) == ["deleted": .string(session.id)])
        let retry = try cli.run(["create", "--cart", "c", "--provider", "p", "--idempotency-key", "order-7"])
        #expect(retry.status == 1)
        #expect(errorCode(retry) == "not_found")
        #expect(try cli.json(["verify"]).objectValue?["reservations"] == 1)
    }
}
