import Foundation

/// What ``PaymentSessionStoring/checkRules(pageSize:)`` found: every session read through
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
    /// Reads every session through the store's API, page by page, and checks what the
    /// store promises whatever its engine: each session well formed (as an import would
    /// require), at most one selected session per cart, at most one session per (cart,
    /// provider), and each idempotency key finding its own session.
    ///
    /// The backend-neutral part of `verify`: the LMDB store's `PaymentSessionStore.verify()`
    /// also checks record bytes and index entries, which only it has. Pages are separate
    /// reads, so run it on a store that nobody writes meanwhile, or expect problems that a
    /// concurrent write explains.
    public func checkRules(pageSize: Int = 1000) async throws -> RuleCheckReport {
        var problems: [RuleCheckReport.Problem] = []
        var selectedByCart: [String: String] = [:]
        var sessionByPair: [String: String] = [:]
        var count = 0
        var after: String?
        while true {
            let page = try await sessions(after: after, limit: pageSize)
            for session in page {
                count += 1
                func problem(_ message: String) {
                    problems.append(.init(sessionID: session.id, cartID: session.cartID, message: message))
                }
                do {
                    try SessionValidation.validate(session)
                } catch {
                    problem(error.description)
                }
                if session.isSelected {
                    if let other = selectedByCart.updateValue(session.id, forKey: session.cartID) {
                        problem("its cart has another selected session, \(other)")
                    }
                }
                let pair = session.cartID + "\u{0}" + session.providerID
                if let other = sessionByPair.updateValue(session.id, forKey: pair) {
                    problem("its cart has another session for provider \(session.providerID), \(other)")
                }
                if let key = session.idempotencyKey, try await self.session(idempotencyKey: key)?.id != session.id {
                    problem("its idempotency key \(key) does not find it")
                }
            }
            guard page.count == pageSize, let last = page.last else { break }
            after = last.id
        }
        return RuleCheckReport(sessions: count, problems: problems)
    }
}
