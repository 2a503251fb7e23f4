import Foundation
import PaymentSessions
import TestSupport
import Testing

/// Runs the built `payment-sessions` executable against one temporary store.
struct CLI {
    let directory = TemporaryDirectory(prefix: "cli")
    /// The `--store` value: a directory, or a `postgres://` URL of a fresh database.
    let store: String

    /// A CLI on a new LMDB store, or with `postgres`, on a new database of the test server.
    init(postgres: Bool = false) throws {
        store = postgres ? try PostgresServer.shared().makeDatabase() : directory.appending("store")
    }

    init() {
        store = directory.appending("store")
    }

    @discardableResult
    func run(_ arguments: [String], stdin: String? = nil, store: String? = nil) throws -> ChildProcess.Output {
        try ChildProcess.run("payment-sessions", arguments + ["--store", store ?? self.store], stdin: stdin)
    }

    /// Runs a command that must succeed and returns its stdout parsed as JSON.
    func json(_ arguments: [String], stdin: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) throws -> JSONValue {
        let output = try run(arguments, stdin: stdin)
        #expect(output.status == 0, "\(arguments): \(output.stderr)", sourceLocation: sourceLocation)
        return try JSONValue(parsing: output.stdout)
    }

    /// Runs a command that must succeed and returns the session it printed.
    @discardableResult
    func session(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> PaymentSession {
        let output = try run(arguments)
        #expect(output.status == 0, "\(arguments): \(output.stderr)", sourceLocation: sourceLocation)
        return try PaymentSession(jsonText: output.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The whole store as export prints it (empty when there is no store).
    func snapshot() throws -> String { try run(["export"]).stdout }
}

/// The `{"error":{"code":...,"message":...}}` line a failure must end stderr with.
func errorCode(_ output: ChildProcess.Output) -> String? {
    guard let last = output.stderr.split(separator: "\n").last,
        case .object(let body)? = try? JSONValue(parsing: String(last)).objectValue?["error"],
        case .string(let code)? = body["code"], body["message"]?.stringValue?.isEmpty == false
    else { return nil }
    return code
}
