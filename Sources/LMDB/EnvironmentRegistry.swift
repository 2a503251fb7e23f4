import Foundation

/// The one piece of global state: which directories this process has open.
///
/// LMDB's locks are per process (POSIX `fcntl` locks on `lock.mdb`): a second
/// `mdb_env_open` of the same directory in one process, then closing either handle,
/// silently drops the locks the other relies on. So every open of a path goes through
/// here and returns the live ``Environment`` when there is one.
final class EnvironmentRegistry: @unchecked Sendable {
    static let shared = EnvironmentRegistry()

    private struct Entry {
        weak var environment: Environment?
    }

    private let condition = NSCondition()
    private var entries: [String: Entry] = [:]

    /// The live environment for `path`, or the one `open` creates. Holding the lock
    /// while opening serialises opens; an entry whose environment is being deinitialised
    /// (weak reference already `nil`) is waited out, so that `mdb_env_close` finishes
    /// before the same path is opened again.
    func environment(
        at path: String, options: Environment.Options, open: () throws -> Environment
    ) throws -> Environment {
        condition.lock()
        defer { condition.unlock() }
        while let entry = entries[path] {
            if let live = entry.environment {
                if let reason = live.options.incompatibility(with: options) {
                    throw LMDBError(.incompatibleOptions(reason: reason), operation: "open(\(path))")
                }
                return live
            }
            condition.wait()
        }
        let environment = try open()
        entries[path] = Entry(environment: environment)
        return environment
    }

    /// Called by a closing environment after `mdb_env_close` returned.
    func remove(path: String) {
        condition.lock()
        entries[path] = nil
        condition.broadcast()
        condition.unlock()
    }
}
