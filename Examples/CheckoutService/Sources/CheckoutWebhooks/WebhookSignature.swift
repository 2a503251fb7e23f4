import Crypto
import Foundation

/// The signature on a webhook delivery: `Payment-Sessions-Signature: t=<unix seconds>,v1=<hex>`,
/// where the hex is HMAC-SHA256 with the shared secret over `"<t>.<raw body>"`.
///
/// The dispatcher signs each delivery with every secret it is given (one `v1=` each), so a
/// secret can be rotated: sign with the old and the new one while receivers move to the
/// new one, then drop the old. A receiver accepts a delivery when any `v1=` matches any of
/// its secrets and the time is within its tolerance, which stops a captured delivery from
/// being replayed later.
///
/// ```swift
/// // In a receiver, with the raw body bytes as they arrived (not re-encoded JSON):
/// try WebhookSignature.verify(
///     header: request.headers["Payment-Sessions-Signature"] ?? "",
///     body: rawBody, secrets: ["whsec_..."])
/// ```
///
/// A receiver in another language does the same in a few lines: see
/// `receivers/verify_signature.py` in the service's package (Python), which the tests run
/// against deliveries signed here.
public enum WebhookSignature {
    /// The header that carries the signature.
    public static let headerName = "Payment-Sessions-Signature"

    /// How far a delivery's time may be from the receiver's clock by default.
    public static let defaultTolerance: Duration = .seconds(300)

    /// The header value for `body` sent at `time`, signed with each of `secrets`.
    public static func header(body: some Sequence<UInt8>, secrets: [String], time: Date = Date()) -> String {
        let timestamp = Int64(time.timeIntervalSince1970.rounded(.down))
        let payload = signedPayload(timestamp: timestamp, body: body)
        let signatures = secrets.map { "v1=" + hex(HMAC<SHA256>.authenticationCode(for: payload, using: key($0))) }
        return (["t=\(timestamp)"] + signatures).joined(separator: ",")
    }

    /// Checks that `header` signs `body` with one of `secrets`, at a time within `tolerance`
    /// of `now`.
    ///
    /// - Throws: ``WebhookSignatureError`` naming what failed; the comparison of signatures
    ///   takes the same time whatever they hold.
    public static func verify(
        header: String, body: some Sequence<UInt8>, secrets: [String], tolerance: Duration = defaultTolerance,
        now: Date = Date()
    ) throws(WebhookSignatureError) {
        var timestamp: Int64?
        var signatures: [[UInt8]] = []
        for field in header.split(separator: ",") {
            let parts = field.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw .malformed(header: header) }
            switch parts[0] {
            case "t":
                guard timestamp == nil, let value = Int64(parts[1]) else { throw .malformed(header: header) }
                timestamp = value
            case "v1":
                guard let bytes = bytes(hex: parts[1]) else { throw .malformed(header: header) }
                signatures.append(bytes)
            default:
                continue  // a later scheme (v2=...) that this receiver does not know
            }
        }
        guard let timestamp, !signatures.isEmpty else { throw .malformed(header: header) }
        let age = now.timeIntervalSince1970 - Double(timestamp)
        let limit = Double(tolerance.components.seconds) + Double(tolerance.components.attoseconds) / 1e18
        guard abs(age) <= limit else { throw .outsideTolerance(timestamp: timestamp, tolerance: tolerance) }
        let payload = signedPayload(timestamp: timestamp, body: body)
        for secret in secrets {
            for signature in signatures
            where HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: payload, using: key(secret)) {
                return
            }
        }
        throw .noMatchingSignature
    }

    static func signedPayload(timestamp: Int64, body: some Sequence<UInt8>) -> [UInt8] {
        Array("\(timestamp).".utf8) + Array(body)
    }

    static func key(_ secret: String) -> SymmetricKey { SymmetricKey(data: Array(secret.utf8)) }

    static func hex(_ code: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for byte in code {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }

    static func bytes(hex: Substring) -> [UInt8]? {
        let characters = Array(hex.utf8)
        guard characters.count.isMultiple(of: 2), !characters.isEmpty else { return nil }
        func value(_ character: UInt8) -> UInt8? {
            switch character {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(characters.count / 2)
        var index = 0
        while index < characters.count {
            guard let high = value(characters[index]), let low = value(characters[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}

/// Why a webhook delivery's signature was refused.
public enum WebhookSignatureError: Error, Equatable, CustomStringConvertible {
    /// The header is not `t=<seconds>,v1=<hex>[,v1=<hex>...]`.
    case malformed(header: String)
    /// The delivery's time is further from the receiver's clock than the tolerance: a replay,
    /// or a clock that is off.
    case outsideTolerance(timestamp: Int64, tolerance: Duration)
    /// No signature matches any of the receiver's secrets: forged, altered, or signed with a
    /// secret the receiver does not have.
    case noMatchingSignature

    public var description: String {
        switch self {
        case .malformed(let header):
            "malformed \(WebhookSignature.headerName) header \(header.debugDescription): expected t=<unix seconds>,v1=<hex HMAC-SHA256>"
        case .outsideTolerance(let timestamp, let tolerance):
            "the delivery was signed at \(timestamp), more than \(tolerance) from now: a replay, or a clock that is off"
        case .noMatchingSignature:
            "no signature matches the receiver's secrets: the body was altered, forged, or signed with another secret"
        }
    }
}
