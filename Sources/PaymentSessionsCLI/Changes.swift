import ArgumentParser
import Foundation
import PaymentSessions

/// `changes`: the store's change feed as JSON Lines, once or following new commits.
struct Changes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the change feed as JSON Lines, one change per line, in commit order.",
        discussion: """
            Each line is {"sequence":N,"session_id":...,"cart_id":...,"kind":...,"status_before":..., \
            "status_after":...,"committed_at":...,"session":{...} or null}. --after N starts after \
            change N (default 0, or the consumer's position with --consumer). --follow keeps printing \
            as commits happen, from any process, until interrupted. --consumer NAME acknowledges \
            each line once it is written, so that the next run with the name resumes after it. \
            Changes no longer kept answer not_found, naming the oldest kept.
            """)

    @OptionGroup var location: StoreLocation
    @Option(help: "Start after this sequence number (default: 0, or the consumer's position).") var after: String?
    @Option(help: "The most changes to print without --follow, 1 to 1000000.") var limit = "1000"
    @Flag(help: "Keep printing new changes as they commit, until interrupted.") var follow = false
    @Option(help: "A named consumer: start at its position and acknowledge each change printed.") var consumer: String?

    func run() async throws {
        try await runReporting {
            let limit = try Parse.integer(limit, field: "limit", in: 1...1_000_000)
            let after = try self.after.map { try Parse.integer($0, field: "after", in: 0...Int.max) }
            let (follow, consumer) = (follow, consumer)
            try await location.withStore(create: false) { store in
                if let consumer { try SessionValidation.validateIdentifier(consumer, field: "consumer") }
                var start = Int64(after ?? 0)
                if after == nil, let consumer, let position = try await store.position(consumer: consumer) { start = position }
                func emit(_ change: PaymentSessionChange) async throws {
                    // One write per line: a reader on a pipe gets each change as it happens.
                    Output.line(change.jsonText())
                    if let consumer { try await store.acknowledge(consumer: consumer, upTo: change.sequence) }
                }
                if follow {
                    for try await change in store.followChanges(after: start) { try await emit(change) }
                } else {
                    for change in try await store.changes(after: start, limit: limit) { try await emit(change) }
                }
            }
        }
    }
}
