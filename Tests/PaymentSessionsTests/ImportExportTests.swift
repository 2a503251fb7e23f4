import Foundation
import PaymentSessions
import Testing

@Suite("Export and import")
struct ImportExportTests {
    func populated() throws -> StoreFixture {
        let f = try StoreFixture()
        for cart in 0..<6 {
            for (p, provider) in ["manual", "stripe", "paypal"].enumerated() where (cart + p) % 4 != 0 {
                let s = try f.store.create(
                    NewPaymentSession(cartID: "cart_\(cart)", providerID: provider, data: ["n": .number(JSONNumber(cart * 10 + p))],
                        idempotencyKey: p == 1 ? "key-\(cart)" : nil, select: p == 2))
                f.clock.advance()
                if cart % 3 == 0 && p == 2 { try f.store.update(id: s.id, status: .authorized) }
                if cart == 5 && p == 1 { try f.store.update(id: s.id, status: .canceled) }
            }
        }
        return f
    }

    func export(_ store: PaymentSessionStore) throws -> String {
        var lines: [String] = []
        try store.exportJSONLines { lines.append($0) }
        return lines.map { $0 + "\n" }.joined()
    }

    /// Files from other systems: Windows line endings, old Mac ones, a byte order mark
    /// (as Notepad writes it), and a last line without its newline.
    @Test(arguments: ["\r\n", "\r", "\n"], [true, false])
    func importAcceptsOtherLineEndingsAndAByteOrderMark(lineEnding: String, byteOrderMark: Bool) throws {
        let source = try populated()
        let text = try export(source.store)
        var converted = text.split(separator: "\n").joined(separator: lineEnding)
        if byteOrderMark { converted = "\u{FEFF}" + converted }
        let target = try StoreFixture()
        #expect(try target.store.importJSONLines(converted) == source.store.count())
        #expect(try export(target.store) == text)
        #expect(try target.store.verify().isClean)
    }

    /// A line that is not a session still fails the whole import, whatever the line
    /// endings, and names the right line.
    @Test func aBadLineAmongWindowsLinesFailsTheWholeImportAndIsNamed() throws {
        let source = try populated()
        var lines = try export(source.store).split(separator: "\n").map(String.init)
        lines.insert("{not json}", at: 2)
        let target = try StoreFixture()
        let refusal = storeError { try target.store.importJSONLines("\u{FEFF}" + lines.joined(separator: "\r\n") + "\r\n") }
        guard case .importFailed(line: 3, _)? = refusal else {
            Issue.record("expected line 3 to fail, got \(String(describing: refusal))")
            return
        }
        #expect(try target.store.count() == 0)
    }

    /// Microseconds survive import and export exactly, also past the year 2255, where a
    /// `Double` of seconds (a `Date`) can no longer hold them.
    @Test func farFutureTimestampsKeepTheirMicroseconds() throws {
        let line = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","is_selected":false,"status":"pending","data":{},"amount":null,"currency_code":null,"is_initiated":false,"payment_authorized_at":null,"created_at":"2024-10-10T04:45:27.833601Z","updated_at":"5263-07-23T04:09:16.358151Z"}"#
        let f = try StoreFixture()
        #expect(try f.store.importJSONLines(line) == 1)
        #expect(try export(f.store) == line + "\n")
        let decoded = try JSONDecoder().decode(PaymentSession.self, from: Data(line.utf8))
        #expect(try f.store.session(id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ") == decoded)
    }

    @Test func importOfAnExportReproducesTheStoreExactly() throws {
        let source = try populated()
        let text = try export(source.store)
        let target = try StoreFixture()
        #expect(try target.store.importJSONLines(text) == source.store.count())
        #expect(try target.store.sessions(limit: 1000) == source.store.sessions(limit: 1000))
        for cart in 0..<6 {
            #expect(try target.store.selectedSession(cartID: "cart_\(cart)") == source.store.selectedSession(cartID: "cart_\(cart)"))
        }
        #expect(try target.store.session(idempotencyKey: "key-2") == source.store.session(idempotencyKey: "key-2"))
        #expect(try export(target.store) == text)
        #expect(try target.store.verify().isClean)
    }

    @Test func aBadLineAnywhereImportsNothingAndNamesTheLine() throws {
        let source = try populated()
        var lines = try export(source.store).split(separator: "\n").map(String.init)
        lines[5] = lines[5].replacingOccurrences(of: "\"status\":\"", with: "\"status\":\"x")
        let target = try StoreFixture()
        let error = storeError { try target.store.importJSONLines(lines.joined(separator: "\n")) }
        guard case .importFailed(let line, .invalidInput(let field, _, _)) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(line == 6)
        #expect(field == "status")
        #expect(error?.code == .invalidInput)
        #expect(try target.store.count() == 0)
    }

    @Test func conflictsFoundOnlyWhileWritingAlsoImportNothing() throws {
        let source = try populated()
        let text = try export(source.store)
        let target = try StoreFixture()
        // Everything twice: the first copy is valid, the second collides.
        let error = storeError { try target.store.importJSONLines(text + text) }
        guard case .importFailed(_, let inner) = error else {
            Issue.record("unexpected \(String(describing: error))")
            return
        }
        #expect(inner.code == .conflict)
        #expect(try target.store.count() == 0)
    }

    @Test func twoSelectedSessionsForOneCartAreRefused() throws {
        let f = try StoreFixture()
        let a = PaymentSession(
            id: "ps_01G901XNSRM2YS3ASN9H5KG3FZ", cartID: "c", providerID: "a", isSelected: true, createdAt: f.clock.now,
            updatedAt: f.clock.now)
        var b = a
        b.id = "ps_01G901XNSRM2YS3ASN9H5KG3G0"
        b.providerID = "b"
        let error = storeError { try f.store.importJSONLines(a.jsonText() + "\n" + b.jsonText()) }
        #expect(error?.code == .invalidInput)
        #expect(try f.store.count() == 0)
    }

    @Test func blankLinesAndCRLFAreTolerated() throws {
        let source = try populated()
        let text = try export(source.store).replacingOccurrences(of: "\n", with: "\r\n\n")
        let target = try StoreFixture()
        #expect(try target.store.importJSONLines(text) == source.store.count())
    }
}
