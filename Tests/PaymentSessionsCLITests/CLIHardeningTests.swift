import Foundation
import PaymentSessions
import TestSupport
import Testing
import TestScheduling

/// The command line's faults: numbers that trapped, secrets on the command line and in
/// errors, files from other systems, modes under any umask, reads behind a writer.
@Suite("payment-sessions hardening", .ownThreads)
struct CLIHardeningTests {
    /// Every numeric argument out of range (or past 64 bits, or not a number) is
    /// `invalid_input`, exit 2, with the JSON error line, and writes nothing.
    @Test(arguments: [
        ["purge", "--older-than", "99999999999999999999d"],
        ["purge", "--older-than", "36501d"],
        ["purge", "--older-than", "876001h"],
        ["list", "--limit", "99999999999999999999"],
        ["list", "--limit=-1"],
        ["list", "--limit", "ten"],
        ["simulate", "--workers", "0"],
        ["simulate", "--workers", "257"],
        ["simulate", "--carts", "0"],
        ["simulate", "--carts", "1e9"],
        ["simulate", "--duration", "nan"],
        ["simulate", "--duration", "inf"],
        ["simulate", "--duration", "0"],
        ["simulate", "--duration", "86401"],
    ])
    func numbersOutOfRangeAreInvalidInput(arguments: [String]) throws {
        let cli = CLI()
        try cli.session(["create", "--cart", "c", "--provider", "p"])
        let before = try cli.snapshot()
        let output = try cli.run(arguments)
        #expect(!output.killedBySignal, "\(arguments) trapped: \(output.stderr)")
        #expect(output.status == 2, "\(arguments): \(output.stderr)")
        #expect(errorCode(output) == "invalid_input", "\(arguments): \(output.stderr)")
        #expect(output.stdout.isEmpty)
        #expect(try cli.snapshot() == before)
    }

    @Test func aHundredYearsIsTheLongestAge() throws {
        let cli = CLI()
        try cli.session(["create", "--cart", "c", "--provider", "p"])
        #expect(try cli.json(["purge", "--older-than", "36500d"]).objectValue?["purged"] == 0)
    }

