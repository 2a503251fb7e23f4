import Foundation

/// A new session checked and encoded, ready to be written: everything `create` does
/// that needs no transaction.
///
/// Why separate: the async `create` prepares on the caller's task, so that the group
/// commit writer, which runs every caller's write one after another, only does the
/// puts. Encoding `data` and checking the fields was most of a create's CPU time. Every
/// backend creates through it, so a session is checked the same way everywhere.
package struct PreparedSession: Sendable {
    /// The session as it will be stored (id and timestamps assigned).
    package let session: PaymentSession
    /// `data` as the record's compact JSON.
    package let dataJSON: [UInt8]
    /// Whether to make it the cart's selection.
    package let select: Bool

    /// Checks `new` and encodes it; the id is `new.id` or a fresh one, the timestamps now.
    ///
    /// - Throws: ``PaymentSessionError/invalidInput(field:value:reason:)`` for bad fields
    ///   or a session asked to be created both `canceled` and selected.
    ///
    /// `new` is borrowed: an initializer takes its arguments owned by default, which cost
    /// `create` a copy of the whole input (a retain and a release per field) every call.
    package init(
        _ new: borrowing NewPaymentSession, maxDataBytes: Int, now: Int64, generator: PaymentSessionIDGenerator
    ) throws(PaymentSessionError) {
        try SessionValidation.validateIdentifier(new.cartID, field: "cart_id")
        try SessionValidation.validateIdentifier(new.providerID, field: "provider_id")
        if new.select && new.status == .canceled {
            throw .invalidInput(field: "select", value: "true", reason: "a canceled session cannot be selected")
        }
        if let key = new.idempotencyKey { try SessionValidation.validateIdempotencyKey(key) }
        if let id = new.id { try SessionValidation.validateID(id) }
        try SessionValidation.validateMoney(amount: new.amount, currencyCode: new.currencyCode)
        if new.status == .authorized {
            // Created authorized (a flow recorded elsewhere): the authorization rules hold
            // from the start. The cart's selection is checked in the transaction.
            guard new.select else {
                throw .invalidInput(
                    field: "select", value: "false", reason: "an authorized session must be created selected (the cart's payment)")
            }
        }
        switch new.dataStorage {
        case .object(let members):
            dataJSON = try SessionValidation.encodeData(members, maxBytes: maxDataBytes)
        case .encoded(let text):
            // Checked and compacted when the `NewPaymentSession` was made.
            try SessionValidation.checkDataSize(text.count, maxBytes: maxDataBytes)
            dataJSON = Array(text)
        }
        let id = new.id ?? generator.next(milliseconds: UInt64(max(0, now / 1000)))
        var money = SessionMoney.none
        money.amount = new.amount.map(Int64.init) ?? -1
        money.currency = new.currencyCode.map(SessionMoney.packed) ?? 0
        money.isInitiated = new.isInitiated
        if new.status == .authorized { money.authorizedMicroseconds = now }
        session = PaymentSession(
            id: id, cartID: new.cartID, providerID: new.providerID, isSelected: new.select, status: new.status,
            dataStorage: new.dataStorage, idempotencyKey: new.idempotencyKey, createdMicroseconds: now,
            updatedMicroseconds: now, money: money)
        select = new.select
    }
}
