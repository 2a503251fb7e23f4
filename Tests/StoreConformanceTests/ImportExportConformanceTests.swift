import Foundation
import PaymentSessions
import Testing
import TestScheduling

/// Export and import on each backend: edge cases of the JSON Lines text, failures that
/// import nothing and name the line, timestamps kept to the microsecond.
@Suite("Conformance: export and import", .ownThreads)
struct ImportExportConformanceTests {
    /// Six carts of up to three sessions: keys, selections, authorized and canceled ones.
    static func populate(_ store: any PaymentSessionStoring, clock: ManualClock) async throws {
        for cart in 0..<6 {
            for (p, provider) in ["manual", "stripe", "paypal"].enumerated() where (cart + p) % 4 != 0 {
                let s = try await store.create(
                    NewPaymentSession(cartID: "cart_\(cart)", providerID: provider, data: ["n": .number(JSONNumber(cart * 10 + p))],
                        idempotencyKey: p == 1 ? "key-\(cart)" : nil, select: p == 2, amount: 100 * cart, currencyCode: "usd"))
                clock.advance()
                if cart % 3 == 0 && p == 2 { _ = try await store.update(id: s.id, status: .authorized, data: nil, expectedUpdatedAt: nil) }
                if cart == 5 && p == 1 { _ = try await store.update(id: s.id, status: .canceled, data: nil, expectedUpdatedAt: nil) }
            }
        }
    }

    static func export(_ store: any PaymentSessionStoring) async throws -> String {
        var lines: [String] = []
        _ = try await store.exportJSONLines { lines.append($0) }
        return lines.map { $0 + "\n" }.joined()
    }

    /// A populated store's export, from a store of `backend`.
    static func exported(on backend: Backend) async throws -> String {
        let clock = ManualClock()
        var text = ""
        try await withStore(backend, clock: clock) { store in
            try await populate(store, clock: clock)
            text = try await export(store)
        }
        return text
    }

    /// Files from other systems: Windows line endings, old Mac ones, a byte order mark (as
    /// Notepad writes it), and a last line without its newline.
    static let textForms: [(lineEnding: String, byteOrderMark: Bool)] = [
        ("\r\n", true), ("\r\n", false), ("\r", true), ("\r", false), ("\n", true), ("\n", false),
    ]

    @Test(arguments: Backend.available)
    func importAcceptsOtherLineEndingsAndAByteOrderMark(backend: Backend) async throws {
        let text = try await Self.exported(on: backend)
        let count = text.split(separator: "\n").count
        for (lineEnding, byteOrderMark) in Self.textForms {
            var converted = text.split(separator: "\n").joined(separator: lineEnding)
            if byteOrderMark { converted = "\u{FEFF}" + converted }
            try await withStore(backend) { target in
                #expect(try await target.importJSONLines(converted) == count)
                #expect(try await Self.export(target) == text)
                try await expectInvariants(target)
            }
        }
    }

    /// A line that is not a session still fails the whole import, whatever the line
    /// endings, and names the right line.
    @Test(arguments: Backend.available)
    func aBadLineAmongWindowsLinesFailsTheWholeImportAndIsNamed(backend: Backend) async throws {
        var lines = try await Self.exported(on: backend).split(separator: "\n").map(String.init)
        lines.insert("{not json}", at: 2)
        try await withStore(backend) { target in
            let refusal = await expectStoreError {
                _ = try await target.importJSONLines("\u{FEFF}" + lines.joined(separator: "\r\n") + "\r\n")
            }
            guard case .importFailed(line: 3, _)? = refusal else {
                Issue.record("expected line 3 to fail, got \(String(describing: refusal))")
                return
            }
            let result = try await target.count()
            #expect(result == 0)
        }
    }

    /// Microseconds survive import and export exactly, also past the year 2255, where a
    /// `Double` of seconds (a `Date`) can no longer hold them.
    @Test(arguments: Backend.available)
    func farFutureTimestampsKeepTheirMicroseconds(backend: Backend) async throws {
        let line = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","is_selected":false,"status":"pending","data":{},"amount":null,"currency_code":null,"is_initiated":false,"payment_authorized_at":null,"created_at":"2024-10-10T04:45:27.833601Z","updated_at":"5263-07-23T04:09:16.358151Z"}"#
        try await withStore(backend) { store in
            #expect(try await store.importJSONLines(line) == 1)
            #expect(try await Self.export(store) == line + "\n")
            let decoded = try JSONDecoder().decode(PaymentSession.self, from: Data(line.utf8))
            #expect(try await store.session(id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ") == decoded)
            // A cutoff far in the past or the future neither traps nor purges wrongly: dates
            // past what 64 bits of microseconds hold are clamped.
            #expect(Timestamp.microseconds(Date(timeIntervalSince1970: 1e300)) == .max)
            #expect(Timestamp.microseconds(Date(timeIntervalSince1970: .nan)) == 0)
            let none = try await store.purge(
                notUpdatedSince: Date(timeIntervalSince1970: -1e300), statuses: nil, includeAuthorized: false)
            #expect(none.purged == 0)
            let all = try await store.purge(notUpdatedSince: Date(timeIntervalSince1970: 1e300), statuses: nil, includeAuthorized: false)
            #expect(all.purged == 1)
        }
    }

