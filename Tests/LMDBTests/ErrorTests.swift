import Foundation
import LMDB
import TestSupport
import Testing
import TestScheduling

@Suite("Typed errors, nothing written", .ownThreads)
struct ErrorTests {
    @Test func oversizedKeyIsATypedErrorAndNothingIsWritten() throws {
        let f = try Fixture()
        #expect(f.env.maxKeySize == 511)
        let key = [UInt8](repeating: 0x41, count: f.env.maxKeySize + 1)
        var caught: LMDBError?
        do {
            try f.env.write { txn throws in
                try txn.put("ok", forKey: "before", in: f.db)
                try txn.put("v", forKey: key, in: f.db)
            }
        } catch let error as LMDBError { caught = error }
        #expect(caught?.code == .invalidKeySize(size: 512, maximum: 511))
        #expect(caught?.operation == "mdb_put(test)")
        #expect(caught?.description.contains("1 to 511 bytes") == true)
        #expect(try f.env.read { try $0.count(in: f.db) } == 0)
        // The longest legal key works.
        try f.env.write { try $0.put("v", forKey: Array(key.dropLast()), in: f.db) }
    }

    @Test func emptyKeyIsATypedErrorForEveryOperation() throws {
        let f = try Fixture()
        let empty: [UInt8] = []
        let isEmptyKey: (LMDBError.Code) -> Bool = { $0 == .invalidKeySize(size: 0, maximum: 511) }
        #expect(throwsLMDB(isEmptyKey) { try f.env.write { try $0.put("v", forKey: empty, in: f.db) } })
        #expect(throwsLMDB(isEmptyKey) { try f.env.write { _ = try $0.delete(empty, in: f.db) } })
        #expect(throwsLMDB(isEmptyKey) { _ = try f.env.read { try $0.get(empty, in: f.db) } })
        #expect(throwsLMDB(isEmptyKey) { try f.env.read { try $0.withCursor(on: f.db) { _ = try $0.seek(atLeast: empty) } } })
        #expect(try f.env.read { try $0.count(in: f.db) } == 0)
    }

    @Test func missingDatabaseIsATypedError() throws {
        let f = try Fixture()
        var caught: LMDBError?
        do { _ = try f.env.database(named: "absent", create: false) } catch let error as LMDBError { caught = error }
        #expect(caught?.code == .databaseNotFound(name: "absent"))
        #expect(caught?.operation == "mdb_dbi_open(absent)")
    }

    @Test func writeToReadOnlyEnvironmentIsATypedError() throws {
        let directory = TemporaryDirectory(prefix: "lmdb-ro")
        do {
            let env = try Environment.open(path: directory.path)
            let db = try env.database(named: "test")
            try env.write { try $0.put("v", forKey: "k", in: db) }
        }  // the read-write handle closes here
        var options = Environment.Options()
        options.readOnly = true
        let env = try Environment.open(path: directory.path, options: options)
        let db = try env.database(named: "test", create: true)  // opens, never creates
        #expect(throwsLMDB({ $0 == .readOnlyEnvironment }) {
            try env.write { try $0.put("w", forKey: "k", in: db) }
        })
        #expect(string(try env.read { try $0.get("k", in: db) }) == "v")
        #expect(throwsLMDB({ $0 == .databaseNotFound(name: "other") }) { _ = try env.database(named: "other") })
    }

    @Test func errorDescriptionNamesOperationAndLMDBConstant() {
        let error = LMDBError(.mapFull, operation: "mdb_put(sessions)")
        #expect(error.description == "mdb_put(sessions): MDB_MAP_FULL: Environment mapsize limit reached")
        let system = LMDBError(.system(errno: ENOSPC), operation: "mdb_txn_commit(/x)")
        #expect(system.description.hasPrefix("mdb_txn_commit(/x): ENOSPC: "))
        #expect(system.code.errno == ENOSPC)
    }

    @Test func everyLMDBReturnCodeMapsToItsOwnCase() {
        let codes: [Int32] = Array(-30799 ... -30780)
        let mapped = Set(codes.map(LMDBError.Code.init(lmdbReturnCode:)))
        #expect(mapped.count == codes.count)
        for rc in codes {
            let code = LMDBError.Code(lmdbReturnCode: rc)
            #expect(code.returnCode == rc)
            if case .unknown = code { Issue.record("unmapped \(rc)") }
        }
    }

    @Test func openingAFileThatIsNotLMDBIsATypedError() throws {
        let directory = TemporaryDirectory(prefix: "lmdb-bad")
        try Data(repeating: 0x5A, count: 16384).write(to: URL(fileURLWithPath: directory.appending("data.mdb")))
        #expect(throwsLMDB({ $0 == .invalidFile }) { _ = try Environment.open(path: directory.path) })
    }

    @Test func openingAPathThatIsAFileIsATypedError() throws {
        let directory = TemporaryDirectory(prefix: "lmdb-file")
        let file = directory.appending("plain")
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect(throwsLMDB({ $0 == .system(errno: ENOTDIR) || $0 == .system(errno: EEXIST) }) {
            _ = try Environment.open(path: file)
        })
    }

    @Test func missingDirectoryOpenedReadOnlyIsATypedError() throws {
        let directory = TemporaryDirectory(prefix: "lmdb-missing")
        var options = Environment.Options()
        options.readOnly = true
        #expect(throwsLMDB({ $0 == .system(errno: ENOENT) }) {
            _ = try Environment.open(path: directory.appending("nope"), options: options)
        })
    }
}
