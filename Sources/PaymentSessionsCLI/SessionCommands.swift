import ArgumentParser
import Foundation
import PaymentSessions

struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a payment session and print it.",
        discussion: """
            With --idempotency-key, a retry returns the session the key already names (same cart \
            and provider, exit 0) or fails with conflict (another cart or provider). A second \
            session for the same cart and provider is a conflict.
            """)

    @OptionGroup var location: StoreLocation
    @Option(help: "The cart id.") var cart: String
    @Option(help: "The payment provider id (manual, stripe, ...).") var provider: String
    @Option(help: "The provider's data: a JSON object, @PATH to read it from a file, or @- from stdin. Default: {}.")
    var data: String?
    @Option(help: "Initial status: pending, requires_more, authorized, error or canceled. Default: pending.")
    var status: String?
    @Option(help: "A key that makes retries of this create safe.") var idempotencyKey: String?
    @Flag(help: "Select the new session, deselecting the cart's previous selection.") var select = false
    @Option(help: "The amount to charge, in the currency's minor unit (0 to 2^53-1); needs --currency.") var amount: String?
    @Option(help: "The currency: three lowercase letters (usd, eur).") var currency: String?
    @Flag(help: "The provider already holds state for the session.") var initiated = false

    func run() async throws {
        try await runReporting {
            let new = NewPaymentSession(
                cartID: cart, providerID: provider, status: try status.map { try Parse.status($0) } ?? .pending,
                data: try data.map(Parse.data) ?? [:], idempotencyKey: idempotencyKey, select: select,
                amount: try amount.map { try Parse.amount($0) }, currencyCode: currency, isInitiated: initiated)
            let session = try await location.withStore(create: true) { try await $0.create(new) }
            Output.line(session.jsonText())
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print one session, by id or by idempotency key.")

    @OptionGroup var location: StoreLocation
    @Argument(help: "The session id (ps_...).") var id: String?
    @Option(help: "Find the session by its idempotency key instead.") var idempotencyKey: String?

    func validate() throws {
        if (id == nil) == (idempotencyKey == nil) {
            throw ValidationError("Give either a session ID or --idempotency-key, not both.")
        }
    }

    func run() async throws {
        try await runReporting {
            let (id, key) = (id, idempotencyKey)
            let session = try await location.withStore(create: false) { store in
                if let id {
                    guard let session = try await store.session(id: id) else { throw PaymentSessionError.sessionNotFound(id: id) }
                    return session
                }
                let key = key ?? ""
                guard let session = try await store.session(idempotencyKey: key) else {
                    throw PaymentSessionError.idempotencyKeyNotFound(key: key)
                }
                return session
            }
            Output.line(session.jsonText())
        }
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print sessions as a JSON array.",
        discussion: "With --cart: the cart's sessions in creation order. Otherwise all sessions in id order, a page at a time.")

    @OptionGroup var location: StoreLocation
    @Option(help: "Only this cart's sessions.") var cart: String?
    @Option(help: "Only sessions in this status.") var status: String?
    @Option(help: "At most this many sessions, 0 to 1000000.") var limit = "100"
    @Option(help: "Start after this session id (the last id of the previous page).") var after: String?

    func run() async throws {
        try await runReporting {
            let limit = try Parse.integer(limit, field: "limit", in: 0...1_000_000)
            let wanted = try status.map { try Parse.status($0) }
            if let after { try SessionValidation.validateID(after) }
            let (cart, after) = (cart, after)
            let result = try await location.withStore(create: false) { store in
                var result: [PaymentSession] = []
                if let cart {
                    result = try await store.sessions(cartID: cart)
                        .filter { session in after.map { session.id > $0 } ?? true }
                        .filter { wanted == nil || $0.status == wanted }
                    return Array(result.prefix(limit))
                }
                var cursor = after
                while result.count < limit {
                    let page = try await store.sessions(after: cursor, limit: max(limit, 100))
                    result += page.filter { wanted == nil || $0.status == wanted }.prefix(limit - result.count)
                    guard let last = page.last else { break }
                    cursor = last.id
                }
                return result
            }
            Output.line("[" + result.map { $0.jsonText() }.joined(separator: ",") + "]")
        }
    }
}

struct Selected: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a cart's selected session (not_found when none).")

    @OptionGroup var location: StoreLocation
    @Option(help: "The cart id.") var cart: String

    func run() async throws {
        try await runReporting {
            let cart = cart
            guard let session = try await location.withStore(create: false, { try await $0.selectedSession(cartID: cart) }) else {
                throw PaymentSessionError.noSelection(cartID: cart)
            }
            Output.line(session.jsonText())
        }
    }
}

