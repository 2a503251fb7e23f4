import StrictJSON
import Testing
import TestSupport

/// The strict JSON reader and writer on their own: no session, no store.
@Suite("Strict JSON")
struct StrictJSONTests {
    /// A random value: scalars of every kind (numbers in several spellings, strings with
    /// escapes and non-ASCII), arrays and objects, at most `depth` containers deep.
    static func randomValue(_ rng: inout SplitMix, depth: Int) -> JSONValue {
        let strings = ["", "a", "é", "🚀", "quote \" and \\ slash", "line\nbreak", "tab\t", "\u{1}", "€uro", "k"]
        let numbers = ["0", "-0", "12345678901234567890123", "-0.5e+10", "1.10", "3E-7", "42"]
        switch Int.random(in: 0..<(depth > 0 ? 7 : 5), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return try! JSONValue(parsing: numbers.randomElement(using: &rng)!)
        case 3, 4: return .string(strings.randomElement(using: &rng)!)
        case 5: return .array((0..<Int.random(in: 0...3, using: &rng)).map { _ in randomValue(&rng, depth: depth - 1) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...3, using: &rng) {
                members[strings.randomElement(using: &rng)! + String(Int.random(in: 0...9, using: &rng))] =
                    randomValue(&rng, depth: depth - 1)
            }
            return .object(members)
        }
    }

    /// `text` with whitespace put next to some of its structural characters (never inside
    /// a string, a number or a literal).
    static func spaced(_ text: String, _ rng: inout SplitMix) -> [UInt8] {
        let structural = Set("{}[],:".utf8)
        var output: [UInt8] = []
        var inString = false
        var escaped = false
        var afterStructural = true
        for byte in text.utf8 {
            let nextToToken = afterStructural || structural.contains(byte) || byte == 0x22
            afterStructural = !inString && structural.contains(byte)
            if !inString && nextToToken && Int.random(in: 0..<3, using: &rng) == 0 {
                output += [[0x20], [0x0A], [0x09, 0x20], [0x0D, 0x0A]].randomElement(using: &rng)!
            }
            output.append(byte)
            if inString {
                if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
            } else if byte == 0x22 {
                inString = true
            }
        }
        return output
    }

    @Test func numbersAreKeptExactlyAndBadTextIsRefused() throws {
        let text = #"{"a":12345678901234567890123,"b":-0.5e+10,"c":1.10,"d":[true,false,null],"e":"\u00e9\ud83d\ude80\n"}"#
        let value = try JSONValue(parsing: text)
        #expect(value.jsonText == #"{"a":12345678901234567890123,"b":-0.5e+10,"c":1.10,"d":[true,false,null],"e":"é🚀\n"}"#)
        for bad in [
            "", "{", "{\"a\":1,}", "[1,]", "01", "1.", "-", "{\"a\" 1}", "\"\\ud800\"", "\"\\x\"", "{\"a\":1,\"a\":2}",
            "nul", "[1] 2", "\"\u{1}\"", String(repeating: "[", count: 100) + String(repeating: "]", count: 100),
        ] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSONValue(parsing: bad) }
        }
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func writtenTextParsesBackToTheSameValue() throws {
        var rng = SplitMix(seed: 1)
        for _ in 0..<500 {
            let value = Self.randomValue(&rng, depth: 4)
            let parsed = try JSONValue(parsing: value.jsonText)
            #expect(parsed == value, "\(value.jsonText)")
            #expect(parsed.jsonText == value.jsonText)
        }
    }

    @Test func compactionRemovesTheWhitespaceBetweenTokensAndNothingElse() throws {
        var rng = SplitMix(seed: 2)
        for _ in 0..<500 {
            let text = Self.randomValue(&rng, depth: 4).jsonText
            let spaced = Self.spaced(text, &rng)
            _ = try JSONParser.parse(spaced)
            let compact = spaced.withUnsafeBufferPointer { JSONCompaction.compacted($0) }
            #expect(String(decoding: compact, as: UTF8.self) == text)
        }
    }

    /// The validator that checks stored and given `data` without building it accepts
    /// exactly the objects the full parser accepts, on texts broken at random.
    @Test func validationAcceptsExactlyWhatTheParserAcceptsAsAnObject() throws {
        var rng = SplitMix(seed: 3)
        for round in 0..<2_000 {
            var bytes = Array(JSONValue.object(["k": Self.randomValue(&rng, depth: 3)]).jsonText.utf8)
            if round % 4 != 0 {
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let position = Int.random(in: 0..<bytes.count, using: &rng)
                    switch Int.random(in: 0..<3, using: &rng) {
                    case 0: bytes[position] = UInt8.random(in: 0...255, using: &rng)
                    case 1: bytes.remove(at: position)
                    default: bytes.insert(Array(#"{}[]",:"\ 0e-"#.utf8).randomElement(using: &rng)!, at: position)
                    }
                    if bytes.isEmpty { break }
                }
            }
            let parsed: JSONValue? = try? JSONParser.parse(bytes)
            let parsedAnObject = parsed?.objectValue != nil
            let validated = bytes.withUnsafeBufferPointer { buffer in
                (try? JSONParser.validateObject(buffer)) != nil
            }
            #expect(validated == parsedAnObject, "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    @Test func theDepthAndSizeLimitsAreExact() throws {
        var limits = JSONParser.Limits()
        limits.maxDepth = 3
        #expect(try JSONParser.parse(Array("[[[]]]".utf8), limits: limits) == .array([.array([.array([])])]))
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array("[[[[]]]]".utf8), limits: limits) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(#"{"a":{"b":{"c":{}}}}"#.utf8), limits: limits) }
        limits.maxBytes = 7
        #expect(try JSONParser.parse(Array(#""abcde""#.utf8), limits: limits) == .string("abcde"))
        #expect(throws: JSONParseError.self) { try JSONParser.parse(Array(#""abcdef""#.utf8), limits: limits) }
    }

    /// The word-at-a-time scans stop no later than the first byte a plain loop would stop
    /// at, and earlier only within the last eight bytes.
    @Test func byteScansAgreeWithAPlainLoop() {
        var rng = SplitMix(seed: 4)
        let scans: [(name: String, scan: (UnsafeBufferPointer<UInt8>, Int) -> Int, stops: (UInt8) -> Bool)] = [
            ("firstStringSpecial", ByteScan.firstStringSpecial, { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 || $0 >= 0x80 }),
            ("firstToEscape", ByteScan.firstToEscape, { $0 == 0x22 || $0 == 0x5C || $0 < 0x20 }),
            ("firstNonASCII", ByteScan.firstNonASCII, { $0 >= 0x80 }),
        ]
        for _ in 0..<2_000 {
            let count = Int.random(in: 0...40, using: &rng)
            // Mostly plain letters, with a special byte here and there.
            let bytes = (0..<count).map { _ in
                Int.random(in: 0..<10, using: &rng) == 0 ? UInt8.random(in: 0...255, using: &rng) : UInt8.random(in: 0x61...0x7A, using: &rng)
            }
            let start = Int.random(in: 0...count, using: &rng)
            bytes.withUnsafeBufferPointer { buffer in
                for (name, scan, stops) in scans {
                    let found = scan(buffer, start)
                    let plain = (start..<count).first { stops(bytes[$0]) } ?? count
                    #expect(found >= start && found <= plain, "\(name) of \(bytes) from \(start): \(found), plain loop \(plain)")
                    #expect(found == plain || count - found < 8, "\(name) of \(bytes) from \(start): \(found), plain loop \(plain)")
                }
            }
        }
    }
}
