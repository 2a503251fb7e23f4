import Foundation
import LMDB
import PaymentSessions
import TestSupport
import Testing

@Suite("Store basics")
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

    @Test func idsAreUniqueAndInCreationOrderWithinOneMillisecond() throws {
        let f = try StoreFixture()
        var ids: [String] = []
        for i in 0..<50 {
            ids.append(try f.store.create(NewPaymentSession(cartID: "cart_\(i)", providerID: "manual")).id)
        }
        #expect(ids == ids.sorted())
        #expect(Set(ids).count == 50)
        #expect(try f.store.sessions(limit: 1000).map(\.id) == ids)
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

    @Test func cartSessionsComeInCreationOrderWhateverTheProviderNames() throws {
        let f = try StoreFixture()
        let providers = ["zeta", "alpha", "mid"]
        var ids: [String] = []
        for provider in providers {
            ids.append(try f.store.create(NewPaymentSession(cartID: "cart_A", providerID: provider)).id)
            f.clock.advance()
        }
        try f.store.create(NewPaymentSession(cartID: "cart_A2", providerID: "alpha"))
        try f.store.create(NewPaymentSession(cartID: "cart_", providerID: "alpha"))
        #expect(try f.store.sessions(cartID: "cart_A").map(\.id) == ids)
        #expect(try f.store.sessions(cartID: "cart_A").map(\.providerID) == providers)
    }

    @Test func idempotentCreateReturnsTheFirstSessionWithoutWriting() throws {
        let f = try StoreFixture()
        let first = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k"))
        let lastTxn = (try f.store.environment.info()).lastTransactionID
        f.clock.advance()
        let again = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", data: ["x": 1], idempotencyKey: "k"))
        #expect(again == first)
        #expect((try f.store.environment.info()).lastTransactionID == lastTxn)
    }

    @Test func idempotencyKeyReusedForAnotherCartOrProviderIsAConflict() throws {
        let f = try StoreFixture()
        let first = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k"))
        let expected = PaymentSessionError.idempotencyConflict(
            key: "k", existingID: first.id, existingCartID: "c", existingProviderID: "p")
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "other", providerID: "p", idempotencyKey: "k")) } == expected)
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "q", idempotencyKey: "k")) } == expected)
        #expect(expected.code == .conflict)
        #expect(try f.store.count() == 1)
    }

    @Test func secondSessionForTheSameCartAndProviderIsAConflict() throws {
        let f = try StoreFixture()
        let first = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "p")) }
            == .duplicateSession(cartID: "c", providerID: "p", existingID: first.id))
        #expect(try f.store.count() == 1)
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

    /// `createOrUpdate` on a canceled pair replaces the session; when the new `data` is
    /// refused, the canceled session is still there (checked inside a closure that catches
    /// the error and commits, so nothing hides a half-applied change).
    @Test func createOrUpdateWithRefusedDataKeepsTheCanceledSession() throws {
        let f = try StoreFixture { $0.maxDataBytes = 64 }
        let (session, _) = try f.store.createOrUpdate(cartID: "c", providerID: "stripe")
        try f.store.update(id: session.id, status: .canceled)
        let tooLarge: [String: JSONValue] = ["blob": .string(String(repeating: "x", count: 200))]
        let refusal = try f.store.write { tx in
            storeError { _ = try tx.createOrUpdate(cartID: "c", providerID: "stripe", data: tooLarge) }
        }
        guard case .invalidInput(field: "data", _, _)? = refusal else {
            Issue.record("expected invalid data, got \(String(describing: refusal))")
            return
        }
        #expect(try f.store.session(id: session.id)?.status == .canceled)
        #expect(try f.store.count() == 1)
        #expect(try f.store.verify().isClean)
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

    /// Dates past what 64 bits of microseconds hold are clamped, never a trap.
    @Test func purgeWithAnExtremeCutoffNeitherTrapsNorPurgesWrongly() throws {
        let f = try StoreFixture()
        try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        #expect(try f.store.purge(notUpdatedSince: Date(timeIntervalSince1970: -1e300)).purged == 0)
        #expect(Timestamp.microseconds(Date(timeIntervalSince1970: 1e300)) == .max)
        #expect(Timestamp.microseconds(Date(timeIntervalSince1970: .nan)) == 0)
        #expect(try f.store.purge(notUpdatedSince: Date(timeIntervalSince1970: 1e300)).purged == 1)
    }

    @Test func createWithSelectDeselectsThePreviousSelection() throws {
        let f = try StoreFixture()
        let a = try f.store.create(NewPaymentSession(cartID: "c", providerID: "a", select: true))
        #expect(a.isSelected)
        f.clock.advance()
        let b = try f.store.create(NewPaymentSession(cartID: "c", providerID: "b", select: true))
        #expect(try f.store.selectedSession(cartID: "c") == b)
        let aNow = try #require(try f.store.session(id: a.id))
        #expect(!aNow.isSelected)
        #expect(aNow.updatedAt == f.clock.now)
        #expect(try f.store.verify().isClean)
    }

    @Test func createOrUpdateCreatesOnceThenRefreshesData() throws {
        let f = try StoreFixture()
        let (created, wasCreated) = try f.store.createOrUpdate(cartID: "c", providerID: "stripe", data: ["v": 1])
        #expect(wasCreated)
        f.clock.advance()
        let (refreshed, createdAgain) = try f.store.createOrUpdate(cartID: "c", providerID: "stripe", data: ["v": 2])
        #expect(!createdAgain)
        #expect(refreshed.id == created.id)
        #expect(refreshed.data == ["v": 2])
        #expect(refreshed.updatedAt > created.updatedAt)
        try f.store.update(id: created.id, status: .canceled)
        let (replacement, replaced) = try f.store.createOrUpdate(cartID: "c", providerID: "stripe")
        #expect(replaced)
        #expect(replacement.id != created.id)
        #expect(replacement.status == .pending)
        #expect(try f.store.sessions(cartID: "c") == [replacement])
    }

    @Test func deleteRemovesTheRecordAndEveryIndexEntry() throws {
        let f = try StoreFixture()
        let s = try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k", select: true))
        let deleted = try f.store.delete(id: s.id)
        #expect(deleted == s)
        #expect(try f.store.session(id: s.id) == nil)
        #expect(try f.store.session(idempotencyKey: "k") == nil)
        #expect(try f.store.selectedSession(cartID: "c") == nil)
        #expect(try f.store.sessions(cartID: "c").isEmpty)
        #expect(storeError { try f.store.delete(id: s.id) } == .sessionNotFound(id: s.id))
        // The pair is free again; the key stays reserved, so that a retry of the deleted
        // session's create does not make a second one.
        #expect(storeError { try f.store.create(NewPaymentSession(cartID: "c", providerID: "p", idempotencyKey: "k")) }
            == .sessionGone(key: "k", id: s.id))
        try f.store.create(NewPaymentSession(cartID: "c", providerID: "p"))
        #expect(try f.store.verify().isClean)
    }

    @Test func deleteSessionsOfACartLeavesOtherCartsAlone() throws {
        let f = try StoreFixture()
        for provider in ["a", "b", "c"] { try f.store.create(NewPaymentSession(cartID: "one", providerID: provider)) }
        let other = try f.store.create(NewPaymentSession(cartID: "two", providerID: "a", select: true))
        #expect(try f.store.deleteSessions(cartID: "one") == 3)
        #expect(try f.store.sessions() == [other])
        #expect(try f.store.deleteSessions(cartID: "one") == 0)
    }

    @Test func purgeDeletesOnlyOldSessionsOfTheGivenStatuses() throws {
        let f = try StoreFixture()
        let old = try f.store.create(NewPaymentSession(cartID: "c1", providerID: "p"))
        let oldCanceled = try f.store.create(NewPaymentSession(cartID: "c2", providerID: "p", status: .canceled))
        f.clock.advance(milliseconds: 60_000)
        let cutoff = f.clock.now
        let fresh = try f.store.create(NewPaymentSession(cartID: "c3", providerID: "p"))
        #expect(try f.store.purge(notUpdatedSince: cutoff, statuses: [.canceled]).purged == 1)
        #expect(try f.store.session(id: oldCanceled.id) == nil)
        #expect(try f.store.purge(notUpdatedSince: cutoff).purged == 1)
        #expect(try f.store.session(id: old.id) == nil)
        #expect(try f.store.sessions() == [fresh])
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
            == .storeNotFound(path: directory.appending("none")))
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
        #expect(storeError { _ = try PaymentSessionStore(path: directory.path) } == .unsupportedFormat(found: 99, supported: 3))
    }
}
