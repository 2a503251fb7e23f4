import Foundation
import PaymentSessions
import StoreTestFixtures
import Testing
import TestSupport
import TestScheduling
import LMDB

/// `data` given as JSON text (`NewPaymentSession(dataJSON:)`): checked when the input is
/// made, as strictly as a stored record and by the same depth rule as a dictionary,
/// stored compact, and read back as the same object.
@Suite("Data given as JSON text", .ownThreads)
struct DataTextTests {
    static let richText = Array(JSONValue.object(StoredDataTests.richData).jsonText.utf8)

    /// The `data` member of a session's JSON, as text.
    static func storedDataText(_ session: PaymentSession) throws -> String {
        let printed = session.jsonText()
        let start = try #require(printed.range(of: #","data":"#))
        // `data` is followed by `idempotency_key` when there is one, else by `amount`.
        let end = try #require(printed.range(of: #","idempotency_key":"#) ?? printed.range(of: #","amount":"#))
        return String(printed[start.upperBound..<end.lowerBound])
    }

    /// Whether `text` (valid JSON) has no whitespace outside its strings.
    static func isCompact(_ text: String) -> Bool {
        var inString = false
        var escaped = false
        for byte in text.utf8 {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            } else if [0x20, 0x09, 0x0A, 0x0D].contains(byte) {
                return false
            }
        }
        return true
    }

    @Test func aSessionCreatedFromTextEqualsOneCreatedFromTheObject() throws {
        let f = try StoreFixture()
        let fromText = try NewPaymentSession(cartID: "cart", providerID: "stripe", dataJSON: Self.richText)
        let fromObject = NewPaymentSession(cartID: "cart", providerID: "stripe", data: StoredDataTests.richData)
        #expect(fromText == fromObject)
        #expect(fromText.hashValue == fromObject.hashValue)
        #expect(fromText.data == StoredDataTests.richData)

        let created = try f.store.create(fromText)
        #expect(created.data == StoredDataTests.richData)
        let read = try #require(try f.store.session(id: created.id))
        #expect(read == created)
        #expect(read.data == StoredDataTests.richData)
        #expect(try Self.storedDataText(read) == String(decoding: Self.richText, as: UTF8.self))
        #expect(try f.store.verify().isClean)
    }

    @Test func textIsStoredCompactWithItsKeysInTheGivenOrder() throws {
        let f = try StoreFixture()
        let text = " {\n  \"z\" : [ 1 , 2.5e3 , { } ] ,\r\n\t\"a b\\\" c\" : \"x  y\\\\\" , \"m\":null }\n"
        let session = try f.store.create(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: text.utf8))
        let stored = try Self.storedDataText(try #require(try f.store.session(id: session.id)))
        #expect(stored == #"{"z":[1,2.5e3,{}],"a b\" c":"x  y\\","m":null}"#)
        #expect(session.data == ["z": [1, .number(JSONNumber(text: "2.5e3")!), [:]], "a b\" c": "x  y\\", "m": nil])
    }

    @Test func escapesAndMultiByteTextNextToWhitespaceAreKeptAsGiven() throws {
        let f = try StoreFixture()
        let text = "{ \"\\u00e9t\u{E9}\" :\t\"\u{1F600} \\\" \\u0041\" , \"n\" : [ \"\u{FC}\" ,\"\\n\" ] }"
        let session = try f.store.create(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: text.utf8))
        let stored = try Self.storedDataText(try #require(try f.store.session(id: session.id)))
        #expect(stored == "{\"\\u00e9t\u{E9}\":\"\u{1F600} \\\" \\u0041\",\"n\":[\"\u{FC}\",\"\\n\"]}")
        #expect(session.data == ["\u{E9}t\u{E9}": "\u{1F600} \" A", "n": ["\u{FC}", "\n"]])
    }

    @Test func theSameObjectWithItsKeysInAnotherOrderIsEqual() throws {
        let ab = try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: #"{"a":1,"b":[2,{"x":1,"y":2}]}"#.utf8)
        let ba = try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: #"{"b":[2,{"y":2,"x":1}],"a":1}"#.utf8)
        #expect(ab == ba)
        #expect(ab.hashValue == ba.hashValue)
        let f = try StoreFixture()
        let stored = try f.store.create(ab)
        #expect(try f.store.session(id: stored.id)?.data == ba.data)
    }

    @Test func dataLargerThanTheParsersDefaultLimitReadsBack() throws {
        let f = try StoreFixture { $0.maxDataBytes = 2 << 20; $0.environment.mapSize = 64 << 20 }
        let big = String(repeating: "z", count: 3 << 19)  // 1.5 MiB: above JSONParser's default 1 MiB
        let fromText = try f.store.create(
            try NewPaymentSession(cartID: "c", providerID: "text", dataJSON: (#"{"big":""# + big + #""}"#).utf8))
        let fromObject = try f.store.create(NewPaymentSession(cartID: "c", providerID: "object", data: ["big": .string(big)]))
        for session in [fromText, fromObject] {
            #expect(try f.store.session(id: session.id)?.data == ["big": .string(big)])
        }
        // Rewritten whole by changes that keep `data`, and through export and import.
        _ = try f.store.select(id: fromText.id)
        _ = try f.store.update(id: fromObject.id, status: .requiresMore)
        #expect(try f.store.verify().isClean)
        var lines: [String] = []
        _ = try f.store.exportJSONLines { lines.append($0) }
        let exported = lines.joined(separator: "\n")
        let copy = try StoreFixture { $0.maxDataBytes = 2 << 20; $0.environment.mapSize = 64 << 20 }
        #expect(try copy.store.importJSONLines(exported) == 2)
        #expect(try copy.store.session(id: fromText.id) == f.store.session(id: fromText.id))
        #expect(try copy.store.session(id: fromObject.id)?.data == ["big": .string(big)])
        #expect(try copy.store.verify().isClean)
    }

    /// Refreshing a session without new `data` keeps its stored text byte for byte (key
    /// order included), bumps `updated_at` and leaves the selection alone.
    @Test func createOrUpdateWithoutDataKeepsTheStoredText() throws {
        let f = try StoreFixture()
        let text = #"{"z":1,"a":{"y":true,"b":null}}"#
        let created = try f.store.create(
            try NewPaymentSession(cartID: "c", providerID: "stripe", dataJSON: text.utf8, select: true))
        f.clock.advance()
        let (refreshed, wasCreated) = try f.store.createOrUpdate(cartID: "c", providerID: "stripe")
        #expect(!wasCreated)
        #expect(refreshed.updatedAt > created.updatedAt)
        let read = try #require(try f.store.session(id: created.id))
        #expect(try Self.storedDataText(read) == text)
        #expect(read.isSelected)
        #expect(try f.store.selectedSession(cartID: "c")?.id == created.id)
        #expect(try f.store.verify().isClean)
    }

    @Test func anyCollectionOfBytesIsAccepted() throws {
        let text = #"{"intent":"pi_123","amount":4200}"#
        let expected: [String: JSONValue] = ["intent": "pi_123", "amount": 4200]
        #expect(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: Array(text.utf8)).data == expected)
        #expect(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: Data(text.utf8)).data == expected)
        #expect(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: text.utf8).data == expected)
        // No contiguous storage: the bytes are gathered first.
        #expect(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: Array(text.utf8).lazy.map { $0 }).data == expected)
    }

    @Test(arguments: [
        ("", "expected a JSON object"), ("[1]", "expected a JSON object"), (#""s""#, "expected a JSON object"),
        (#"{"a":1,"a":2}"#, "duplicate object key"), (#"{"a":}"#, "unexpected character"),
        (#"{"a":1} x"#, "unexpected content"), (#"{"a":"\ud800"}"#, "surrogate"), (#"{"a":01}"#, "expected ',' or '}' in an object"),
        ("{\"a\":\"\u{1}\"}", "control character"), (#"{"a":1,}"#, "expected a string as object key"),
        ("{\"\u{E9}\":1,\"e\u{301}\":2}", "duplicate object key"),
    ])
    func invalidTextIsRefusedWhereItIsWrong(text: String, reason: String) throws {
        let error = storeError { _ = try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: text.utf8) }
        guard case .invalidInput("data", nil, let message)? = error else {
            Issue.record("expected invalidInput for data, got \(String(describing: error))")
            return
        }
        #expect(message.hasPrefix("invalid JSON at byte "))
        #expect(message.contains(reason), "\(message)")
    }

    @Test func invalidUTF8IsRefused() {
        let bytes: [UInt8] = [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]  // {"a":"\xC3("}
        let error = storeError { _ = try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: bytes) }
        guard case .invalidInput("data", nil, let message)? = error else {
            Issue.record("expected invalidInput for data, got \(String(describing: error))")
            return
        }
        #expect(message == "invalid JSON at byte 6: string is not valid UTF-8")
    }

    /// The depth rule for text is the dictionary's, case for case
    /// (``InputValidationTests/dataDepthLimitIsExact(value:accepted:)``).
    /// With a non-ASCII key too, the check ends in a full parse: the same rule holds.
    @Test(arguments: InputValidationTests.depthCases, [false, true])
    func theDepthLimitIsTheDictionarysRule(depthCase: (value: JSONValue, accepted: Bool), nonASCIIKey: Bool) throws {
        let (value, accepted) = depthCase
        let f = try StoreFixture()
        let object: [String: JSONValue] = nonASCIIKey ? ["deep": value, "flat": 1, "\u{E9}": 2] : ["deep": value, "flat": 1]
        let text = JSONValue.object(object).jsonText
        if accepted {
            let session = try f.store.create(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: text.utf8))
            #expect(try f.store.session(id: session.id)?.data == object)
        } else {
            let error = storeError { _ = try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: text.utf8) }
            guard case .invalidInput("data", nil, let reason)? = error else {
                Issue.record("expected invalidInput for data, got \(String(describing: error))")
                return
            }
            #expect(reason.hasSuffix("nested deeper than \(SessionValidation.maxDataDepth) levels"))
        }
    }

    @Test func textOverTheStoresSizeLimitIsRefusedAndNothingIsWritten() throws {
        let f = try StoreFixture { $0.maxDataBytes = 100 }
        func text(_ length: Int) -> String { #"{"k":""# + String(repeating: "z", count: length) + #""}"# }
        // 100 bytes once compacted: the bound applies to what is stored.
        _ = try f.store.create(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: (" " + text(92) + "\n").utf8))
        let tooLong = try NewPaymentSession(cartID: "c", providerID: "q", dataJSON: text(93).utf8)
        let error = storeError { try f.store.create(tooLong) }
        #expect(error == .invalidInput(field: "data", value: nil, reason: "is 101 bytes of JSON; at most 100"))
        #expect(try f.store.count() == 1)
    }

    @Test func theAsyncAPIAcceptsTextToo() async throws {
        let f = try StoreFixture()
        let session = try await f.store.create(try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: Self.richText))
        #expect(try await f.store.session(id: session.id)?.data == StoredDataTests.richData)
    }

    @Test func settingDataReplacesTheText() throws {
        var input = try NewPaymentSession(cartID: "c", providerID: "p", dataJSON: #"{"a":1}"#.utf8)
        input.data["b"] = 2
        #expect(input.data == ["a": 1, "b": 2])
        #expect(input == NewPaymentSession(cartID: "c", providerID: "p", data: ["a": 1, "b": 2]))
    }

    /// Mutated texts, compact and spaced: the text is accepted exactly when the full parser
    /// reads an object from it that a dictionary could carry (the depth rule), and then
    /// stands for that object; a sample is created and read back.
    @Test func textIsAcceptedExactlyWhenItsObjectWouldBe() throws {
        let f = try StoreFixture()
        let spaced = Array(String(decoding: Self.richText, as: UTF8.self).replacingOccurrences(of: ",\"", with: " ,\n \"").utf8)
        var rng = SplitMix(seed: 0xDA7A)
        var accepted = 0
        for round in 0..<max(1, Mutation.inputs / 10) {
            let text = Mutation.mutate(round % 2 == 0 ? Self.richText : spaced, &rng)
            var expected: [String: JSONValue]?
            if case .object(let members)? = try? JSONParser.parse(text),
                (try? SessionValidation.encodeData(members, maxBytes: .max)) != nil
            {
                expected = members
            }
            switch Result(catching: { () throws(PaymentSessionError) in
                try NewPaymentSession(cartID: "c", providerID: "p\(round)", dataJSON: text)
            }) {
            case .success(let input):
                accepted += 1
                #expect(expected != nil, "accepted text the parser refuses: \(String(decoding: text, as: UTF8.self))")
                #expect(input.data == expected)
                if accepted % 10 == 1 {
                    let session = try f.store.create(input)
                    let read = try #require(try f.store.session(id: session.id))
                    #expect(read.data == expected)
                    #expect(Self.isCompact(try Self.storedDataText(read)))
                }
            case .failure(.invalidInput("data", nil, _)):
                #expect(expected == nil, "refused text the parser accepts: \(String(decoding: text, as: UTF8.self))")
            case .failure(let other):
                Issue.record("unexpected \(other)")
            }
        }
        #expect(accepted > 0)
        #expect(try f.store.verify().isClean)
    }
}
