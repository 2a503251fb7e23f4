import Foundation
import PaymentSessionsCore
import Testing

/// The operations that decide over more than one session, as the core decides them:
/// what each backend must write, given what it read. No store, no disk.
@Suite("Core: the workflows over values")
struct SessionWorkflowTests {
    static let t0 = SessionRulesTests.t0

    static func session(
        id: String = SessionRulesTests.id, cart: String = "cart_1", provider: String = "stripe",
        _ status: PaymentSessionStatus = .pending, selected: Bool = false, key: String? = nil
    ) -> PaymentSession {
        PaymentSession(
            id: id, cartID: cart, providerID: provider, isSelected: selected, status: status, data: ["k": "v"],
            idempotencyKey: key, createdAt: Timestamp.date(microseconds: t0), updatedAt: Timestamp.date(microseconds: t0))
    }

    // MARK: Create

    @Test func aCreateRetriedWithItsKeyReturnsTheSessionTheKeyNames() throws {
        let holder = Self.session(id: "ps_01JD0000000000000000000009", key: "k1")
        let retry = Self.session(key: "k1")
        #expect(try SessionRules.retriedCreate(retry, keyHeldBy: holder) == holder)
    }

    @Test(arguments: [("cart_2", "stripe"), ("cart_1", "paypal")])
    func aKeyThatNamesAnotherCartOrProviderIsAConflictNamingThatSession(cart: String, provider: String) {
        let holder = Self.session(id: "ps_01JD0000000000000000000009", cart: cart, provider: provider, key: "k1")
        #expect(throws: PaymentSessionError.idempotencyConflict(
            key: "k1", existingID: holder.id, existingCartID: cart, existingProviderID: provider)
        ) {
            try SessionRules.retriedCreate(Self.session(key: "k1"), keyHeldBy: holder)
        }
    }

    // MARK: Create or update

    @Test func aPairWithNoSessionIsCreated() throws {
        guard case .create = try SessionRules.createOrUpdate(existing: nil, data: ["a": 1], maxDataBytes: 1 << 16, now: Self.t0)
        else { Issue.record("not a create"); return }
    }

    @Test func aLiveSessionGetsItsDataReplacedOrKept() throws {
        let existing = Self.session(.requiresMore)
        guard case .refresh(let change, let previous) = try SessionRules.createOrUpdate(
            existing: existing, data: ["a": 1], maxDataBytes: 1 << 16, now: Self.t0 + 5)
        else { Issue.record("not a refresh"); return }
        #expect(previous == existing)
        #expect(change.isWrite && change.session.data == ["a": 1] && change.session.status == .requiresMore)
        #expect(change.session.updatedMicroseconds == Self.t0 + 5)
        guard case .refresh(let kept, _) = try SessionRules.createOrUpdate(
            existing: existing, data: nil, maxDataBytes: 1 << 16, now: Self.t0 + 5)
        else { Issue.record("not a refresh"); return }
        #expect(kept.session.data == existing.data && kept.dataJSON == nil)
    }

    @Test func aCanceledSessionIsReplacedNotRevived() throws {
        let canceled = Self.session(.canceled)
        guard case .replace(let replaced) = try SessionRules.createOrUpdate(
            existing: canceled, data: ["a": 1], maxDataBytes: 1 << 16, now: Self.t0)
        else { Issue.record("not a replacement"); return }
        #expect(replaced == canceled)
    }

    @Test func dataTooLargeForALiveSessionIsRefusedBeforeAnythingIsDecided() {
        let big: [String: JSONValue] = ["blob": .string(String(repeating: "x", count: 200))]
        #expect(throws: PaymentSessionError.self) {
            try SessionRules.createOrUpdate(existing: Self.session(), data: big, maxDataBytes: 64, now: Self.t0)
        }
    }

    // MARK: Select

    @Test func selectingReleasesTheCartsPreviousSelectionFirst() throws {
        let current = Self.session(id: "ps_01JD0000000000000000000009", provider: "paypal", selected: true)
        let step = try SessionRules.switchSelection(to: Self.session(), from: current, now: Self.t0 + 7)
        #expect(step.selected.isSelected && step.selected.updatedMicroseconds == Self.t0 + 7)
        #expect(step.released?.before == current)
        #expect(step.released?.after.isSelected == false)
        #expect(step.released?.after.updatedMicroseconds == Self.t0 + 7)
    }

    @Test func selectingInACartWithNoSelectionReleasesNothing() throws {
        #expect(try SessionRules.switchSelection(to: Self.session(), from: nil, now: Self.t0).released == nil)
        let itself = Self.session(selected: true)
        #expect(try SessionRules.switchSelection(to: itself, from: itself, now: Self.t0).released == nil)
    }

    @Test func anAuthorizedSelectionIsNeverSwitchedAway() {
        let held = Self.session(id: "ps_01JD0000000000000000000009", provider: "paypal", .authorized, selected: true)
        #expect(throws: PaymentSessionError.authorizedSessionSelected(cartID: "cart_1", authorizedID: held.id)) {
            try SessionRules.switchSelection(to: Self.session(), from: held, now: Self.t0)
        }
    }

    @Test func aCanceledSessionCannotBeSelectedAndASelectedOneNeedsNothing() throws {
        #expect(throws: PaymentSessionError.notSelectable(id: SessionRulesTests.id, status: .canceled)) {
            try SessionRules.needsSelecting(Self.session(.canceled))
        }
        #expect(try SessionRules.needsSelecting(Self.session(selected: true)) == false)
        #expect(try SessionRules.needsSelecting(Self.session()) == true)
    }

    // MARK: Write results

    @Test func everyWriteNamesTheMethodItIs() {
        let writes: [PaymentSessionWrite] = [
            .create(NewPaymentSession(cartID: "c", providerID: "p")),
            .createOrUpdate(cartID: "c", providerID: "p", data: nil),
            .update(id: "i", status: nil, data: nil, expectedUpdatedAt: nil), .select(id: "i"), .deselect(cartID: "c"),
            .authorize(id: "i", amount: 1, currencyCode: nil, data: nil, expectedUpdatedAt: nil),
            .updateAmount(id: "i", amount: 1, currencyCode: nil, expectedUpdatedAt: nil),
            .setInitiated(id: "i", isInitiated: true), .delete(id: "i", force: false),
            .deleteSessions(cartID: "c", force: false),
            .purge(notUpdatedSince: Date(), statuses: nil, includeAuthorized: false), .insert(Self.session()),
        ]
        let names = writes.map(\.operationName)
        #expect(Set(names).count == writes.count)
        #expect(names.contains("authorize(id:amount:currencyCode:data:expectedUpdatedAt:)"))
    }

    @Test func aResultOfTheWrongShapeIsAnErrorNotACrash() {
        let write = PaymentSessionWrite.deleteSessions(cartID: "c", force: false)
        #expect(throws: PaymentSessionError.self) {
            try PaymentSessionWriteResult.inserted.count(by: write, of: .lmdb)
        }
        do {
            _ = try PaymentSessionWriteResult.inserted.count(by: write, of: .lmdb)
        } catch {
            guard case .storage(let failure) = error else { Issue.record("\(error)"); return }
            #expect(failure.kind == .misuse && failure.operation == write.operationName)
        }
        #expect((try? PaymentSessionWriteResult.count(3).count(by: write, of: .lmdb)) == 3)
    }
}
