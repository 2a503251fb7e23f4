import Foundation
import InMemoryLogging
import Logging
@_spi(StorageTesting) import PaymentSessions
import TestSupport
import Testing
import TestScheduling
import LMDB

/// What an operator should hear of reaches the logger given in the options.
@Suite("Logging", .ownThreads)
struct LoggingTests {
    func store(_ handler: InMemoryLogHandler, _ configure: (inout PaymentSessionStore.Options) -> Void = { _ in }) throws
        -> (TemporaryDirectory, PaymentSessionStore)
    {
        let directory = TemporaryDirectory(prefix: "logging")
        var options = PaymentSessionStore.Options()
        options.environment.durability = .noSync
        options.logger = Logger(label: "test") { _ in handler }
        configure(&options)
        return (directory, try PaymentSessionStore(path: directory.appending("store"), options: options))
    }

    @Test func mapGrowthIsANotice() throws {
        let handler = InMemoryLogHandler()
        let (_, store) = try store(handler) { $0.environment.mapSize = 1 << 20 }
        let blob = JSONValue.string(String(repeating: "g", count: 16 << 10))
        try store.write { tx in
            for i in 0..<200 { try tx.create(NewPaymentSession(cartID: "c\(i)", providerID: "p", data: ["blob": blob])) }
        }
        let growths = handler.entries.filter { $0.message.description == "grew the map" }
        #expect(!growths.isEmpty)
        #expect(growths.allSatisfy { $0.level == .notice && $0.metadata["lmdb.to"] != nil && $0.metadata["lmdb.path"] != nil })
    }

    @Test func aCorruptRecordMetOnAReadIsAWarning() throws {
        let handler = InMemoryLogHandler()
        let (_, store) = try store(handler)
        let session = try store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        try store.rawStorage.put([3, 0, 0], forKey: session.id, in: .sessions)
        #expect(throws: PaymentSessionError.self) { _ = try store.session(id: session.id) }
        #expect(throws: PaymentSessionError.self) { _ = try store.sessions(cartID: "c") }
        let warnings = handler.entries.filter { $0.level == .warning }
        #expect(warnings.count == 2)
        #expect(warnings.first?.metadata["payment_sessions.key"] == .string(session.id))
    }

    @Test func readerSlotsOfDeadProcessesAreANoticeAtOpen() throws {
        let directory = TemporaryDirectory(prefix: "logging-readers")
        do {
            _ = try PaymentSessionStore(path: directory.path)
        }
        // Another process keeps the store open, so that the reader table survives the
        // dead reader (the first opener of a store resets it).
        let keeper = try ChildProcess("LMDBProbe", ["hold-read", directory.path])
        defer { keeper.kill() }
        #expect(keeper.readLine() == "reading")
        let child = try ChildProcess("LMDBProbe", ["hold-read", directory.path])
        #expect(child.readLine() == "reading")
        child.kill()
        let handler = InMemoryLogHandler()
        var options = PaymentSessionStore.Options()
        options.logger = Logger(label: "test") { _ in handler }
        _ = try PaymentSessionStore(path: directory.path, options: options)
        let notice = handler.entries.first { $0.message.description == "reclaimed reader slots of dead processes" }
        #expect(notice?.metadata["lmdb.slots"]?.description == "1")
    }
}