    @Test(arguments: Backend.available)
    func anImportOfAnExportReproducesTheStoreExactly(backend: Backend) async throws {
        let clock = ManualClock()
        try await withStore(backend, clock: clock) { source in
            try await Self.populate(source, clock: clock)
            let text = try await Self.export(source)
            try await withStore(backend) { target in
                #expect(try await target.importJSONLines(text) == source.count())
                #expect(try await contents(of: target) == contents(of: source))
                for cart in 0..<6 {
                    #expect(try await target.selectedSession(cartID: "cart_\(cart)") == source.selectedSession(cartID: "cart_\(cart)"))
                }
                #expect(try await target.session(idempotencyKey: "key-2") == source.session(idempotencyKey: "key-2"))
                #expect(try await Self.export(target) == text)
                try await expectInvariants(target)
            }
        }
    }

    @Test(arguments: Backend.available)
    func aBadLineAnywhereImportsNothingAndNamesTheLine(backend: Backend) async throws {
        var lines = try await Self.exported(on: backend).split(separator: "\n").map(String.init)
        lines[5] = lines[5].replacingOccurrences(of: "\"status\":\"", with: "\"status\":\"x")
        try await withStore(backend) { target in
            let error = await expectStoreError { _ = try await target.importJSONLines(lines.joined(separator: "\n")) }
            guard case .importFailed(let line, .invalidInput(let field, _, _))? = error else {
                Issue.record("unexpected \(String(describing: error))")
                return
            }
            #expect(line == 6)
            #expect(field == "status")
            #expect(error?.code == .invalidInput)
            let result = try await target.count()
            #expect(result == 0)
        }
    }

    @Test(arguments: Backend.available)
    func conflictsFoundOnlyWhileWritingAlsoImportNothing(backend: Backend) async throws {
        let text = try await Self.exported(on: backend)
        try await withStore(backend) { target in
            // Everything twice: the first copy is valid, the second collides.
            let error = await expectStoreError { _ = try await target.importJSONLines(text + text) }
            guard case .importFailed(_, let inner)? = error else {
                Issue.record("unexpected \(String(describing: error))")
                return
            }
            #expect(inner.code == .conflict)
            let result = try await target.count()
            #expect(result == 0)
        }
    }

    @Test(arguments: Backend.available)
    func blankLinesAndCRLFAreTolerated(backend: Backend) async throws {
        let text = try await Self.exported(on: backend)
        try await withStore(backend) { target in
            let result = try await target.importJSONLines(text.replacingOccurrences(of: "\n", with: "\r\n\n"))
            #expect(result == text.split(separator: "\n").count)
        }
    }

    /// Sessions whose money breaks the rules are refused, not rewritten; a session
    /// authorized before amounts existed (no amount, no authorization time) still imports.
    @Test(arguments: Backend.available)
    func wholeSessionsWithBadMoneyAreRefusedAndLegacyOnesKept(backend: Backend) async throws {
        let clock = ManualClock()
        func session(_ id: String, cart: String, selected: Bool, amount: Int?, authorizedAt: Date?) -> PaymentSession {
            var session = PaymentSession(
                id: id, cartID: cart, providerID: "p", isSelected: selected, status: .authorized, createdAt: clock.now,
                updatedAt: clock.now)
            session.amount = amount
            session.currencyCode = amount == nil ? nil : "usd"
            session.paymentAuthorizedAt = authorizedAt
            return session
        }
        try await withStore(backend, clock: clock) { store in
            let orphaned = session("ps_01G901XNSRM2YS3ASN9H5KG3F0", cart: "a", selected: false, amount: 100, authorizedAt: clock.now)
            let unrecorded = session("ps_01G901XNSRM2YS3ASN9H5KG3F1", cart: "b", selected: true, amount: 100, authorizedAt: nil)
            for bad in [orphaned, unrecorded] {
                let error = await expectStoreError { _ = try await store.importJSONLines(bad.jsonText()) }
                #expect(error?.code == .invalidInput, "\(bad.jsonText())")
                let inserted = await expectStoreError { try await store.perform([.insert(bad)]) }
                #expect(inserted?.code == .invalidInput)
            }
            var negative = session("ps_01G901XNSRM2YS3ASN9H5KG3F2", cart: "c", selected: true, amount: 100, authorizedAt: clock.now)
            negative.amount = -5
            #expect(await expectStoreError { try await store.perform([.insert(negative)]) }?.code == .invalidInput)
            negative.amount = 100
            negative.currencyCode = "usdx"
            #expect(await expectStoreError { try await store.perform([.insert(negative)]) }?.code == .invalidInput)
            #expect(try await store.count() == 0)

            let legacy = session("ps_01G901XNSRM2YS3ASN9H5KG3F3", cart: "d", selected: true, amount: nil, authorizedAt: nil)
            #expect(try await store.importJSONLines(legacy.jsonText()) == 1)
            // Authorizing it again for an amount records the amount and the time.
            clock.advance()
            let authorized = try await store.authorize(id: legacy.id, amount: 500, currencyCode: "usd", data: nil, expectedUpdatedAt: nil)
            #expect(authorized.amount == 500 && authorized.paymentAuthorizedAt == clock.now)
        }
    }

    /// A deleted session restored from an export gets its idempotency key back.
    @Test(arguments: Backend.available)
    func aDeletedSessionCanBeRestoredWithItsKey(backend: Backend) async throws {
        try await withStore(backend) { store in
            let session = try await store.create(NewPaymentSession(cartID: "c", providerID: "stripe", idempotencyKey: "k-stripe"))
            _ = try await store.delete(id: session.id, force: false)
            #expect(try await store.session(idempotencyKey: "k-stripe") == nil)
            #expect(try await store.importJSONLines(session.jsonText()) == 1)
            #expect(try await store.session(idempotencyKey: "k-stripe") == session)
            try await expectInvariants(store)
        }
    }
}
