import Foundation
import LMDB
@_spi(StorageTesting) import PaymentSessions
import TestSupport
import StoreTestFixtures
import Testing
import TestScheduling

@Suite("Store basics: the LMDB store's own API and files (the rules are in the conformance suite)", .ownThreads)
struct StoreBasicsTests {
    /// Every byte value in every digit position: only Crockford base32 digits pass.
    @Test func sessionIDsAcceptExactlyCrockfordDigits() {
        let digits = Set("0123456789ABCDEFGHJKMNPQRSTVWXYZ".utf8)
        let valid = Array("ps_01JD0000000000000000000001".utf8)
        #expect(PaymentSessionID.isValid(String(decoding: valid, as: UTF8.self)))
        for position in 4..<valid.count {
            for byte in UInt8(0)...UInt8(127) {
                var id = valid
                id[position] = byte
                #expect(PaymentSessionID.isValid(String(decoding: id, as: UTF8.self)) == digits.contains(byte))
            }
        }
        var nonASCII = valid
        nonASCII.replaceSubrange(27..<29, with: Array("é".utf8))
        #expect(!PaymentSessionID.isValid(String(decoding: nonASCII, as: UTF8.self)))
        #expect(!PaymentSessionID.isValid("ps_81JD0000000000000000000001"))  // above 48 bits of milliseconds
        #expect(!PaymentSessionID.isValid("ps_01jd0000000000000000000001"))
        #expect(!PaymentSessionID.isValid("ps_01JD000000000000000000000"))
    }

    @Test func createThenReadBackEveryWay() throws {
        let f = try StoreFixture()
        let created = try f.store.create(
            NewPaymentSession(cartID: "cart_1", providerID: "stripe", data: ["intent": "pi_1", "amount": 4200],
                idempotencyKey: "idem-1"))
        #expect(PaymentSessionID.isValid(created.id))
        #expect(created.status == .pending)
        #expect(!created.isSelected)
        #expect(created.createdAt == f.clock.now)
        #expect(created.updatedAt == created.createdAt)
        #expect(try f.store.session(id: created.id) == created)
        #expect(try f.store.session(idempotencyKey: "idem-1") == created)
        #expect(try f.store.sessions(cartID: "cart_1") == [created])
        #expect(try f.store.selectedSession(cartID: "cart_1") == nil)
        #expect(try f.store.count() == 1)
        #expect(try f.store.sessions() == [created])
    }

    @Test func paginationWalksEverySessionOnce() throws {
        let f = try StoreFixture()
        for i in 0..<25 {
            try f.store.create(NewPaymentSession(cartID: "cart_\(i % 5)", providerID: "p\(i)"))
        }
        var seen: [String] = []
        var page = try f.store.sessions(limit: 7)
        while let last = page.last {
            seen += page.map(\.id)
            page = try f.store.sessions(after: last.id, limit: 7)
        }
        #expect(seen.count == 25)
        #expect(seen == seen.sorted())
        #expect(try f.store.sessions(limit: 0).isEmpty)
        #expect(storeError { _ = try f.store.sessions(limit: -1) }?.code == .invalidInput)
    }

    @Test func idempotentCreateReturnsTheFirstSessionWithoutWriting() throws {
        let f = try StoreFixture()
        let first = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k"))
        let lastTxn = (try f.store.rawStorage.lastTransactionID())
        f.clock.advance()
        let again = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["x": 1], idempotencyKey: "k"))
        #expect(again == first)
        #expect((try f.store.rawStorage.lastTransactionID()) == lastTxn)
    }

    /// The index entries a refused create had already put are taken back: the key and
    /// the (cart, provider) pair stay free for the next create.
    ///
    /// The refusals happen inside one write closure that catches them and commits, so the
    /// test sees what the refused operations themselves left behind (a refused standalone
    /// create would roll its whole transaction back and hide it).
    @Test func refusedCreateLeavesNoIndexEntryBehind() throws {
        let f = try StoreFixture()
        let first = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        let refusals = try f.store.write { tx in
            [
                storeError { try tx.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k1")) },
                storeError { try tx.create(NewPaymentSession(cartID: "d", providerID: "p", idempotencyKey: "k2", id: first.id)) },
            ]
        }
        #expect(refusals[0] == .duplicateSession(cartID: "c", providerID: "p", existingID: first.id))
        #expect(refusals[1] == .duplicateID(id: first.id))
        #expect(try f.store.session(idempotencyKey: "k1") == nil)
        #expect(try f.store.session(idempotencyKey: "k2") == nil)
        #expect(try f.store.read { try $0.session(cartID: "d", providerID: "p") } == nil)
        #expect(try f.store.verify().isClean)
        let second = try f.store.create(NewPaymentSession(cartID: "d", providerID: "p", idempotencyKey: "k1"))
        #expect(try f.store.session(idempotencyKey: "k1") == second)
        #expect(try f.store.count() == 2)
    }

    /// A caller's own error comes back from `read` and `write` as it was thrown, not
    /// wrapped as a storage error.
    @Test func aCallersErrorPassesThroughReadAndWriteUnchanged() throws {
        struct Declined: Error, Equatable { let reason: String }
        let f = try StoreFixture()
        #expect(throws: Declined(reason: "w")) { try f.store.write { _ in throw Declined(reason: "w") } }
        #expect(throws: Declined(reason: "r")) { try f.store.read { _ in throw Declined(reason: "r") } }
        #expect(throws: CancellationError.self) { try f.store.write { _ in throw CancellationError() } }
        #expect(try f.store.count() == 0)
    }

    @Test func dataSurvivesReopeningExactly() throws {
        let directory = TemporaryDirectory(prefix: "reopen")
        let data: [String: JSONValue] = [
            "big": .number(JSONNumber(text: "123456789012345678901234567890")!), "fraction": .number(JSONNumber(text: "1.10")!),
            "nested": ["list": [1, "two", nil, true, ["deep": [:]]]], "unicode": "zürich 🚀 \u{0}\u{1F}\"\\",
        ]
        let created: PaymentSession
        do {
            let store = try PaymentSessionStore(path: directory.path)
            created = try store.create(NewPaymentSession(cartID: "c", providerID: "p", data: data, idempotencyKey: "k"))
        }
        let store = try PaymentSessionStore(path: directory.path)
        #expect(try store.session(id: created.id) == created)
        #expect(try store.session(id: created.id)?.data == data)
    }

    @Test func missingStoreIsNotFoundWhenCreationIsNotAllowed() throws {
        let directory = TemporaryDirectory(prefix: "missing")
        var options = PaymentSessionStore.Options()
        options.createIfMissing = false
        #expect(storeError { _ = try PaymentSessionStore(path: directory.appending("none"), options: options) }
            == .storeNotFound(location: directory.appending("none")))
        #expect(!FileManager.default.fileExists(atPath: directory.appending("none")))
    }

    @Test func storeOfANewerFormatIsRefused() throws {
        let directory = TemporaryDirectory(prefix: "newer")
        do {
            _ = try PaymentSessionStore(path: directory.path)
            let env = try Environment.open(path: directory.path)
            let meta = try env.database(named: "meta")
            try env.write { try $0.put([99, 0, 0, 0] as [UInt8], forKey: "format_version", in: meta) }
        }
        #expect(storeError { _ = try PaymentSessionStore(path: directory.path) } == .unsupportedFormat(found: 99, supported: RawStorage.formatVersion))
    }
}