struct Select: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Select a session and print it; the cart's other sessions are deselected.")

    @OptionGroup var location: StoreLocation
    @Argument(help: "The session id.") var id: String

    func run() async throws {
        try await runReporting {
            let id = id
            let session = try await location.withStore(create: true) { try await $0.select(id: id) }
            Output.line(session.jsonText())
        }
    }
}

struct Deselect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Clear a cart's selection.", discussion: #"Prints {"cart_id":C,"deselected":ID or null}."#)

    @OptionGroup var location: StoreLocation
    @Option(help: "The cart id.") var cart: String

    func run() async throws {
        try await runReporting {
            let cart = cart
            let previous = try await location.withStore(create: true) { try await $0.deselect(cartID: cart) }
            Output.json(["cart_id": .string(cart), "deselected": previous.map { .string($0.id) } ?? .null])
        }
    }
}

struct Update: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change a session's status, data and/or amount and print it.",
        discussion: """
            Status moves: pending -> requires_more | authorized | error | canceled; requires_more -> \
            pending | authorized | error | canceled; error -> pending | canceled; authorized -> \
            canceled; canceled is final. Anything else is invalid_transition. --status authorized \
            authorizes the session for its own amount (see authorize). --amount follows the cart \
            while nothing is held; on an authorized session another amount is a conflict.
            """)

    @OptionGroup var location: StoreLocation
    @Argument(help: "The session id.") var id: String
    @Option(help: "The new status.") var status: String?
    @Option(help: "The provider's new data (replaces the old): a JSON object, @PATH or @- (stdin).") var data: String?
    @Option(help: "The new amount, in the currency's minor unit.") var amount: String?
    @Option(help: "The currency of --amount, when the session has none or it changes.") var currency: String?

    func run() async throws {
        try await runReporting {
            if status == nil && data == nil && amount == nil {
                throw InputError(field: "update", value: nil, reason: "give --status, --data and/or --amount")
            }
            if currency != nil && amount == nil {
                throw InputError(field: "currency", value: currency, reason: "goes with --amount")
            }
            let newStatus = try status.map { try Parse.status($0) }
            let newData = try data.map(Parse.data)
            let newAmount = try amount.map { try Parse.amount($0) }
            var writes: [PaymentSessionWrite] = []
            // The amount first: `--status authorized --amount N` authorizes for N.
            if let newAmount { writes.append(.updateAmount(id: id, amount: newAmount, currencyCode: currency, expectedUpdatedAt: nil)) }
            if newStatus != nil || newData != nil {
                writes.append(.update(id: id, status: newStatus, data: newData, expectedUpdatedAt: nil))
            }
            let results = try await location.withStore(create: true) { [writes] in try await $0.perform(writes) }
            guard let session = results.last?.session else { throw PaymentSessionError.sessionNotFound(id: id) }
            Output.line(session.jsonText())
        }
    }
}

struct Authorize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Record the provider's authorization of a cart's selected session and print it.",
        discussion: """
            Moves the session to authorized and records payment_authorized_at and the amount, in \
            one write. Only the cart's selected session can be authorized, for the session's \
            amount (a session without one takes --amount). Idempotent: a repeat with the same \
            amount prints the session unchanged and exits 0; another amount is a conflict (exit 3).
            """)

    @OptionGroup var location: StoreLocation
    @Argument(help: "The session id.") var id: String
    @Option(help: "The authorized amount, in the currency's minor unit.") var amount: String
    @Option(help: "The currency, when the session has none.") var currency: String?
    @Option(help: "The provider's answer, replacing data: a JSON object, @PATH or @- (stdin).") var data: String?

    func run() async throws {
        try await runReporting {
            let amount = try Parse.amount(amount)
            let data = try data.map(Parse.data)
            let (id, currency) = (id, currency)
            let session = try await location.withStore(create: true) {
                try await $0.authorize(id: id, amount: amount, currencyCode: currency, data: data, expectedUpdatedAt: nil)
            }
            Output.line(session.jsonText())
        }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete a session.",
        discussion: #"""
            An authorized session is refused (conflict, exit 3) unless --force: cancel it first so \#
            that its hold is voided. The session's idempotency key stays reserved for 24 hours. \#
            Prints {"deleted":ID}.
            """#)

    @OptionGroup var location: StoreLocation
    @Argument(help: "The session id.") var id: String
    @Flag(help: "Delete an authorized session too (its hold is then orphaned).") var force = false

    func run() async throws {
        try await runReporting {
            let (id, force) = (id, force)
            let deleted = try await location.withStore(create: true) { try await $0.delete(id: id, force: force) }
            Output.json(["deleted": .string(deleted.id)])
        }
    }
}
