import ArgumentParser
import Foundation
import PaymentSessions

/// `copy --from A --to B`: moves a store between backends (or places) page by page, so
/// that memory stays bounded by the page whatever the store's size.
struct Copy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy every session from one store to another, streaming, in id order.",
        discussion: """
            --from and --to are each an LMDB directory or a postgres:// URL. Sessions keep their \
            ids, timestamps, selections and idempotency keys, as with export and import. The \
            target must hold no sessions (it is created when missing). Pages of --page sessions \
            are read from the source and written to the target as one unit each, so memory stays \
            bounded however large the store; stop the source's writers first (pages are separate \
            reads). A page the target refuses stops the copy, names where (its first session, \
            counted from 1) and why, and leaves the \
            pages before it in the target: empty it and copy again. Afterwards the target is \
            checked against the rules and its count against the source's. Prints \
            {"copied":N}.
            """)

    @Option(help: ArgumentHelp("The store to copy from.", valueName: "path-or-url")) var from: String
    @Option(help: ArgumentHelp("The store to copy to (empty or missing).", valueName: "path-or-url")) var to: String
    @Option(help: "Sessions per page, 1 to 100000.") var page = "1000"

    func run() async throws {
        try await runReporting {
            let pageSize = try Parse.integer(page, field: "page", in: 1...100_000)
            let (from, to) = (from, to)
            if from == to { throw InputError(field: "to", value: StoreLocation.displayName(to), reason: "is the store to copy from") }
            let copied = try await StoreLocation.withStore(from, create: false) { source in
                try await StoreLocation.withStore(to, create: true) { target in
                    try await Self.copy(from: source, to: target, pageSize: pageSize, targetName: StoreLocation.displayName(to))
                }
            }
            Output.json(["copied": .number(JSONNumber(copied))])
        }
    }

    static func copy(
        from source: any PaymentSessionStoring, to target: any PaymentSessionStoring, pageSize: Int, targetName: String
    ) async throws -> Int {
        let already = try await target.count()
        guard already == 0 else {
            throw InputError(field: "to", value: targetName, reason: "holds \(already) sessions; copy fills an empty store")
        }
        var copied = 0
        var after: String?
        while true {
            let page = try await source.sessions(after: after, limit: pageSize)
            guard let last = page.last else { break }
            do {
                try await target.perform(page.map { .insert($0) })
            } catch let error as PaymentSessionError {
                // Where in the copy (the refused page's first session, counting from 1), and
            // what the target now holds, for the operator's next step.
                throw PaymentSessionError.importFailed(line: copied + 1, error: error)
            }
            copied += page.count
            after = last.id
        }
        let check = try await target.checkRules()
        let sourceCount = try await source.count()
        guard check.isClean, check.sessions == copied, sourceCount == copied else {
            let problems = check.problems.prefix(3).map(\.description).joined(separator: "; ")
            throw PaymentSessionError.invalidInput(
                field: "from", value: nil,
                reason: "the source changed during the copy (\(copied) copied, \(sourceCount) in the source)\(problems.isEmpty ? "" : ": \(problems)")")
        }
        return copied
    }
}
