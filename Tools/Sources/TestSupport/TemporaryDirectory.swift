import Foundation

/// A fresh directory under the system temporary directory, removed on `deinit`.
///
/// For tests and benchmarks only: every test gets its own real LMDB environment.
public final class TemporaryDirectory: Sendable {
    /// The directory's absolute path.
    public let path: String

    /// Creates `<base>/<prefix>-<random>`; `base` defaults to `$TMPDIR`, else `/tmp`.
    public init(prefix: String = "lmdb-test", base: String? = nil) {
        let base = base ?? ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed in \(base): errno \(errno)")
        path = String(cString: created!)
    }

    /// `path` + `/` + `name`.
    public func appending(_ name: String) -> String { path + "/" + name }

    /// A directory in memory (`/dev/shm`) when the system has one, else as ``init(prefix:base:)``:
    /// for tests that write many large files they read once.
    public static func inMemory(prefix: String) -> TemporaryDirectory {
        var status = stat()
        let shm = stat("/dev/shm", &status) == 0 && access("/dev/shm", W_OK) == 0
        return TemporaryDirectory(prefix: prefix, base: shm ? "/dev/shm" : nil)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