    /// `--data @PATH` and `--data @-` keep a provider's secret off the command line.
    @Test func dataComesFromAFileOrStdin() throws {
        let cli = CLI()
        let file = cli.directory.appending("data.json")
        try Data(#"{"client_secret":"pi_from_file"}"#.utf8).write(to: URL(fileURLWithPath: file))
        let fromFile = try cli.session(["create", "--cart", "c", "--provider", "stripe", "--data", "@" + file])
        #expect(fromFile.data == ["client_secret": "pi_from_file"])
        let output = try cli.run(["update", fromFile.id, "--data", "@-"], stdin: #"{"client_secret":"pi_from_stdin"}"#)
        #expect(output.status == 0, "\(output.stderr)")
        #expect(try cli.session(["get", fromFile.id]).data == ["client_secret": "pi_from_stdin"])
        let missing = try cli.run(["create", "--cart", "c", "--provider", "paypal", "--data", "@" + file + ".missing"])
        #expect(missing.status == 2)
        #expect(errorCode(missing) == "invalid_input")
    }

    /// A command that reads no input runs as usual when it is given a megabyte of it, more
    /// than a pipe holds: it exits without reading it, and its caller sees its answer.
    @Test func aCommandThatReadsNoInputAnswersWhateverInputItIsGiven() throws {
        let cli = CLI()
        let session = try cli.session(["create", "--cart", "c", "--provider", "p"])
        let output = try cli.run(["get", session.id], stdin: String(repeating: "x", count: 1 << 20))
        #expect(output.status == 0, "\(output.stderr)")
        #expect(try PaymentSession(jsonText: output.stdout.trimmingCharacters(in: .newlines)) == session, "\(output.stdout)")
    }

    /// The tests' children meet a closed pipe as they would outside the tests: killed by
    /// `SIGPIPE` (the tests ignore it themselves). `yes` that met an ignored `SIGPIPE` would
    /// report a write error instead.
    @Test func childrenMeetAClosedPipeWithTheDefaultAction() throws {
        let output = try ChildProcess(path: "/bin/sh", ["-c", "yes | head -c 1 > /dev/null"]).finish()
        #expect(output.status == 0 && output.stderr.isEmpty, "\(output.stderr)")
    }

    /// A child gets its three standard streams and nothing else the tests hold open, even
    /// a descriptor without close-on-exec (liblmdb's data.mdb, for the moment between its
    /// open and the store marking it): one would keep a store's file open for the child's
    /// whole life.
    @Test func childrenInheritOnlyTheirStandardStreams() throws {
        let leaky = open("/dev/null", O_RDONLY)
        #expect(leaky > 2)
        defer { close(leaky) }
        let output = try ChildProcess(path: "/bin/sh", ["-c", "ls /proc/$$/fd"]).finish()
        #expect(output.status == 0, "\(output.stderr)")
        let inherited = Set(output.stdout.split(separator: "\n").compactMap { Int32($0) })
        // The shell's own descriptors for its `ls`: at most one more than the three.
        #expect(!inherited.contains(leaky), "inherited: \(inherited.sorted())")
        #expect(inherited.isSuperset(of: [0, 1, 2]))
    }

    /// A malformed `data` is refused without echoing any of it: it may hold a secret.
    @Test(arguments: [
        #"{"client_secret":"pi_SECRET_123" "#, #"["pi_SECRET_123"]"#, #"{"a":"pi_SECRET_123","a":1}"#, #""pi_SECRET_123""#,
    ])
    func refusedDataIsNeverEchoed(data: String) throws {
        let cli = CLI()
        for arguments in [["create", "--cart", "c", "--provider", "p", "--data", data], ["create", "--cart", "c", "--provider", "p", "--data", "@-"]] {
            let output = try cli.run(arguments, stdin: data)
            #expect(output.status == 2, "\(output.stderr)")
            #expect(errorCode(output) == "invalid_input")
            #expect(!output.stderr.contains("SECRET"), "\(output.stderr)")
        }
        // Nor does an import line whose data is not an object.
        let line = #"{"id":"ps_01G901XNSRM2YS3ASN9H5KG3FZ","cart_id":"c","provider_id":"p","is_selected":false,"status":"pending","data":"pi_SECRET_123","idempotency_key":null,"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}"#
        let imported = try cli.run(["import"], stdin: line + "\n")
        #expect(imported.status == 2)
        #expect(!imported.stderr.contains("SECRET"), "\(imported.stderr)")
    }

    /// A file written on Windows (CRLF, a byte order mark) or as UTF-16 imports as is.
    @Test func importTakesWindowsFilesAndUTF16() throws {
        let source = CLI()
        try source.session(["create", "--cart", "c1", "--provider", "stripe", "--select"])
        try source.session(["create", "--cart", "c1", "--provider", "manual", "--data", #"{"n":1}"#])
        let export = try source.snapshot()
        let windows = "\u{FEFF}" + export.split(separator: "\n").joined(separator: "\r\n") + "\r\n"
        let encodings: [(String, Data)] = [
            ("utf8-bom-crlf", Data(windows.utf8)),
            ("utf16le", windows.data(using: .utf16LittleEndian)!),
            ("utf16be", windows.data(using: .utf16BigEndian)!),
        ]
        for (name, bytes) in encodings {
            let target = CLI()
            let file = target.directory.appending(name + ".jsonl")
            var contents = bytes
            if name == "utf16le" { contents = Data([0xFF, 0xFE]) + bytes.dropFirst(2) }
            if name == "utf16be" { contents = Data([0xFE, 0xFF]) + bytes.dropFirst(2) }
            try contents.write(to: URL(fileURLWithPath: file))
            #expect(try target.json(["import", file]) == ["imported": 2], "\(name)")
            #expect(try target.snapshot() == export, "\(name)")
        }
    }

    /// Stores and backups made by the tool are owner-only even with umask 000.
    @Test func storesAndBackupsAreOwnerOnlyUnderAnyUmask() throws {
        let cli = CLI()
        let tool = ChildProcess.productsDirectory.appendingPathComponent("payment-sessions").path
        let store = cli.directory.appending("open/store")
        let backup = cli.directory.appending("open/backup")
        let script = """
            umask 000
            "$0" create --cart c --provider p --store "$1" >/dev/null && "$0" backup "$2" --store "$1" >/dev/null
            """
        let output = try ChildProcess(path: "/bin/sh", ["-c", script, tool, store, backup]).finish()
        #expect(output.status == 0 && !output.killedBySignal, "\(output.stderr)")
        for (path, mode) in [
            (store, 0o700), (store + "/data.mdb", 0o600), (store + "/lock.mdb", 0o600), (backup, 0o700),
            (backup + "/data.mdb", 0o600), (cli.directory.appending("open"), 0o700),
        ] {
            var status = stat()
            #expect(stat(path, &status) == 0, "\(path)")
            #expect(Int(status.st_mode & 0o777) == mode, "\(path): \(String(status.st_mode & 0o777, radix: 8))")
        }
    }

    /// Read commands never wait for a writer: another process holds the store's write
    /// lock for as long as the test runs, and `get`, `list`, `stats`, `verify`, `export`
    /// and `backup` still answer.
    @Test func readCommandsAnswerWhileAnotherProcessHoldsTheWriter() throws {
        let cli = CLI()
        let session = try cli.session(["create", "--cart", "c", "--provider", "p"])
        let holder = try ChildProcess("LMDBProbe", ["hold-write", cli.store, "meta", "ghost"])
        defer { holder.kill() }
        #expect(holder.readLine() == "holding")
        for arguments in [["get", session.id], ["list"], ["stats"], ["verify"], ["export"], ["backup", cli.directory.appending("b")]] {
            let child = try ChildProcess("payment-sessions", arguments + ["--store", cli.store])
            let finished = DispatchSemaphore(value: 0)
            Thread {
                child.waitForExit()
                finished.signal()
            }.start()
            let answered = finished.wait(timeout: .now() + 10) == .success
            #expect(answered, "\(arguments) waited for the writer")
            if !answered { child.kill() }
            let output = try child.finish()
            #expect(output.status == 0, "\(arguments): \(output.stderr)")
        }
    }
}
