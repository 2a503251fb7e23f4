import LMDB
import PaymentSessionsCore

/// A cart's sessions, read from the `cart_provider` index and the records it points to.
///
/// Why a path of its own: it is what a checkout reads most (every cart view), and built
/// from the general reads it paid for a cursor object, a `String` and an array slot per id
/// before any record was read. Here the index walk hands each record to the decoder as it
/// passes (``LMDB/Environment/forEachIndexedValue(prefix:in:values:_:)``): the only
/// allocations are the sessions' own (a record copy and an id each) and the result.
enum CartSessions {
    /// An index walk: calls the body with each id under the prefix and its record.
    typealias Walk = (
        _ prefix: UnsafeRawBufferPointer,
        _ body: (_ id: UnsafeRawBufferPointer, _ record: UnsafeRawBufferPointer?) throws -> Void
    ) throws -> Void

    /// The sessions of `cartID` in creation (id) order, read by `walk`.
    ///
    /// - Throws: ``PaymentSessionError/invalidInput(field:value:reason:)`` for a malformed
    ///   cart id; ``PaymentSessionError/corruptRecord(key:reason:)`` for an index entry
    ///   that is not a session id or points to no record, or a record that fails to decode.
    static func read(cartID: String, walk: Walk) throws(PaymentSessionError) -> [PaymentSession] {
        try SessionValidation.validateIdentifier(cartID, field: "cart_id")
        var sessions: [PaymentSession] = []
        // A cart has one session per provider it tried: a few.
        sessions.reserveCapacity(4)
        try storageMapped {
            try StoreLayout.withCartProviderKey(cartID: cartID, providerID: "") { prefix in
                try walk(prefix) { idBytes, record in
                    let id = String(decoding: idBytes, as: UTF8.self)
                    guard PaymentSessionID.isValid(idBytes.assumingMemoryBound(to: UInt8.self)), let record else {
                        throw PaymentSessionError.corruptRecord(
                            key: cartID,
                            reason: "cart_provider index points to missing session \(PaymentSessionError.quoted(id))")
                    }
                    sessions.append(try RecordCodec.decode(id: id, record))
                }
            }
        }
        // The index orders a cart's entries by provider; ids order them by creation.
        if sessions.count > 1 { sessions.sort { $0.id < $1.id } }
        return sessions
    }
}
