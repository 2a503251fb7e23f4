import StrictJSON
/// What a caller supplies to create a session; the store fills in the rest.
///
/// ```swift
/// let session = try store.create(NewPaymentSession(
///     cartID: "cart_01H...", providerID: "stripe",
///     data: ["intent": "pi_123"], idempotencyKey: "checkout-7f3a", select: true))
/// ```
///
/// When `data` arrives as JSON text, such as a payment provider's response body, pass the
/// text instead of a dictionary: it is checked once and stored as it is (compacted),
/// without building a dictionary only for the store to encode it again.
///
/// ```swift
/// let body = #"{"id":"pi_123","client_secret":"pi_123_secret_456","amount":4200}"#
/// let session = try store.create(NewPaymentSession(
///     cartID: "cart_01H...", providerID: "stripe", dataJSON: body.utf8))
/// ```
public struct NewPaymentSession: Sendable {
    /// The cart the session pays for (1-255 bytes, no U+0000).
    public var cartID: String
    /// The payment provider (1-255 bytes, no U+0000).
    public var providerID: String
    /// The initial status; `pending` unless importing a flow that is further along.
    public var status: PaymentSessionStatus
    /// Makes the create safe to retry: a second create with the same key returns the
    /// first session (same cart and provider) or fails with
    /// ``PaymentSessionError/idempotencyConflict(key:existingID:existingCartID:existingProviderID:)``.
    public var idempotencyKey: String?
    /// Select the new session (deselecting the cart's previous one) in the same transaction.
    public var select: Bool
    /// An id to use instead of a generated one (imports, migrations): `ps_` + ULID.
    public var id: String?
    /// The amount to charge, in the currency's minor unit (0 to 2^53 - 1), or `nil` while
    /// the cart's total is not known; requires ``currencyCode``.
    public var amount: Int?
    /// Three lowercase letters (`usd`), or `nil`.
    public var currencyCode: String?
    /// Whether the provider already holds state for the session.
    public var isInitiated: Bool
    /// `data` as given: a dictionary, or checked compact JSON text.
    @usableFromInline package var dataStorage: SessionData

    /// The provider's state: a JSON object. Reading it parses text given to
    /// `init(cartID:providerID:status:dataJSON:idempotencyKey:select:id:)`.
    public var data: [String: JSONValue] {
        get { dataStorage.object }
        set { dataStorage = .object(newValue) }
    }

    /// Describes a session to create.
    public init(
        cartID: String, providerID: String, status: PaymentSessionStatus = .pending, data: [String: JSONValue] = [:],
        idempotencyKey: String? = nil, select: Bool = false, id: String? = nil, amount: Int? = nil,
        currencyCode: String? = nil, isInitiated: Bool = false
    ) {
        self.cartID = cartID
        self.providerID = providerID
        self.status = status
        self.dataStorage = .object(data)
        self.idempotencyKey = idempotencyKey
        self.select = select
        self.id = id
        self.amount = amount
        self.currencyCode = currencyCode
        self.isInitiated = isInitiated
    }

    /// Describes a session whose `data` is JSON text: UTF-8 bytes of one JSON object
    /// (`[UInt8]`, `Data`, `String.UTF8View`, ...).
    ///
    /// The text is checked here as strictly as a stored record is (RFC 8259, valid UTF-8,
    /// no duplicate keys, nesting no deeper than ``SessionValidation/maxDataDepth``) and
    /// kept compact, with the object's key order as given. Its size is checked against the
    /// store's `PaymentSessionStore/Options/maxDataBytes` when it is created.
    ///
    /// - Throws: ``PaymentSessionError/invalidInput(field:value:reason:)`` for field
    ///   `data`, with the byte offset of the problem in the reason.
    @inlinable
    public init(
        cartID: String, providerID: String, status: PaymentSessionStatus = .pending, dataJSON: some Collection<UInt8>,
        idempotencyKey: String? = nil, select: Bool = false, id: String? = nil, amount: Int? = nil,
        currencyCode: String? = nil, isInitiated: Bool = false
    ) throws(PaymentSessionError) {
        let checked = try (dataJSON.withContiguousStorageIfAvailable(Self.checkDataJSON)
            ?? Array(dataJSON).withUnsafeBufferPointer(Self.checkDataJSON)).get()
        self.cartID = cartID
        self.providerID = providerID
        self.status = status
        self.dataStorage = .encoded(checked[...])
        self.idempotencyKey = idempotencyKey
        self.select = select
        self.id = id
        self.amount = amount
        self.currencyCode = currencyCode
        self.isInitiated = isInitiated
    }

    /// The non-generic part of the `dataJSON` initializer: the check and the copy.
    @usableFromInline
    package static func checkDataJSON(_ text: UnsafeBufferPointer<UInt8>) -> Result<[UInt8], PaymentSessionError> {
        Result { () throws(PaymentSessionError) in try SessionValidation.checkDataJSON(text) }
    }
}

extension NewPaymentSession: Hashable {
    /// Field by field; `data` compares as JSON objects, whether given as text or not.
    public static func == (lhs: NewPaymentSession, rhs: NewPaymentSession) -> Bool {
        lhs.cartID == rhs.cartID && lhs.providerID == rhs.providerID && lhs.status == rhs.status
            && lhs.idempotencyKey == rhs.idempotencyKey && lhs.select == rhs.select && lhs.id == rhs.id
            && lhs.amount == rhs.amount && lhs.currencyCode == rhs.currencyCode && lhs.isInitiated == rhs.isInitiated
            && SessionData.sameObject(lhs.dataStorage, rhs.dataStorage)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(cartID)
        hasher.combine(providerID)
        hasher.combine(status)
        hasher.combine(data)
        hasher.combine(idempotencyKey)
        hasher.combine(select)
        hasher.combine(id)
        hasher.combine(amount)
        hasher.combine(currencyCode)
        hasher.combine(isInitiated)
    }
}
