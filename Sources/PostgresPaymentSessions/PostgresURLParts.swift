#if PostgreSQL
import Foundation
import PaymentSessionsCore

/// The pieces of a libpq connection URI, percent-decoded, before defaults apply:
/// `scheme://[user[:password]@][host[:port][,host[:port]...]][/database][?name=value&...]`.
///
/// Written by hand rather than with `URLComponents`, which reads a `#` in a password as the
/// start of a fragment, refuses a comma-separated host list, and so cannot read what libpq
/// reads. Passwords are more forgiving than libpq's: the user part ends at the *last* `@`
/// before the path, so an unencoded `@`, `#`, `[` or `%` in a password still reads.
struct PostgresURLParts {
    var user: String?
    var password: String?
    /// Each host with its port text, if it had one.
    var hosts: [(String, String?)] = []
    var database: String?
    var parameters: [String: String] = [:]

    /// The query parameters libpq accepts that the store uses.
    static let knownParameters: Set<String> = [
        "user", "password", "host", "port", "dbname", "sslmode", "sslrootcert", "sslcert", "sslkey",
        "target_session_attrs", "connect_timeout", "application_name", "options",
    ]

    init(_ text: String) throws(PaymentSessionError) {
        guard let schemeEnd = text.range(of: "://"), ["postgres", "postgresql"].contains(text[..<schemeEnd.lowerBound])
        else {
            throw .invalidInput(field: "store", value: Self.redacted(text), reason: "is not a postgres:// URL")
        }
        var rest = Substring(text[schemeEnd.upperBound...])
        var query: Substring?
        // The authority ends at the first `/` after the user part; the user part ends at the
        // last `@` before that `/` (a password may hold `?` or `@`, not `/`).
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        if let at = rest[..<slash].lastIndex(of: "@") {
            let userInfo = rest[..<at]
            if let colon = userInfo.firstIndex(of: ":") {
                user = try Self.decoded(userInfo[..<colon], field: "user", whole: text)
                password = try Self.decoded(userInfo[userInfo.index(after: colon)...], field: "password", whole: text)
            } else {
                user = try Self.decoded(userInfo, field: "user", whole: text)
            }
            rest = rest[rest.index(after: at)...]
        }
        if let question = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: question)...]
            rest = rest[..<question]
        }
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        if authorityEnd < rest.endIndex {
            let path = rest[rest.index(after: authorityEnd)...]
            if !path.isEmpty { database = try Self.decoded(path, field: "database", whole: text) }
        }
        if user?.isEmpty == true { user = nil }
        if !authority.isEmpty {
            hosts = try authority.split(separator: ",", omittingEmptySubsequences: false).map { spec throws(PaymentSessionError) in
                try Self.host(spec, whole: text)
            }
        }
        for pair in (query ?? "").split(separator: "&") {
            let name: String
            let value: String
            if let equals = pair.firstIndex(of: "=") {
                name = try Self.decoded(pair[..<equals], field: "parameter", whole: text)
                value = try Self.decoded(pair[pair.index(after: equals)...], field: name, whole: text)
            } else {
                name = try Self.decoded(pair, field: "parameter", whole: text)
                value = ""
            }
            guard Self.knownParameters.contains(name) else {
                throw .invalidInput(
                    field: "store", value: Self.redacted(text),
                    reason: "has the parameter \(name), which is not one of \(Self.knownParameters.sorted().joined(separator: ", "))")
            }
            parameters[name] = value
        }
    }

    /// `host`, `host:port`, `[v6]` or `[v6]:port`.
    private static func host(_ spec: Substring, whole: String) throws(PaymentSessionError) -> (String, String?) {
        if spec.hasPrefix("[") {
            guard let close = spec.firstIndex(of: "]") else {
                throw .invalidInput(field: "store", value: redacted(whole), reason: "has an IPv6 address without its closing ]")
            }
            let name = String(spec[spec.index(after: spec.startIndex)..<close])
            let after = spec[spec.index(after: close)...]
            if after.isEmpty { return (name, nil) }
            guard after.hasPrefix(":") else {
                throw .invalidInput(field: "store", value: redacted(whole), reason: "has \(after) after an IPv6 address")
            }
            return (name, String(after.dropFirst()))
        }
        if let colon = spec.lastIndex(of: ":") {
            let name = try decoded(spec[..<colon], field: "host", whole: whole)
            return (name, String(spec[spec.index(after: colon)...]))
        }
        return (try decoded(spec, field: "host", whole: whole), nil)
    }

    /// `text` percent-decoded; a `%` not followed by two hex digits stays as it is (a
    /// password typed unencoded), but the bytes must make UTF-8.
    private static func decoded(_ text: Substring, field: String, whole: String) throws(PaymentSessionError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        let utf8 = Array(text.utf8)
        var index = 0
        while index < utf8.count {
            if utf8[index] == UInt8(ascii: "%"), index + 2 < utf8.count,
                let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2])
            {
                bytes.append(high << 4 | low)
                index += 3
            } else {
                bytes.append(utf8[index])
                index += 1
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw .invalidInput(
                field: "store", value: redacted(whole), reason: "has a \(field) whose percent-encoding is not UTF-8")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// `text` with its password masked: after `scheme://user:`, everything up to the last
    /// `@` (when there is one) becomes `***`, and so does the value of a `password=`
    /// parameter. Whatever the text, a secret in it is masked, even if the rest is mangled.
    static func redacted(_ text: String) -> String {
        var result = text
        if let schemeEnd = result.range(of: "://") {
            let afterScheme = result[schemeEnd.upperBound...]
            if let at = afterScheme.lastIndex(of: "@"), let colon = afterScheme[..<at].firstIndex(of: ":") {
                result.replaceSubrange(result.index(after: colon)..<at, with: "***")
            }
        } else if let at = result.lastIndex(of: "@"), let colon = result[..<at].firstIndex(of: ":") {
            // Not even a scheme: mask from the first `:` to the last `@` all the same.
            result.replaceSubrange(result.index(after: colon)..<at, with: "***")
        }
        var searchStart = result.startIndex
        while let found = result.range(of: "password=", options: .caseInsensitive, range: searchStart..<result.endIndex) {
            let end = result[found.upperBound...].firstIndex(of: "&") ?? result.endIndex
            result.replaceSubrange(found.upperBound..<end, with: "***")
            searchStart = result.index(found.upperBound, offsetBy: 3)
        }
        return result
    }
}
#endif
