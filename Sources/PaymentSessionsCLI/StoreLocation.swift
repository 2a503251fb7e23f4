import ArgumentParser
import Foundation
import PaymentSessions

/// `--store PATH`, shared by every subcommand.
struct StoreLocation: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The store directory.", discussion: "Default: $PAYMENT_SESSIONS_STORE, else ./payment-sessions.lmdb.",
            valueName: "path"))
    var store: String?

    /// The directory to use.
    var path: String {
        store ?? ProcessInfo.processInfo.environment["PAYMENT_SESSIONS_STORE"] ?? "./payment-sessions.lmdb"
    }

    /// Opens the store; read-only commands pass `create: false` so that a missing store
    /// is `not_found` rather than silently created.
    func open(create: Bool) throws(PaymentSessionError) -> PaymentSessionStore {
        var options = PaymentSessionStore.Options()
        options.createIfMissing = create
        return try PaymentSessionStore(path: path, options: options)
    }
}
