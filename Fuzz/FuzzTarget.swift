// A libFuzzer target for the two parsers of untrusted bytes: the stored record decoder
// (bytes written as a session record, read back through `session(id:)`) and the JSON
// import (`PaymentSession(jsonText:)`). Build and run with Fuzz/run.sh.
//
// A finding is a crash, a sanitizer report, or a broken promise checked below: a record
// that decodes must print as valid JSON whose `data` is the session's `data`.
import Foundation
import LMDB
import PaymentSessions

/// One store for the whole run, in a temporary directory, without fsync.
let fuzzStore: PaymentSessionStore? = {
    var options = PaymentSessionStore.Options()
    options.environment.durability = .noSync
    return try? PaymentSessionStore(path: NSTemporaryDirectory() + "payment-sessions-fuzz-\(getpid())", options: options)
}()
let fuzzRecords: Database? = try? fuzzStore?.environment.database(named: "sessions", create: false)
let fuzzID = "ps_01JD0000000000000000000000"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // The JSON import: a session line, or a typed error.
    if let text = String(validating: bytes, as: UTF8.self) {
        _ = try? PaymentSession(jsonText: text)
    }

    // The record decoder, through LMDB and the public API.
    guard let store = fuzzStore, let records = fuzzRecords, !bytes.isEmpty else { return 0 }
    do {
        try store.environment.write { try $0.put(bytes, forKey: fuzzID, in: records) }
    } catch {
        fatalError("could not store the input: \(error)")
    }
    switch Result(catching: { () throws(PaymentSessionError) in try store.session(id: fuzzID) }) {
    case .success(let session?):
        let text = session.jsonText()
        guard case .object(let members)? = try? JSONValue(parsing: text) else {
            fatalError("a decoded record printed invalid JSON: \(text)")
        }
        guard members["data"] == .object(session.data) else {
            fatalError("printed data differs from session.data: \(text)")
        }
    case .success(nil):
        fatalError("the record just written is missing")
    case .failure(.corruptRecord):
        break
    case .failure(let other):
        fatalError("unexpected error \(other)")
    }
    return 0
}
