import Foundation

/// What ``PaymentSessionStoring/checkRules()`` found: every session read through
/// the store's API and held against the rules a store must keep.
public struct RuleCheckReport: Sendable, Hashable {
    /// One broken rule.
    public struct Problem: Sendable, Hashable, CustomStringConvertible {
        /// The session (or the first of several) the problem is about.
        public var sessionID: String
        /// Its cart.
        public var cartID: String
        /// What is wrong.
        public var message: String

        public var description: String { "\(cartID)/\(sessionID): \(message)" }
    }

    /// How many sessions were read.
    public var sessions: Int
    /// Every broken rule, in id order.
    public var problems: [Problem]

    /// Whether every rule holds.
    public var isClean: Bool { problems.isEmpty }
}

extension PaymentSessionStoring {
    /// Reads every session from one consistent snapshot (the export's) and checks what the
    /// store promises whatever its engine: each session well formed (as an import would
    /// require), at most one selected session per cart, at most one session per (cart,
    /// provider), and no idempotency key on two sessions.
    ///
    /// The backend-neutral part of `verify`: the LMDB store's `PaymentSessionStore.verify()`
    /// also checks record bytes and index entries, which only it has. One snapshot, so
    /// writers may keep writing meanwhile.
    public func checkRules() async throws -> RuleCheckReport {
        var problems: [RuleCheckReport.Problem] = []
        var selectedByCart: [String: String] = [:]
        var sessionByPair: [String: String] = [:]
        var sessionByKey: [String: String] = [:]
        let count = try await exportJSONLines { line in
            let session: PaymentSession
            do {
                session = try PaymentSession(jsonText: line)
            } catch {
                problems.append(.init(sessionID: "?", cartID: "?", message: "a session that does not read back: \(error)"))
                return
            }
            func problem(_ message: String) {
                problems.append(.init(sessionID: session.id, cartID: session.cartID, message: message))
            }
            do throws(PaymentSessionError) {
                try SessionValidation.validate(session)
            } catch {
                problem(error.description)
            }
            if session.isSelected, let other = selectedByCart.updateValue(session.id, forKey: session.cartID) {
                problem("its cart has another selected session, \(other)")
            }
            if let other = sessionByPair.updateValue(session.id, forKey: session.cartID + "\u{0}" + session.providerID) {
                problem("its cart has another session for provider \(session.providerID), \(other)")
            }
            if let key = session.idempotencyKey, let other = sessionByKey.updateValue(session.id, forKey: key) {
                problem("its idempotency key \(key) is also session \(other)'s")
            }
        }
        return RuleCheckReport(sessions: count, problems: problems)
    }
}
