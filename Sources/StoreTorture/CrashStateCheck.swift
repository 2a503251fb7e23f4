import Foundation
import LMDB
import PaymentSessions

/// What the crash workload acknowledged, read from its ack lines.
struct Acknowledged {
    var created: [String: (txn: String, size: Int)] = [:]
    var authorized: Set<String> = []
    var deleted: Set<String> = []
    /// Deletes announced but not acknowledged: the session may be there or not.
    var maybeDeleted: Set<String> = []
    /// Acknowledged commits (C, U and D lines).
    var commits = 0

    init(lines: some Sequence<Substring>) {
        for line in lines {
            let parts = line.split(separator: " ").map(String.init)
            switch parts.first {
            case "C"? where parts.count >= 4:
                commits += 1
                for id in parts[3...] { created[id] = (parts[1], Int(parts[2]) ?? 0) }
            case "U"? where parts.count == 2:
                commits += 1
                authorized.insert(parts[1])
            case "d"? where parts.count == 2:
                maybeDeleted.insert(parts[1])
            case "D"? where parts.count == 2:
                commits += 1
                deleted.insert(parts[1])
                maybeDeleted.remove(parts[1])
            default: continue
            }
        }
    }
}

/// Checks each crash state: the store opens (or refuses with a typed error), `verify` is
/// clean, no transaction is half there, the change feed replays to the sessions, and every
/// acknowledged commit survived. Prints one JSON line per state:
/// `{"state": DIR, "outcome": "intact" | "lost" | "corrupt" | "refused", "lost": N, "problems": [...]}`.
///
/// `lost` counts acknowledged commits missing; `corrupt` means the store broke a rule or
/// showed half a transaction; `refused` that it would not open (with the error's code).
func checkCrashStates(durability: String, directories: [String]) {
    // Thousands of states are checked while other suites run: yield the CPU to them first.
    _ = nice(10)
    for directory in directories {
        // Announced first: if the check dies by a signal, the parent knows which state did it.
        FileHandle.standardError.write(Data("checking \(directory)\n".utf8))
        let result = checkCrashState(directory, durability: durability)
        // Strings and numbers only, so serialising cannot fail; if it did, the parent would
        // see a line it cannot read and say so.
        let data = (try? JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])) ?? Data("unserialisable result".utf8)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

private func checkCrashState(_ directory: String, durability: String) -> [String: Any] {
    let acksText = (try? String(contentsOfFile: directory + "/acks.txt", encoding: .utf8)) ?? ""
    let promised = Acknowledged(lines: acksText.split(separator: "\n"))
    var options = PaymentSessionStore.Options()
    options.createIfMissing = false
    if let mode = PaymentSessionStore.Durability(rawValue: durability) { options.environment.durability = mode }
    var problems: [String] = []
    let store: PaymentSessionStore
    do {
        store = try PaymentSessionStore(path: directory, options: options)
    } catch {
        return [
            "state": directory, "outcome": "refused", "lost": promised.commits, "acknowledged": promised.commits,
            "problems": ["\(error.code.rawValue): \(error)"],
        ]
    }
    do {
        let report = try store.verify()
        problems += report.problems.map { "verify: \($0)" }
        let all = try store.sessions(limit: 10_000_000)
        let byID = Dictionary(all.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        if byID.count != all.count { problems.append("the id walk returned \(all.count - byID.count) sessions twice") }

        // Atomicity: a transaction's sessions are all there, less those deleted later.
        var present: [String: Int] = [:]
        var sizes: [String: Int] = [:]
        for session in all {
            guard case .number(let txn)? = session.data["txn"], case .number(let size)? = session.data["size"] else {
                problems.append("session \(session.id) lacks its transaction number")
                continue
            }
            present[txn.text, default: 0] += 1
            sizes[txn.text] = Int(size.text)
        }
        // A session leaves only through a delete announced (`d`) before it began, so the
        // sessions missing from a transaction are exactly its announced deletes that happened.
        var gonePerTransaction: [String: Int] = [:]
        for id in promised.deleted.union(promised.maybeDeleted) where byID[id] == nil {
            if let txn = promised.created[id]?.txn { gonePerTransaction[txn, default: 0] += 1 }
        }
        for (txn, count) in present where count != (sizes[txn] ?? 0) - (gonePerTransaction[txn] ?? 0) {
            problems.append("transaction \(txn): \(count) of \(sizes[txn] ?? 0) sessions visible")
        }

        // The change feed and the sessions are one fact.
        let changes = try store.changes(after: 0, limit: 10_000_000)
        if changes.map(\.sequence) != Array(stride(from: 1, through: Int64(changes.count), by: 1)) {
            problems.append("the change feed has gaps")
        }
        var replayed: [String: PaymentSession] = [:]
        for change in changes { replayed[change.sessionID] = change.session }
        if replayed.values.sorted(by: { $0.id < $1.id }) != all { problems.append("the change feed does not replay to the sessions") }

        // Acknowledged commits that did not survive.
        var lostCommits = Set<String>()
        for (id, created) in promised.created where !promised.deleted.contains(id) && !promised.maybeDeleted.contains(id) {
            if byID[id] == nil { lostCommits.insert("C \(created.txn)") }
        }
        for id in promised.authorized where !promised.deleted.contains(id) && !promised.maybeDeleted.contains(id) {
            if let session = byID[id], session.status != .authorized { lostCommits.insert("U \(id)") }
        }
        for id in promised.deleted where byID[id] != nil { lostCommits.insert("D \(id)") }
        let outcome = !problems.isEmpty ? "corrupt" : lostCommits.isEmpty ? "intact" : "lost"
        return [
            "state": directory, "outcome": outcome, "lost": lostCommits.count, "problems": problems + lostCommits.sorted().prefix(5).map { "lost \($0)" },
            "sessions": all.count, "acknowledged": promised.commits,
        ]
    } catch {
        return ["state": directory, "outcome": "corrupt", "lost": 0, "problems": problems + ["\(error)"]]
    }
}

