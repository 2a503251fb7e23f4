// A child process for the reliability suites. Each acknowledged commit is printed (and
// flushed) only after `write` returned, so the parent knows exactly what was promised.
//
//   StoreTorture crash STORE TAG DURABILITY [THREADS]   random writes on THREADS threads
//       until killed; acks on stdout:
//       C <txn> <size> <id>...    a transaction that created <size> sessions
//       U <id>                    status set to authorized
//       d <id>                    about to delete (the parent allows either outcome when
//                                 no D follows: the kill may have come after the commit)
//       D <id>                    session deleted
//   StoreTorture powerloss STORE DURABILITY OPERATIONS THREADS   the crash workload, bounded,
//       then exit 0 (the power-loss suite records its I/O; acks are marked in the recording too)
//   StoreTorture check-states DURABILITY DIR...   checks crash states (each DIR holds a
//       data.mdb and acks.txt, the acks made before the cut); one JSON line per DIR
//   StoreTorture race STORE CARTS OPS         ops on shared carts, then exit 0; acks:
//       C <id> / D <id>
//   StoreTorture money STORE CARTS OPS        authorize retries, provider switches, amount
//       changes, cancels and re-creations on shared carts, then exit 0; acks:
//       A <id> <payment_authorized_at in microseconds>   each authorize that returned
//   StoreTorture fill STORE                   create sessions with 4 KiB data until a write
//                                             fails; acks C <id>; prints the error code last
import Foundation
import LMDB
import PaymentSessions
import Synchronization

/// Prints an acknowledgement, and marks it in the I/O recording when the process runs under
/// `iorecord` (the power-loss suite's recorder), so that the recording knows what had been
/// promised at each point of its writes.
func ack(_ line: String) {
    recorderMark?(line)
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// `iorecord_mark` when the recorder is preloaded.
let recorderMark: (@Sendable (String) -> Void)? = {
    guard let symbol = dlsym(nil, "iorecord_mark") else { return nil }  // nil: RTLD_DEFAULT
    let mark = unsafeBitCast(symbol, to: (@convention(c) (UnsafePointer<CChar>) -> Void).self)
    return { text in text.withCString { mark($0) } }
}()

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(2)
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else { fail("usage: StoreTorture crash|race|fill|powerloss|check-states ...") }
if arguments[1] == "check-states" {
    checkCrashStates(durability: arguments[2], directories: Array(arguments.dropFirst(3)))
    exit(0)
}
var options = PaymentSessionStore.Options()
options.environment.mapSize = 1 << 20  // small, so that crashes also land in map growth
if arguments[1] == "crash" || arguments[1] == "powerloss", arguments.count >= 5 {
    guard let durability = PaymentSessionStore.Durability(rawValue: arguments[arguments[1] == "crash" ? 4 : 3]) else { fail("durability: full|noMetaSync|noSync") }
    options.environment.durability = durability
}
let store: PaymentSessionStore
do {
    store = try PaymentSessionStore(path: arguments[2], options: options)
} catch {
    fail("open: \(error)")
}
var rng = SystemRandomNumberGenerator()

switch arguments[1] {
case "crash" where arguments.count == 5 || arguments.count == 6:
    // Several threads write at once (THREADS, 1 by default), so that the kill also lands
    // in commits that synchronous writers share. Transaction numbers are process-wide.
    let threads = arguments.count == 6 ? Int(arguments[5]) ?? 1 : 1
    let transactions = TransactionCounter()
    let tag = arguments[3]
    for _ in 1..<max(threads, 1) {
        Thread { [store] in crashWriter(store: store, tag: tag, transactions: transactions) }.start()
    }
    crashWriter(store: store, tag: tag, transactions: transactions)
case "powerloss" where arguments.count == 6:
    // The crash workload, OPERATIONS of it on THREADS threads, then exit: the power-loss
    // suite records its I/O.
    guard let operations = Int(arguments[4]), let threads = Int(arguments[5]), threads > 0 else { fail("powerloss needs numbers") }
    let transactions = TransactionCounter()
    let group = DispatchGroup()
    for _ in 0..<threads {
        group.enter()
        Thread { [store] in
            crashWriter(store: store, tag: "p", transactions: transactions, limit: operations / threads)
            group.leave()
        }.start()
    }
    group.wait()
    exit(0)
case "race" where arguments.count == 5:
    guard let carts = Int(arguments[3]), let operations = Int(arguments[4]) else { fail("race needs numbers") }
    for _ in 0..<operations {
        let cart = "race-cart-\(Int.random(in: 0..<carts, using: &rng))"
        do {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0..<4:
                let session = try store.create(NewPaymentSession(cartID: cart, providerID: "p\(Int.random(in: 0..<4, using: &rng))"))
                ack("C \(session.id)")
            case 4..<8:
                let sessions = try store.sessions(cartID: cart).filter { $0.status != .canceled }
                if let target = sessions.randomElement(using: &rng) { try store.select(id: target.id) }
            default:
                if let target = try store.sessions(cartID: cart).randomElement(using: &rng) {
                    let deleted = try store.delete(id: target.id)
                    ack("D \(deleted.id)")
                }
            }
        } catch where error.code != .storage {
            // Another process got there first (duplicate provider, session just deleted): expected.
        } catch {
            fail("unexpected error: \(error)")
        }
    }
case "money" where arguments.count == 5:
    guard let carts = Int(arguments[3]), let operations = Int(arguments[4]) else { fail("money needs numbers") }
    let providers = ["stripe", "paypal", "manual"]
    for _ in 0..<operations {
        let cart = "money-cart-\(Int.random(in: 0..<carts, using: &rng))"
        do {
            let live = try store.sessions(cartID: cart).filter { $0.status != .canceled }
            let roll = Int.random(in: 0..<10, using: &rng)
            if live.count < 2 || roll == 0 {
                // (Re)initialise the cart's sessions at its total; canceled ones are replaced.
                let total = 1000 * Int.random(in: 1...3, using: &rng)
                try store.write { tx in
                    for provider in providers {
                        let (session, _) = try tx.createOrUpdate(cartID: cart, providerID: provider)
                        if session.status != .authorized { _ = try? tx.update(id: session.id, amount: total, currencyCode: "usd") }
                    }
                }
            } else if roll < 5, let selected = live.first(where: \.isSelected) {
                // Authorize, and often retry it as a client that timed out would.
                for _ in 0..<Int.random(in: 1...3, using: &rng) {
                    let authorized = try store.authorize(id: selected.id, amount: selected.amount ?? 1000, currencyCode: "usd")
                    ack("A \(authorized.id) \(Timestamp.microseconds(authorized.paymentAuthorizedAt ?? .distantPast))")
                }
            } else if roll < 8, let target = live.randomElement(using: &rng) {
                // Choose (or switch to) a provider; refused while another is authorized.
                _ = try store.select(id: target.id)
            } else if let selected = live.first(where: \.isSelected), selected.status == .authorized {
                // The provider voided the hold.
                _ = try store.update(id: selected.id, status: .canceled)
            } else if let target = live.randomElement(using: &rng) {
                _ = try store.update(id: target.id, amount: 1000 * Int.random(in: 1...3, using: &rng))
            }
        } catch let error as PaymentSessionError where error.code != .storage {
            // Refused by a rule (another process got there first, an authorized selection): expected.
        } catch {
            fail("unexpected error: \(error)")
        }
    }
case "fill":
    let blob = String(repeating: "f", count: 4000)
    var i = 0
    while true {
        do {
            let session = try store.create(NewPaymentSession(cartID: "fill-\(i)", providerID: "p", data: ["blob": .string(blob)]))
            ack("C \(session.id)")
            i += 1
        } catch {
            ack("E \(error.code.rawValue) \(error)")
            exit(0)
        }
    }
default:
    fail("unknown command: \(arguments.dropFirst().joined(separator: " "))")
}

