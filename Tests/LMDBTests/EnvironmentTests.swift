import Foundation
import LMDB
import TestSupport
import Testing
import TestScheduling

@Suite("Environment", .ownThreads)
struct EnvironmentTests {
    @Test func openCreatesTheDirectoryAndItsFiles() throws {
        let directory = TemporaryDirectory(prefix: "lmdb-env")
        let path = directory.appending("a/b/store")
        let env = try Environment.open(path: path)
        #expect(FileManager.default.fileExists(atPath: path + "/data.mdb"))
        #expect(FileManager.default.fileExists(atPath: path + "/lock.mdb"))
        #expect(env.path == URL(fileURLWithPath: path).resolvingSymlinksInPath().path)
    }

    /// Every descriptor of an open environment's files is close-on-exec, so that a child
    /// process started meanwhile (a `posix_spawn` or `fork` and `exec` keeps every other
    /// one) holds none of them: liblmdb marks only lock.mdb so, and a child holding
    /// data.mdb kept a test's file system from being remounted read-only. Checked on the
    /// descriptors themselves: the tests' own children close all but their standard
    /// streams.
    @Test func everyDescriptorOfTheEnvironmentsFilesIsCloseOnExec() throws {
        let f = try Fixture()
        try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
        let directory = URL(fileURLWithPath: f.directory.path).resolvingSymlinksInPath().path
        var found: [String] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let descriptor = Int32(name),
                let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(name)"),
                target.hasPrefix(directory + "/")
            else { continue }
            let flags = fcntl(descriptor, F_GETFD)
            #expect(flags >= 0 && flags & FD_CLOEXEC != 0, "\(target) (descriptor \(descriptor)) is inherited by children")
            found.append(target)
        }
        #expect(found.contains { $0.hasSuffix("/data.mdb") }, "\(found)")
        #expect(found.contains { $0.hasSuffix("/lock.mdb") }, "\(found)")
    }

    @Test func samePathReturnsTheSameEnvironment() throws {
        let f = try Fixture()
        let again = try Environment.open(path: f.directory.path + "/./", options: f.env.options)
        #expect(again === f.env)
        #expect(try again.database(named: "test") == f.db)
    }

    @Test func samePathWithOtherOptionsIsRefused() throws {
        let f = try Fixture()
        var options = f.env.options
        options.durability = .noSync
        #expect(throwsLMDB({ if case .incompatibleOptions = $0 { true } else { false } }) {
            _ = try Environment.open(path: f.directory.path, options: options)
        })
    }

    @Test func closesWhenTheLastReferenceGoesAndReopens() throws {
        let directory = TemporaryDirectory(prefix: "lmdb-reopen")
        weak var first: Environment?
        do {
            let env = try Environment.open(path: directory.path)
            first = env
            let db = try env.database(named: "d")
            try env.write { try $0.put("kept", forKey: "k", in: db) }
        }
        #expect(first == nil)
        let env = try Environment.open(path: directory.path)
        let db = try env.database(named: "d", create: false)
        #expect(string(try env.read { try $0.get("k", in: db) }) == "kept")
    }

    @Test func databasesAreIndependentAndListedInTheMainDatabase() throws {
        let f = try Fixture()
        let other = try f.env.database(named: "other")
        try f.env.write { txn throws in
            try txn.put("1", forKey: "k", in: f.db)
            try txn.put("2", forKey: "k", in: other)
        }
        try f.env.read { txn throws in
            #expect(string(try txn.get("k", in: f.db)) == "1")
            #expect(string(try txn.get("k", in: other)) == "2")
        }
        #expect(try f.env.statistics().entries == 2)
    }

    @Test func tooManyDatabasesIsATypedError() throws {
        let f = try Fixture { $0.maxDatabases = 2 }
        _ = try f.env.database(named: "second")
        #expect(throwsLMDB({ $0 == .databasesFull }) { _ = try f.env.database(named: "third") })
    }

    @Test func infoAndStatisticsDescribeTheData() throws {
        let f = try Fixture()
        try f.env.write { txn throws in
            for i in 0..<1000 { try txn.put([UInt8](repeating: 7, count: 100), forKey: "key-\(i)", in: f.db) }
        }
        let stats = try f.env.read { try $0.statistics(of: f.db) }
        #expect(stats.entries == 1000)
        #expect(stats.pageSize == 4096)
        #expect(stats.leafPages > 1)
        #expect(stats.depth >= 2)
        let info = (try f.env.info())
        #expect(info.mapSize == 8 << 20)
        #expect(info.lastTransactionID >= 2)
        #expect(try f.env.fileSize() >= (info.lastPageNumber + 1) * 4096)
    }

    @Test func compactCopyIsAUsableConsistentStore() throws {
        let f = try Fixture()
        try f.env.write { txn throws in
            for i in 0..<2000 { try txn.put([UInt8](repeating: 1, count: 500), forKey: "key-\(i)", in: f.db) }
        }
        try f.env.write { txn throws in
            for i in 0..<1900 { try txn.delete("key-\(i)", in: f.db) }
        }
        let backup = TemporaryDirectory(prefix: "lmdb-copy")
        try f.env.copy(to: backup.path, compact: true)
        #expect(throwsLMDB({ $0 == .system(errno: EEXIST) }) { try f.env.copy(to: backup.path) })
        let copySize = try FileManager.default.attributesOfItem(atPath: backup.appending("data.mdb"))[.size] as! Int
        #expect(try copySize < f.env.fileSize() / 2)
        let copy = try Environment.open(path: backup.path)
        let db = try copy.database(named: "test", create: false)
        #expect(try copy.read { try $0.count(in: db) } == 100)
        #expect(try copy.read { try $0.get("key-1999", in: db) }?.count == 500)
    }

    @Test(arguments: Environment.Durability.allCases)
    func everyDurabilityModeCommitsAndSyncs(durability: Environment.Durability) throws {
        let f = try Fixture { $0.durability = durability }
        try f.env.write { try $0.put("v", forKey: "k", in: f.db) }
        try f.env.sync()
        #expect(string(try f.env.read { try $0.get("k", in: f.db) }) == "v")
    }
}
