import Foundation
import PaymentSessions
import StoreTestFixtures
import Testing
import TestScheduling

/// The facts of `docs/payment-session.schema.yaml` (a copy of Medusa's schema), read
/// from the file itself so that the test follows the schema, not our memory of it.
struct SchemaFacts {
    var required: [String] = []
    var types: [String: String] = [:]
    var formats: [String: String] = [:]
    var enums: [String: [String]] = [:]
    /// Properties that may be `null` (`nullable: true`).
    var nullable: Set<String> = []

    init() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/payment-session.schema.yaml")
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        var section = ""
        var property = ""
        var inEnum = false
        for raw in lines {
            let line = String(raw)
            let indent = line.prefix { $0 == " " }.count
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.hasPrefix("#") || text.isEmpty { continue }
            if indent == 0 { section = String(text.prefix { $0 != ":" }); continue }
            if section == "required", text.hasPrefix("- ") { required.append(String(text.dropFirst(2))); continue }
            guard section == "properties" else { continue }
            if indent == 2 { property = String(text.dropLast()); inEnum = false; continue }
            if indent == 4 {
                inEnum = text == "enum:"
                if text.hasPrefix("type: ") { types[property] = String(text.dropFirst(6)) }
                if text.hasPrefix("format: ") { formats[property] = String(text.dropFirst(8)) }
                if text == "nullable: true" { nullable.insert(property) }
                continue
            }
            if indent == 6, inEnum, text.hasPrefix("- ") { enums[property, default: []].append(String(text.dropFirst(2))) }
        }
    }
}