/// The `crash` workload of one thread: random creates, authorizations and deletes, each
/// acknowledged after its write returned.
@Sendable func crashWriter(store: PaymentSessionStore, tag: String, transactions: TransactionCounter, limit: Int = .max) {
    var rng = SystemRandomNumberGenerator()
    var live: [(id: String, pending: Bool)] = []
    for _ in 0..<limit {
        let roll = Int.random(in: 0..<100, using: &rng)
        do {
            if roll < 50 || live.isEmpty {
                let txn = transactions.next()
                let size = Int.random(in: 1...3, using: &rng)
                let cart = "\(tag)-c\(txn)"
                let blob = String(repeating: "x", count: Int.random(in: 0...2000, using: &rng))
                let created = try store.write { tx in
                    let sessions = try (0..<size).map { p in
                        try tx.create(NewPaymentSession(
                            cartID: cart, providerID: "p\(p)", data: ["txn": .number(JSONNumber(txn)), "size": .number(JSONNumber(size)), "blob": .string(blob)],
                            idempotencyKey: "\(cart)-p\(p)"))
                    }
                    try tx.select(id: sessions[sessions.count - 1].id)
                    return sessions.map(\.id)
                }
                ack("C \(txn) \(size) " + created.joined(separator: " "))
                live += created.map { ($0, true) }
            } else if roll < 75 {
                let index = Int.random(in: 0..<live.count, using: &rng)
                guard live[index].pending else { continue }
                let id = live[index].id
                // Only a cart's selected session can be authorized, and an authorized
                // selection cannot be taken away: select it, then authorize, unless the
                // cart already holds another authorization.
                let authorized = try store.write { tx -> Bool in
                    guard let session = try tx.session(id: id) else { return false }
                    if let current = try tx.selectedSession(cartID: session.cartID), current.id != id, current.status == .authorized {
                        return false
                    }
                    try tx.select(id: id)
                    try tx.update(id: id, status: .authorized)
                    return true
                }
                guard authorized else { continue }
                ack("U \(id)")
                live[index].pending = false
            } else {
                let index = Int.random(in: 0..<live.count, using: &rng)
                ack("d \(live[index].id)")  // intent: a kill before the ack may or may not have deleted it
                try store.delete(id: live[index].id, force: true)
                ack("D \(live[index].id)")
                live.remove(at: index)
            }
        } catch {
            fail("unexpected error: \(error)")
        }
    }
}

/// Numbers the `crash` workload's transactions across its threads.
final class TransactionCounter: Sendable {
    private let last = Atomic(0)
    func next() -> Int { last.add(1, ordering: .relaxed).newValue }
}
