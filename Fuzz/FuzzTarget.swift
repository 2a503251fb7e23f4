// A libFuzzer target for the two parsers of untrusted bytes: the stored record decoder
// (bytes written as a session record, read back through `session(id:)`) and the JSON
// import (`PaymentSession(jsonText:)`). Build and run with Fuzz/run.sh.
//
// A finding is a crash, a sanitizer report, or a broken promise checked below: a record
// that decodes must print as valid JSON whose `data` is the session's `data`, and export
// must either refuse it (`corruptRecord`: a checksum can be forged around `data` that is
// not JSON, which only a full check sees) or write a line that import reads back as the
// same session. Export and import must never disagree.
import Foundation
import Logging
@_spi(StorageTesting) import PaymentSessions
import LMDB

/// One store for the whole run, in a temporary directory, without fsync.
let fuzzStore: PaymentSessionStore? = {
    var options = PaymentSessionStore.Options()
    options.environment.durability = .noSync
    // Most inputs are corrupt records, which the store would log as it meets them.
    options.logger = Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() }
    return try? PaymentSessionStore(path: NSTemporaryDirectory() + "payment-sessions-fuzz-\(getpid())", options: options)
}()
let fuzzID = "ps_01JD0000000000000000000000"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))

    // The JSON import: a session line, or a typed error.
    if let text = String(validating: bytes, as: UTF8.self) {
        _ = try? PaymentSession(jsonText: text)
    }

    // The record decoder, through LMDB and the public API.
    guard let store = fuzzStore, !bytes.isEmpty else { return 0 }
    do {
        try store.rawStorage.put(bytes, forKey: fuzzID, in: .sessions)
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
        var lines: [String] = []
        do {
            try store.exportJSONLines { lines.append($0) }
            guard lines.count == 1 else { fatalError("export wrote \(lines.count) lines for one record") }
            let reread = try PaymentSession(jsonText: lines[0])
            guard reread == session else { fatalError("import reads the exported line differently: \(lines[0])") }
        } catch PaymentSessionError.corruptRecord {
            // Refused as a whole, before anything import would refuse was written.
            guard lines.isEmpty else { fatalError("export wrote a line, then refused the record") }
        } catch {
            fatalError("export or import of a decoded record failed: \(error) \(lines)")
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
