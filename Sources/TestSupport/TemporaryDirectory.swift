import Foundation

/// A fresh directory under the system temporary directory, removed on `deinit`.
///
/// For tests and benchmarks only: every test gets its own real LMDB environment.
public final class TemporaryDirectory: Sendable {
    /// The directory's absolute path.
    public let path: String

    /// Creates `$TMPDIR/<prefix>-<random>`.
    public init(prefix: String = "lmdb-test") {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed in \(base): errno \(errno)")
        path = String(cString: created!)
    }

    /// `path` + `/` + `name`.
    public func appending(_ name: String) -> String { path + "/" + name }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}