@Suite("JSON form against the schema", .ownThreads)
struct JSONFormTests {
    func check(_ json: [String: JSONValue], against schema: SchemaFacts) {
        for field in schema.required { #expect(json[field] != nil, "missing required \(field)") }
        for (field, value) in json {
            guard let type = schema.types[field] else {
                Issue.record("\(field) is not in the schema")
                continue
            }
            switch (type, value) {
            case ("string", .string), ("boolean", .bool), ("object", .object): break
            case ("integer", .number(let number)) where Int(number.text) != nil: break
            case (_, .null) where schema.nullable.contains(field): break
            default: Issue.record("\(field) should be \(type), is \(value.typeName)")
            }
            if let allowed = schema.enums[field], let text = value.stringValue {
                #expect(allowed.contains(text), "\(field) \(text) not in \(allowed)")
            }
            if schema.formats[field] == "date-time", let text = value.stringValue {
                // RFC 3339 date-time with a timezone.
                let pattern = #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"#
                #expect(text.range(of: pattern, options: .regularExpression) != nil, "\(field) \(text)")
                #expect(Timestamp.parseRFC3339(text) != nil)
            }
        }
    }

    @Test func schemaFactsAreRead() throws {
        let schema = try SchemaFacts()
        #expect(schema.required == ["cart_id", "provider_id", "status"])
        #expect(schema.enums["status"]?.sorted() == PaymentSessionStatus.allCases.map(\.rawValue).sorted())
        #expect(schema.types.count == 14)
        #expect(schema.nullable == ["amount", "currency_code", "payment_authorized_at"])
    }

    @Test(arguments: PaymentSessionStatus.allCases)
    func everyFieldMatchesTheSchema(status: PaymentSessionStatus) throws {
        let schema = try SchemaFacts()
        let f = try StoreFixture()
        let withKey = try f.store.create(
            NewPaymentSession(cartID: "cart_01G8ZH853Y6TFXWPG5EYE81X63", providerID: "manual", status: status,
                data: ["id": "ext_1", "n": 1.5], idempotencyKey: "key", select: status != .canceled))
        let withoutKey = try f.store.create(
            NewPaymentSession(cartID: "cart_2", providerID: "manual", status: status, select: status == .authorized,
                amount: 4200, currencyCode: "usd"))
        for session in [withKey, withoutKey] {
            let json = try #require(try JSONValue(parsing: session.jsonText()).objectValue)
            check(json, against: schema)
            #expect(json["status"] == .string(status.rawValue))
            #expect(json["cart"] == nil)
            #expect(json["idempotency_key"] == (session.idempotencyKey.map(JSONValue.string)))
            let expanded = try #require(try JSONValue(parsing: session.jsonText(expandingCart: ["id": "cart_2", "total": 100])).objectValue)
            check(expanded, against: schema)
            #expect(expanded["cart"] == ["id": "cart_2", "total": 100])
        }
        let text = withKey.jsonText()
        #expect(text.hasPrefix(#"{"id":"ps_"#))
        #expect(text.contains(#""idempotency_key":"key""#))
        #expect(!withoutKey.jsonText().contains("idempotency_key"))
    }

    @Test func jsonTextAndCodableAgreeAndRoundTrip() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["a": [1, 2]], idempotencyKey: "k"))
        #expect(try PaymentSession(jsonText: s.jsonText()) == s)
        let encoded = try JSONEncoder().encode(s)
        #expect(try JSONDecoder().decode(PaymentSession.self, from: encoded) == s)
        let viaCodable = try JSONValue(parsing: String(decoding: encoded, as: UTF8.self))
        #expect(viaCodable == (try JSONValue(parsing: s.jsonText())))
    }

    /// A session read from the store keeps its strings and `data` as the record's bytes
    /// until they are read; every field, the JSON form and changes must come out as for
    /// the session `create` returned (which holds values), escapes and non-ASCII included.
    @Test func aSessionReadBackAgreesWithTheOneCreatedFieldByField() throws {
        let f = try StoreFixture()
        let created = try f.store.create(
            NewPaymentSession(
                cartID: "cart_\"quoted\"\\é", providerID: "prov\u{1}ider", data: ["note": "tab\there ✓", "n": 1.5],
                idempotencyKey: "key \"ü\""))
        let read = try #require(try f.store.session(id: created.id))
        #expect(read == created)
        #expect(read.cartID == created.cartID && read.providerID == created.providerID)
        #expect(read.idempotencyKey == created.idempotencyKey && read.data == created.data)
        #expect(read.jsonText() == created.jsonText())
        #expect(read.jsonText(expandingCart: ["id": "x"]) == created.jsonText(expandingCart: ["id": "x"]))
        #expect(try PaymentSession(jsonText: read.jsonText()) == created)

        var changed = read
        changed.providerID = "other"
        #expect(changed.cartID == created.cartID && changed.idempotencyKey == created.idempotencyKey)
        #expect(changed.data == created.data && changed.providerID == "other")
        #expect(read.providerID == created.providerID)  // a value: the copy changed alone
        changed.idempotencyKey = nil
        changed.data = ["k": true]
        #expect(!changed.jsonText().contains("idempotency_key") && changed.jsonText().contains(#""data":{"k":true}"#))
        #expect(read.hashValue == created.hashValue)

        let withoutKey = try f.store.create(NewPaymentSession(cartID: "c2", providerID: "p"))
        let readWithoutKey = try #require(try f.store.session(id: withoutKey.id))
        #expect(readWithoutKey.idempotencyKey == nil && readWithoutKey.jsonText() == withoutKey.jsonText())
    }

    @Test func timestampsPrintAsRFC3339WithMicrosecondsAndParseWithOffsets() {
        #expect(Timestamp.rfc3339(microseconds: 0) == "1970-01-01T00:00:00.000000Z")
        #expect(Timestamp.rfc3339(microseconds: 1_780_000_000_123_456) == "2026-05-28T20:26:40.123456Z")
        #expect(Timestamp.rfc3339(microseconds: -1) == "1969-12-31T23:59:59.999999Z")
        #expect(Timestamp.parseRFC3339("2026-05-28T22:26:40.123456+02:00") == 1_780_000_000_123_456)
        #expect(Timestamp.parseRFC3339("2026-05-28T20:26:40.1234569Z") == 1_780_000_000_123_456)
        #expect(Timestamp.parseRFC3339("2024-02-29T00:00:00Z") != nil)
        for bad in ["2025-02-29T00:00:00Z", "2026-05-28T20:26:40", "2026-05-28 20:26:40Z", "2026-13-01T00:00:00Z",
            "2026-05-28T20:26:40.Z", "2026-05-28T24:00:00Z", "2026-05-28T20:26:40+0200"]
        {
            #expect(Timestamp.parseRFC3339(bad) == nil, "\(bad)")
        }
        for micros: Int64 in [0, 1, 999_999, 1_780_000_000_123_456, 4_102_444_799_999_999] {  // through 2099
            #expect(Timestamp.parseRFC3339(Timestamp.rfc3339(microseconds: micros)) == micros)
            #expect(Timestamp.microseconds(Timestamp.date(microseconds: micros)) == micros)
        }
    }
}
