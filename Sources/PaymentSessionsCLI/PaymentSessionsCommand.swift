import ArgumentParser
import Foundation
import PaymentSessions

@main
struct PaymentSessionsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payment-sessions",
        abstract: "Inspect, change, verify, back up and exercise a payment session store.",
        discussion: """
            Every command works on the store given by --store, else $PAYMENT_SESSIONS_STORE, \
            else ./payment-sessions.lmdb: an LMDB directory, or a postgres:// URL (its password \
            from PGPASSWORD or ~/.pgpass, never printed). Write commands create a missing store \
            (or the schema); read commands report it as not_found. backup works on LMDB stores; \
            copy --from A --to B moves a store between the two.

            Results go to stdout as JSON (JSON Lines for export). On failure nothing is \
            written, stdout stays empty, the last line of stderr is \
            {"error":{"code":"CODE","message":"..."}} and the exit status tells the code: \
            not_found 1, invalid_input 2, invalid_transition 2, conflict 3, storage 4; \
            verify exits 5 when it finds problems. outcome_unknown (exit 6) is the one \
            failure that may have written: the connection was lost after the commit was \
            sent; read before retrying, or retry with the same --idempotency-key.
            """,
        version: PaymentSessionsVersion.current,
        subcommands: [
            Create.self, Get.self, List.self, Selected.self, Select.self, Deselect.self, Update.self, Authorize.self, Delete.self,
            Export.self, Import.self, Copy.self, Changes.self, Verify.self, Stats.self, Backup.self, Purge.self, Simulate.self,
        ]
    )
}
