/// What a caller supplies to create a session; the store fills in the rest.
///
/// ```swift
/// let session = try store.create(NewPaymentSession(
///     cartID: "cart_01H...", providerID: "stripe",
///     data: ["intent": "pi_123"], idempotencyKey: "checkout-7f3a", select: true))
/// ```
public struct NewPaymentSession: Sendable, Hashable {
    /// The cart the session pays for (1-255 bytes, no U+0000).
    public var cartID: String
    /// The payment provider (1-255 bytes, no U+0000).
    public var providerID: String
    /// The initial status; `pending` unless importing a flow that is further along.
    public var status: PaymentSessionStatus
    /// The provider's state: a JSON object.
    public var data: [String: JSONValue]
    /// Makes the create safe to retry: a second create with the same key returns the
    /// first session (same cart and provider) or fails with
    /// ``PaymentSessionError/idempotencyConflict(key:existingID:existingCartID:existingProviderID:)``.
    public var idempotencyKey: String?
    /// Select the new session (deselecting the cart's previous one) in the same transaction.
    public var select: Bool
    /// An id to use instead of a generated one (imports, migrations): `ps_` + ULID.
    public var id: String?

    /// Describes a session to create.
    public init(
        cartID: String, providerID: String, status: PaymentSessionStatus = .pending, data: [String: JSONValue] = [:],
        idempotencyKey: String? = nil, select: Bool = false, id: String? = nil
    ) {
        self.cartID = cartID
        self.providerID = providerID
        self.status = status
        self.data = data
        self.idempotencyKey = idempotencyKey
        self.select = select
        self.id = id
    }
}
