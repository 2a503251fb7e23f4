public import Foundation

/// The money fields of a session, beyond the seed schema (Medusa's entity carries them):
/// `amount`, `currency_code`, `is_initiated` and `payment_authorized_at`.
///
/// Kept as fixed-size integers, as the dates are: a session is copied on every read, and
/// a `String` or `Date` field would make every copy go through value witnesses. The
/// currency's three ASCII letters are packed into the low bytes of a `UInt32`. The 4-byte
/// and 1-byte fields come last, so that no padding sits between the fields.
@usableFromInline package struct SessionMoney: Sendable, Hashable {
    /// The amount in the currency's minor unit, or `-1` when not known yet.
    package var amount: Int64 = -1
    /// When the session was authorized, in microseconds since 1970; `Int64.min` when never.
    package var authorizedMicroseconds: Int64 = .min
    /// Three lowercase ASCII letters, first in the lowest byte; `0` when absent.
    package var currency: UInt32 = 0
    /// Whether the provider holds state for the session.
    package var isInitiated = false

    @usableFromInline package static let none = SessionMoney()
    /// A packed currency that ``isWellFormed(_:)`` refuses (a set top byte).
    package static let invalidCurrency: UInt32 = 0xFF00_0000

    package var amountValue: Int? { amount < 0 ? nil : Int(amount) }
    /// Whether the raw fields hold what a valid session may: an amount of 0 to 2^53 - 1
    /// (or none), a currency of three lowercase letters (or none).
    package var isWellFormed: Bool {
        (amount == -1 || (0...Int64(SessionValidation.maxAmount)).contains(amount))
            && (currency == 0 || Self.isWellFormed(currency))
    }
    package var currencyCode: String? { currency == 0 ? nil : Self.text(of: currency) }
    package var authorizedAt: Int64? { authorizedMicroseconds == .min ? nil : authorizedMicroseconds }

    /// Packs a currency code that ``SessionValidation/validateCurrencyCode(_:)`` accepted.
    package static func packed(_ code: String) -> UInt32 {
        var value: UInt32 = 0
        for (index, byte) in code.utf8.prefix(3).enumerated() { value |= UInt32(byte) << UInt32(8 * index) }
        return value
    }

    /// Whether `packed` holds three lowercase ASCII letters and nothing above them.
    package static func isWellFormed(_ packed: UInt32) -> Bool {
        func isLetter(_ byte: UInt32) -> Bool { byte &- 0x61 < 26 }
        return packed >> 24 == 0 && isLetter(packed & 0xFF) && isLetter(packed >> 8 & 0xFF) && isLetter(packed >> 16)
    }

    package static func text(of packed: UInt32) -> String {
        let bytes = (0..<3).map { UInt8(truncatingIfNeeded: packed >> UInt32(8 * $0)) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension PaymentSession {
    /// The amount to charge, in the currency's minor unit (cents for `usd`), or `nil`
    /// while it is not known. Once the session is authorized it is the authorized amount.
    public var amount: Int? {
        get { money.amountValue }
        // A negative amount is kept as an invalid value (not as "none"), so that the
        // store's validation refuses it.
        set { money.amount = newValue.map { $0 < 0 ? Int64.min : Int64($0) } ?? -1 }
    }

    /// The amount's currency: three lowercase letters (`usd`, `eur`), or `nil`.
    public var currencyCode: String? {
        get { money.currencyCode }
        // A code that is not three ASCII letters is kept as an invalid value, so that the
        // store's validation refuses it rather than storing part of it.
        set { money.currency = newValue.map { $0.utf8.count == 3 ? SessionMoney.packed($0) : SessionMoney.invalidCurrency } ?? 0 }
    }

    /// Whether the payment provider holds state for this session (Medusa asks the provider
    /// to delete a session only when it is initiated).
    public var isInitiated: Bool {
        get { money.isInitiated }
        set { money.isInitiated = newValue }
    }

    /// When the session was authorized, or `nil` if it never was. Canceling keeps it, so
    /// a voided hold is told from a session that was never authorized.
    public var paymentAuthorizedAt: Date? {
        get { money.authorizedAt.map { Timestamp.date(microseconds: $0) } }
        set { money.authorizedMicroseconds = newValue.map(Timestamp.microseconds) ?? .min }
    }

    /// An authorized session without an authorization record or an amount: authorized
    /// before the store recorded authorizations (a format 2 store). Such sessions keep their
    /// state, may be unselected, and `verify` lists them apart instead of reporting them.
    public var isLegacyAuthorized: Bool { status == .authorized && money.authorizedAt == nil && money.amountValue == nil }
}
