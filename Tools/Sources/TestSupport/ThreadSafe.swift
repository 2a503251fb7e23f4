import Foundation

/// A counter that several threads may add to.
public final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    public init() {}

    public func add() { lock.withLock { count += 1 } }
    public var value: Int { lock.withLock { count } }
}

/// A one-way flag that several threads may raise and read.
public final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false

    public init() {}

    public func set() { lock.withLock { raised = true } }
    public var value: Bool { lock.withLock { raised } }
}

/// A list that threads append to.
public final class SharedList<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [Element] = []

    public init() {}

    public func append(_ item: Element) { lock.withLock { items.append(item) } }
    public var values: [Element] { lock.withLock { items } }
}

/// A value that tasks and threads share, read and changed under a lock.
public final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var shared: Value

    public init(_ value: Value) { shared = value }

    /// Runs `body` on the value under the lock.
    public func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&shared)
    }

    /// A copy of the value.
    public var value: Value { withLock { $0 } }
}
