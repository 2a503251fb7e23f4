#if PostgreSQL
import Foundation
import PaymentSessionsCore
import PostgresNIO

/// The `payment_sessions` row: the one place that knows its columns and how a session
/// maps onto them.
enum PostgresSessionRow {
    /// The columns every session read selects, in the order ``session(from:)`` decodes.
    static let columns: String =
        "id, cart_id, provider_id, is_selected, status, data_text, idempotency_key, amount, currency_code, is_initiated, "
        + "payment_authorized_at, created_at, updated_at"

    /// Decodes a row selected with ``columns``.
    ///
    /// The stored `data` text is checked as the LMDB store checks a record without a
    /// checksum: a row edited by hand into something that is not a JSON object reads as
    /// ``PaymentSessionError/corruptRecord(key:reason:)``, never as a crash.
    static func session(from row: PostgresRow) throws(PaymentSessionError) -> PaymentSession {
        typealias Fields = (
            String, String, String, Bool, String, String, String?, Int64?, String?, Bool, PostgresTimestamp?,
            PostgresTimestamp, PostgresTimestamp
        )
        let fields: Fields
        do {
            fields = try row.decode(Fields.self)
        } catch {
            throw .corruptRecord(key: "payment_sessions", reason: "row does not decode: \(error)")
        }
        let (id, cartID, providerID, isSelected, statusText, dataText, key, amount, currency, isInitiated, authorizedAt,
            createdAt, updatedAt) = fields
        guard let status = PaymentSessionStatus(rawValue: statusText) else {
            throw .corruptRecord(key: id, reason: "unknown status \(statusText)")
        }
        var dataBytes = Array(dataText.utf8)
        do {
            dataBytes = try dataBytes.withUnsafeBufferPointer { buffer throws(PaymentSessionError) in
                try SessionValidation.checkDataJSON(buffer)
            }
        } catch {
            throw .corruptRecord(key: id, reason: "data is not a JSON object: \(error)")
        }
        var money = SessionMoney.none
        money.amount = amount ?? -1
        money.currency = currency.map(SessionMoney.packed) ?? 0
        money.isInitiated = isInitiated
        money.authorizedMicroseconds = authorizedAt?.microseconds ?? .min
        if amount.map({ $0 < 0 }) == true || !money.isWellFormed {
            throw .corruptRecord(key: id, reason: "malformed amount or currency")
        }
        return PaymentSession(
            id: id, cartID: cartID, providerID: providerID, isSelected: isSelected, status: status,
            dataStorage: .encoded(dataBytes[...]), idempotencyKey: key, createdMicroseconds: createdAt.microseconds,
            updatedMicroseconds: updatedAt.microseconds, money: money)
    }

    /// The `amount` column of `session`.
    static func amount(_ session: PaymentSession) -> Int64? { session.money.amount < 0 ? nil : session.money.amount }
    /// The `payment_authorized_at` column of `session`.
    static func authorizedAt(_ session: PaymentSession) -> PostgresTimestamp? { session.money.authorizedAt.map(PostgresTimestamp.init) }
    /// The `created_at` column of `session`.
    static func createdAt(_ session: PaymentSession) -> PostgresTimestamp { PostgresTimestamp(session.createdMicroseconds) }
    /// The `updated_at` column of `session`.
    static func updatedAt(_ session: PaymentSession) -> PostgresTimestamp { PostgresTimestamp(session.updatedMicroseconds) }
    /// The `data_text` column of `session`, given its compact JSON when it just changed.
    static func dataText(_ session: PaymentSession, _ dataJSON: [UInt8]?) -> String {
        String(decoding: dataJSON ?? session.dataStorage.compactBytes, as: UTF8.self)
    }
}
#endif
