import ArgumentParser
import Foundation
import PaymentSessions
#if PostgreSQL
import PostgresPaymentSessions
#endif

struct Export: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print every session as JSON Lines, in id order, from one consistent snapshot.")

    @OptionGroup var location: StoreLocation

    func run() async throws {
        try await runReporting {
            try await location.withStore(create: false) { store in
                var buffer = Data()
                _ = try await store.exportJSONLines { line in
                    buffer.append(contentsOf: line.utf8)
                    buffer.append(0x0A)
                    if buffer.count > 1 << 16 {
                        FileHandle.standardOutput.write(buffer)
                        buffer.removeAll(keepingCapacity: true)
                    }
                }
                FileHandle.standardOutput.write(buffer)
            }
        }
    }
}

struct Import: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import sessions in export's format, all or nothing.",
        discussion: """
            Every line is checked before anything is written; ids, timestamps, statuses and \
            selections are kept. Prints {"imported":N}.
            """)

    @OptionGroup var location: StoreLocation
    @Argument(help: "The JSON Lines file; - or nothing reads stdin.") var file: String?

    func run() async throws {
        try await runReporting {
            let data: Data
            if let file, file != "-" {
                guard let contents = FileManager.default.contents(atPath: file) else {
                    throw InputError(field: "file", value: file, reason: "cannot be read")
                }
                data = contents
            } else {
                data = FileHandle.standardInput.readDataToEndOfFile()
            }
            guard let text = Self.text(of: data) else {
                throw InputError(field: "file", value: file ?? "-", reason: "is neither UTF-8 nor UTF-16 with a byte order mark")
            }
            let count = try await location.withStore(create: true) { try await $0.importJSONLines(text) }
            Output.json(["imported": .number(JSONNumber(count))])
        }
    }
}

extension Import {
    /// The file's text: UTF-8 (a byte order mark is dropped by the import itself), or
    /// UTF-16 when it starts with a byte order mark, as some Windows tools write it.
    static func text(of data: Data) -> String? {
        if data.starts(with: [0xFF, 0xFE]) || data.starts(with: [0xFE, 0xFF]) {
            return String(data: data, encoding: .utf16)
        }
        return String(validating: data, as: UTF8.self)
    }
}

struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check every session against the rules (LMDB: every record and index too); exit 5 when anything is wrong.",
        discussion: #"""
            Prints {"sessions":N,"problems":[{"kind","database","key","message"}...],\#
            "legacy_authorized":[ID...],"reservations":N}. Legacy authorized sessions (authorized \#
            before the store recorded authorizations) are listed apart and are not problems. On \#
            PostgreSQL, whose constraints check records and indexes, every session is read back \#
            through the API and held against the rules (kind "rule"), and the output has no \#
            legacy_authorized or reservations.
            """#)

    @OptionGroup var location: StoreLocation

    func run() async throws {
        var clean = true
        try await runReporting {
            clean = try await location.withStore(create: false) { store in
                guard let store = store as? PaymentSessionStore else {
                    let report = try await store.checkRules()
                    let problems: [JSONValue] = report.problems.map {
                        ["kind": "rule", "database": "payment_sessions", "key": .string($0.sessionID), "message": .string($0.message)]
                    }
                    Output.json(["sessions": .number(JSONNumber(report.sessions)), "problems": .array(problems)])
                    return report.isClean
                }
                let report = try store.verify()
                let problems: [JSONValue] = report.problems.map {
                    ["kind": .string($0.kind), "database": .string($0.database), "key": .string($0.key), "message": .string($0.message)]
                }
                Output.json([
                    "sessions": .number(JSONNumber(report.sessions)), "problems": .array(problems),
                    "legacy_authorized": .array(report.legacyAuthorized.map(JSONValue.string)),
                    "reservations": .number(JSONNumber(report.reservations)),
                ])
                return report.isClean
            }
        }
        if !clean { throw ExitCode(5) }
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print counts and sizes of the store, and where its change feed stands.",
        discussion: """
            {"backend","sessions","carts","selected","by_status", sizes as the engine measures them, \
            "changes":{"first":N or null,"last":N,"consumers":{NAME:N}}}.
            """)

    @OptionGroup var location: StoreLocation

    func run() async throws {
        try await runReporting {
            let fields = try await location.withStore(create: false) { store in
                var sizes: [String: JSONValue] = [:]
                let counts: SessionCounts
                if let store = store as? PaymentSessionStore {
                    let stats = try store.statistics()
                    counts = stats.counts
                    sizes = [
                        "file_bytes": .number(JSONNumber(stats.fileBytes)), "map_bytes": .number(JSONNumber(stats.mapBytes)),
                        "used_bytes": .number(JSONNumber(stats.usedBytes)),
                    ]
                } else if let size = try await Self.tableBytes(of: store) {
                    counts = try await store.sessionCounts()
                    sizes = ["table_bytes": .number(JSONNumber(size))]
                } else {
                    counts = try await store.sessionCounts()
                }
                let feed = try await store.changeFeedState()
                var consumers: [String: JSONValue] = [:]
                for (name, position) in feed.consumers { consumers[name] = .number(JSONNumber(position)) }
                sizes["changes"] = [
                    "first": feed.first.map { .number(JSONNumber($0)) } ?? .null, "last": .number(JSONNumber(feed.last)),
                    "consumers": .object(consumers),
                ]
                return (counts, sizes)
            }
            var byStatus: [String: JSONValue] = [:]
            for (status, count) in fields.0.byStatus { byStatus[status.rawValue] = .number(JSONNumber(count)) }
            var output: [String: JSONValue] = [
                "backend": .string(location.isPostgres ? "postgresql" : "lmdb"),
                "sessions": .number(JSONNumber(fields.0.sessions)), "carts": .number(JSONNumber(fields.0.carts)),
                "selected": .number(JSONNumber(fields.0.selected)), "by_status": .object(byStatus),
            ]
            output.merge(fields.1) { $1 }
            Output.json(.object(output))
        }
    }

    /// The session table's size on a PostgreSQL store; `nil` on any other.
    private static func tableBytes(of store: any PaymentSessionStoring) async throws -> Int? {
        #if PostgreSQL
        if let store = store as? PostgresPaymentSessionStore { return try await store.tableBytes() }
        #endif
        return nil
    }
}

struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a consistent copy of the store to DEST, while others keep writing.",
        discussion: #"""
            An LMDB store only: back up a PostgreSQL store with pg_dump. \
            DEST is a directory (created 0700 if needed) that must not hold a store; the copy is \#
            0600. The copy never holds back writers or the map's growth. With --compact, free \#
            pages are left out, but a write that must grow the map waits until the copy ends. \#
            Prints {"backup":DEST,"file_bytes":N}.
            """#)

    @OptionGroup var location: StoreLocation
    @Argument(help: "The destination directory.") var destination: String
    @Flag(help: "Leave out free pages (pins the map while copying).") var compact = false

    func run() throws {
        try runReporting {
            try location.open(create: false).backup(to: destination, compact: compact)
            let size = (try? FileManager.default.attributesOfItem(atPath: destination + "/data.mdb")[.size] as? Int) ?? 0
            Output.json(["backup": .string(destination), "file_bytes": .number(JSONNumber(size))])
        }
    }
}

struct Purge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete sessions not updated for a while.",
        discussion: #"""
            Authorized sessions are kept unless --include-authorized; idempotency keys of deleted \#
            sessions reserved longer than 24 hours are dropped. \#
            Prints {"purged":N,"kept_authorized":N,"reservations_dropped":N,"changes_trimmed":N}.
            """#)

    @OptionGroup var location: StoreLocation
    @Option(help: "Age: 90s, 30m, 72h, 7d (or combined, 1h30m); at most 36500d.") var olderThan: String
    @Option(help: "Only sessions in this status (repeatable).") var status: [String] = []
    @Flag(help: "Delete authorized sessions too (their holds are then orphaned).") var includeAuthorized = false

    func run() async throws {
        try await runReporting {
            let age = try Parse.duration(olderThan)
            let statuses = try status.isEmpty ? nil : Set(status.map { try Parse.status($0) })
            let includeAuthorized = includeAuthorized
            let report = try await location.withStore(create: true) {
                try await $0.purge(
                    notUpdatedSince: Date().addingTimeInterval(-age), statuses: statuses, includeAuthorized: includeAuthorized)
            }
            Output.json([
                "purged": .number(JSONNumber(report.purged)), "kept_authorized": .number(JSONNumber(report.keptAuthorized)),
                "reservations_dropped": .number(JSONNumber(report.reservationsDropped)),
                "changes_trimmed": .number(JSONNumber(report.changesTrimmed)),
            ])
        }
    }
}
