/// Why a JSON text was refused.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The byte offset where the problem was found.
    public var offset: Int
    /// What is wrong there.
    public var reason: String

    /// `"invalid JSON at byte 12: expected ':' after an object key"`.
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

/// A strict RFC 8259 parser with limits, for untrusted input.
///
/// It refuses invalid UTF-8, lone surrogate escapes, control characters in strings,
/// duplicate object keys, trailing content, nesting deeper than ``Limits/maxDepth``
/// and texts longer than ``Limits/maxBytes``, each with a ``JSONParseError``.
package struct JSONParser {
    /// Bounds that keep hostile input from exhausting the stack or memory.
    package struct Limits: Sendable, Hashable {
        /// Deepest nesting of arrays and objects.
        package var maxDepth = 64
        /// Longest text in bytes.
        package var maxBytes = 1 << 20

        /// The defaults: depth 64, 1 MiB.
        package init() {}

        /// For `data` the store has written: its size was bounded by the store's
        /// `maxDataBytes` (which may exceed 1 MiB) when it was written.
        package static let storedData: Limits = {
            var limits = Limits()
            limits.maxBytes = Int.max
            return limits
        }()
    }

    private let bytes: UnsafeBufferPointer<UInt8>
    private let limits: Limits
    private var index = 0
    private var depth = 0
    /// Validation only: the raw byte ranges of the keys of the objects being walked
    /// (a stack: each object pops its own at its end), for finding duplicate keys.
    private var keyRanges = UnsafeMutableBufferPointer<Range<Int>>(start: nil, count: 0)
    private var keyCount = 0
    /// Validation only: set when a key could not be compared byte for byte (escaped or
    /// non-ASCII, where Swift's string equality is canonical equivalence, or too many
    /// keys): the text is then parsed in full to decide.
    private var needsFullParse = false
    /// Validation only: the deepest a value may sit, the object's members being at depth 1
    /// (``JSONWriter``'s rule for `data`); a container whose members would sit deeper is
    /// refused, an empty one at that depth is not.
    private var maxValueDepth = Int.max
    /// Whether whitespace was met between tokens (then the text is not compact).
    private var sawWhitespace = false

    private init(bytes: UnsafeBufferPointer<UInt8>, limits: Limits) {
        self.bytes = bytes
        self.limits = limits
    }

    /// Parses exactly one JSON value from `bytes` (surrounding whitespace allowed).
    package static func parse(_ bytes: [UInt8], limits: Limits = Limits()) throws(JSONParseError) -> JSONValue {
        let result: Result<JSONValue, JSONParseError> = bytes.withUnsafeBufferPointer { buffer in
            Result { () throws(JSONParseError) in try parse(buffer, limits: limits) }
        }
        return try result.get()
    }

    /// Parses exactly one JSON value from `buffer` (surrounding whitespace allowed).
    package static func parse(_ buffer: UnsafeBufferPointer<UInt8>, limits: Limits = Limits()) throws(JSONParseError)
        -> JSONValue
    {
        if buffer.count > limits.maxBytes {
            throw JSONParseError(offset: limits.maxBytes, reason: "text is \(buffer.count) bytes, more than \(limits.maxBytes)")
        }
        var parser = JSONParser(bytes: buffer, limits: limits)
        parser.skipWhitespace()
        let value = try parser.parseValue()
        parser.skipWhitespace()
        if parser.index != buffer.count {
            throw parser.error("unexpected content after the JSON value")
        }
        return value
    }

    /// Checks that `buffer` holds exactly one JSON object that ``parse(_:limits:)-swift.type.method``
    /// would accept, without building it: a single pass that allocates nothing.
    ///
    /// Used on stored records, whose `data` is parsed only when a caller reads it. Keys
    /// that are plain ASCII are checked for duplicates byte for byte; an object with an
    /// escaped or non-ASCII key, or with more keys than the scratch space holds, is
    /// checked by a full parse instead (rare in payment provider data).
    package static func validateObject(_ buffer: UnsafeBufferPointer<UInt8>, limits: Limits = Limits()) throws(JSONParseError) {
        _ = try validateObject(buffer, limits: limits, maxValueDepth: Int.max)
    }

    /// Checks a caller's `data` text as ``validateObject(_:limits:)`` checks a record's,
    /// with no value deeper than `maxValueDepth` (the object's members at depth 1, the
    /// rule ``JSONWriter`` applies to a dictionary). Returns whether the text is compact:
    /// no whitespace between tokens.
    package static func validateDataObject(_ buffer: UnsafeBufferPointer<UInt8>, maxValueDepth: Int) throws(JSONParseError)
        -> Bool
    {
        var limits = Limits()
        limits.maxBytes = Int.max  // the store applies its own bound, `maxDataBytes`
        // A container at depth `maxValueDepth + 1` is a value at `maxValueDepth`: allowed
        // when empty. Its members are refused before anything deeper is entered.
        limits.maxDepth = maxValueDepth + 1
        return try !validateObject(buffer, limits: limits, maxValueDepth: maxValueDepth)
    }

    /// The single pass behind both checks; returns whether whitespace was met.
    private static func validateObject(
        _ buffer: UnsafeBufferPointer<UInt8>, limits: Limits, maxValueDepth: Int
    ) throws(JSONParseError) -> Bool {
        if buffer.count > limits.maxBytes {
            throw JSONParseError(offset: limits.maxBytes, reason: "text is \(buffer.count) bytes, more than \(limits.maxBytes)")
        }
        let outcome = withUnsafeTemporaryAllocation(of: Range<Int>.self, capacity: 64) { scratch in
            Result { () throws(JSONParseError) -> (needsFullParse: Bool, sawWhitespace: Bool) in
                var parser = JSONParser(bytes: buffer, limits: limits)
                parser.keyRanges = scratch
                parser.maxValueDepth = maxValueDepth
                parser.skipWhitespace()
                guard parser.current == UInt8(ascii: "{") else { throw parser.error("expected a JSON object") }
                try parser.skipValue()
                parser.skipWhitespace()
                if parser.index != buffer.count {
                    throw parser.error("unexpected content after the JSON value")
                }
                return (parser.needsFullParse, parser.sawWhitespace)
            }
        }
        let found = try outcome.get()
        if found.needsFullParse {
            // Only duplicate keys are left to decide: the depth rule was checked in full.
            _ = try parse(buffer, limits: limits)
        }
        return found.sawWhitespace
    }

    private func error(_ reason: String) -> JSONParseError {
        JSONParseError(offset: index, reason: reason)
    }

    @inline(__always)
    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    @inline(__always)
    private mutating func skipWhitespace() {
        // Compact text has none: one comparison (whitespace is at most 0x20, every byte
        // that may start or follow a token is above it) before the loop.
        guard index < bytes.count, bytes[index] <= 0x20 else { return }
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D:
                index += 1
                sawWhitespace = true
            default: return
            }
        }
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard let byte = current else { throw error("unexpected end of input, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject()
        case UInt8(ascii: "["): return try parseArray()
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let length = JSONParser.numberLength(bytes, from: index)
            guard length > 0 else { throw error("invalid number") }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[index..<index + length]), as: UTF8.self)
            index += length
            return .number(JSONNumber(validatedText: text))
        default:
            throw error("unexpected character '\(Unicode.Scalar(byte).escaped(asASCII: true))'")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("invalid literal") }
        let expected = UnsafeBufferPointer(start: literal.utf8Start, count: count)
        for offset in 0..<count where bytes[index + offset] != expected[offset] {
            throw error("invalid literal")
        }
        index += count
    }

    private mutating func enter() throws(JSONParseError) {
        depth += 1
        if depth > limits.maxDepth { throw error("nesting deeper than \(limits.maxDepth)") }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try enter()
        index += 1
        var members: [String: JSONValue] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a string as object key") }
            let keyOffset = index
            let key = try parseString()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':' after an object key") }
            index += 1
            skipWhitespace()
            let value = try parseValue()
            if members.updateValue(value, forKey: key) != nil {
                throw JSONParseError(offset: keyOffset, reason: "duplicate object key \"\(key)\"")
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"):
                index += 1
                depth -= 1
                return .object(members)
            default: throw error("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try enter()
        index += 1
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue())
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"):
                index += 1
                depth -= 1
                return .array(elements)
            default: throw error("expected ',' or ']' in an array")
            }
        }
    }

    /// Parses a string starting at its opening quote, validating UTF-8 and escapes.
    private mutating func parseString() throws(JSONParseError) -> String {
        index += 1
        let start = index
        // Fast path: no escapes; validate UTF-8 and control characters in one pass.
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<index])
                index += 1
                guard let text = UTF8Validation.string(slice) else {
                    throw JSONParseError(offset: start, reason: "string is not valid UTF-8")
                }
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw error("control character in a string") }
            index += 1
        }
        var scalars = Array(UnsafeBufferPointer(rebasing: bytes[start..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = scalars.withUnsafeBufferPointer({ UTF8Validation.string($0) }) else {
                    throw JSONParseError(offset: start, reason: "string is not valid UTF-8")
                }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard let escape = current else { break }
                index += 1
                switch escape {
                case UInt8(ascii: "\""): scalars.append(0x22)
                case UInt8(ascii: "\\"): scalars.append(0x5C)
                case UInt8(ascii: "/"): scalars.append(0x2F)
                case UInt8(ascii: "b"): scalars.append(0x08)
                case UInt8(ascii: "f"): scalars.append(0x0C)
                case UInt8(ascii: "n"): scalars.append(0x0A)
                case UInt8(ascii: "r"): scalars.append(0x0D)
                case UInt8(ascii: "t"): scalars.append(0x09)
                case UInt8(ascii: "u"):
                    let scalar = try parseUnicodeEscape()
                    scalars.append(contentsOf: Array(String(Character(scalar)).utf8))
                default:
                    index -= 1
                    throw error("invalid escape '\\\(Unicode.Scalar(escape).escaped(asASCII: true))'")
                }
            default:
                if byte < 0x20 { throw error("control character in a string") }
                scalars.append(byte)
                index += 1
            }
        }
        throw error("unterminated string")
    }

    // MARK: Validation without building

    private mutating func skipValue() throws(JSONParseError) {
        guard let byte = current else { throw error("unexpected end of input, expected a value") }
        switch byte {
        case UInt8(ascii: "{"): try skipContainer(close: UInt8(ascii: "}"), isObject: true)
        case UInt8(ascii: "["): try skipContainer(close: UInt8(ascii: "]"), isObject: false)
        case UInt8(ascii: "\""): try skipString()
        case UInt8(ascii: "t"): try expectLiteral("true")
        case UInt8(ascii: "f"): try expectLiteral("false")
        case UInt8(ascii: "n"): try expectLiteral("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let length = JSONParser.numberLength(bytes, from: index)
            guard length > 0 else { throw error("invalid number") }
            index += length
        default:
            throw error("unexpected character '\(Unicode.Scalar(byte).escaped(asASCII: true))'")
        }
    }

    private mutating func skipContainer(close: UInt8, isObject: Bool) throws(JSONParseError) {
        try enter()
        index += 1
        skipWhitespace()
        if current == close {
            index += 1
            depth -= 1
            return
        }
        if depth > maxValueDepth { throw error("nested deeper than \(maxValueDepth) levels") }
        let firstKey = keyCount
        defer { keyCount = firstKey }
        // Keys written by JSONWriter come sorted: each one then only needs comparing with
        // the one before it. The first key out of order (text a caller gave keeps its own
        // order) falls back to comparing with all.
        var keysAscending = true
        while true {
            skipWhitespace()
            if isObject {
                guard current == UInt8(ascii: "\"") else { throw error("expected a string as object key") }
                let keyOffset = index
                let plain = try skipString()
                if plain && !needsFullParse {
                    try noteKey((keyOffset + 1)..<(index - 1), since: firstKey, ascending: &keysAscending)
                } else {
                    needsFullParse = true
                }
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw error("expected ':' after an object key") }
                index += 1
                skipWhitespace()
            }
            if current == UInt8(ascii: "\"") {
                try skipString()  // the commonest value, without the dispatch
            } else {
                try skipValue()
            }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case close?:
                index += 1
                depth -= 1
                return
            default: throw error(isObject ? "expected ',' or '}' in an object" : "expected ',' or ']' in an array")
            }
        }
    }

    /// Refuses a key equal (byte for byte) to one of the current object's earlier keys.
    ///
    /// While the keys are in strictly ascending byte order (`ascending`), a key greater
    /// than the previous one differs from all earlier ones, so no search is needed.
    @inline(__always)
    private mutating func noteKey(_ key: Range<Int>, since firstKey: Int, ascending: inout Bool) throws(JSONParseError) {
        if ascending && keyCount > firstKey {
            ascending = compareBytes(keyRanges[keyCount - 1], key) < 0
        }
        if !ascending {
            try refuseDuplicate(key, since: firstKey)
        }
        guard keyCount < keyRanges.count else {
            needsFullParse = true
            return
        }
        keyRanges[keyCount] = key
        keyCount += 1
    }

    /// Byte-wise lexicographic order of two ranges of `bytes`: negative, zero or positive.
    @inline(__always)
    private func compareBytes(_ lhs: Range<Int>, _ rhs: Range<Int>) -> Int {
        let shared = min(lhs.count, rhs.count)
        for offset in 0..<shared {
            let left = bytes[lhs.lowerBound + offset]
            let right = bytes[rhs.lowerBound + offset]
            if left != right { return left < right ? -1 : 1 }
        }
        return lhs.count - rhs.count
    }

    /// Throws when `key` equals one of the current object's earlier keys.
    private func refuseDuplicate(_ key: Range<Int>, since firstKey: Int) throws(JSONParseError) {
        for earlier in firstKey..<keyCount {
            let other = keyRanges[earlier]
            guard other.count == key.count else { continue }
            var same = true
            for offset in 0..<key.count where bytes[other.lowerBound + offset] != bytes[key.lowerBound + offset] {
                same = false
                break
            }
            if same {
                let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[key]), as: UTF8.self)
                throw JSONParseError(offset: key.lowerBound - 1, reason: "duplicate object key \"\(text)\"")
            }
        }
    }

    /// Checks a string starting at its opening quote: UTF-8 sequence by sequence (escapes
    /// are ASCII and decode to valid scalars), in one pass over a local index.
    /// Returns whether the string is plain: ASCII without escapes.
    @discardableResult
    private mutating func skipString() throws(JSONParseError) -> Bool {
        var plain = true
        var position = index + 1
        let end = bytes.count
        while position < end {
            position = ByteScan.firstStringSpecial(bytes, from: position)
            guard position < end else { break }
            let byte = bytes[position]
            // The closing quote first: the scan stops at it in most strings.
            if byte == UInt8(ascii: "\"") {
                index = position + 1
                return plain
            }
            if byte >= 0x20 && byte < 0x80 && byte != UInt8(ascii: "\\") {
                position += 1
                continue
            }
            plain = false
            switch byte {
            case UInt8(ascii: "\\"):
                index = position + 1
                guard let escape = current else { throw error("unterminated string") }
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                    UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    _ = try parseUnicodeEscape()
                default:
                    index -= 1
                    throw error("invalid escape '\\\(Unicode.Scalar(escape).escaped(asASCII: true))'")
                }
                position = index
            case 0x80...:
                let length = UTF8Validation.sequenceLength(bytes, at: position)
                guard length > 0 else {
                    index = position
                    throw error("string is not valid UTF-8")
                }
                position += length
            default:
                index = position
                throw error("control character in a string")
            }
        }
        index = position
        throw error("unterminated string")
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    private mutating func parseUnicodeEscape() throws(JSONParseError) -> Unicode.Scalar {
        let first = try parseHex4()
        if (0xD800...0xDBFF).contains(first) {
            guard index + 2 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
            else { throw error("lone high surrogate in \\u escape") }
            index += 2
            let second = try parseHex4()
            guard (0xDC00...0xDFFF).contains(second) else { throw error("invalid low surrogate in \\u escape") }
            let combined = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            guard let scalar = Unicode.Scalar(combined) else { throw error("invalid \\u escape") }
            return scalar
        }
        guard let scalar = Unicode.Scalar(first) else { throw error("lone low surrogate in \\u escape") }
        return scalar
    }

    /// The length of the JSON number starting at `start`, or 0 when there is none.
    package static func numberLength(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        var i = start
        let end = bytes.count
        @inline(__always) func digit(at index: Int) -> Bool {
            index < end && bytes[index] >= UInt8(ascii: "0") && bytes[index] <= UInt8(ascii: "9")
        }
        if i < end && bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard digit(at: i) else { return 0 }
        if bytes[i] == UInt8(ascii: "0") {
            i += 1
        } else {
            while digit(at: i) { i += 1 }
        }
        if i < end && bytes[i] == UInt8(ascii: ".") {
            guard digit(at: i + 1) else { return 0 }
            i += 1
            while digit(at: i) { i += 1 }
        }
        if i < end && (bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E")) {
            var afterE = i + 1
            if afterE < end && (bytes[afterE] == UInt8(ascii: "+") || bytes[afterE] == UInt8(ascii: "-")) {
                afterE += 1
            }
            guard digit(at: afterE) else { return 0 }
            i = afterE
            while digit(at: i) { i += 1 }
        }
        return i - start
    }
}
