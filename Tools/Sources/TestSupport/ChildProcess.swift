import Foundation

/// A child process started from an executable this package builds, for multi-process
/// tests, with pipes on its stdin, stdout and stderr.
///
/// Spawned with `posix_spawn`, never `fork` (an LMDB environment must not be used in a
/// forked child), and reaped with `waitpid` by whoever waits first. Not `Foundation.Process`:
/// its `waitUntilExit` relies on a monitoring thread and the waiting thread's run loop, and
/// was seen to wait for ever for a child already killed, from a test on a thread of its own.
public final class ChildProcess: @unchecked Sendable {
    /// The directory that holds this package's built products (next to the test bundle).
    public static var productsDirectory: URL {
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // `swift test` runs `<products>/<name>PackageTests.xctest` (a file on Linux,
        // a bundle on macOS); walk up to the directory that holds it.
        while url.pathExtension != "xctest" && url.path != "/" { url.deleteLastPathComponent() }
        return url.deletingLastPathComponent()
    }

    /// The finished result of a child.
    public struct Output: Sendable {
        /// Exit status, or the signal number for a child killed by a signal.
        public var status: Int32
        /// Whether the child was killed by a signal.
        public var killedBySignal: Bool
        /// Everything it wrote to stdout.
        public var stdout: String
        /// Everything it wrote to stderr.
        public var stderr: String
    }

    /// The child's process id.
    public let pid: pid_t
    private let input: FileHandle
    private let output: FileHandle
    private let errors: FileHandle
    private let exit = NSCondition()
    /// The `waitpid` status, once reaped.
    private var status: Int32?
    private var reaping = false

    /// Starts `executable` (a product of this package) with `arguments`.
    public convenience init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        try self.init(
            path: ChildProcess.productsDirectory.appendingPathComponent(executable).path, arguments, environment: environment)
    }

    /// Writing to a child that exited without reading its input must be an `EPIPE` error
    /// for ``finish(stdin:)`` to pass over, not a `SIGPIPE` that kills the whole test
    /// process (which the default action does). Set once, before the first child starts;
    /// children get the default back.
    private static let brokenPipesAreErrors: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34 and later), which Swift's
    /// Glibc module does not declare; `nil` where the C library lacks it.
    private static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else {
            return nil
        }
        return unsafeBitCast(
            symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Starts the executable at `path` with `arguments`.
    public init(path: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        Self.brokenPipesAreErrors
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        var pipes: [[Int32]] = []
        for _ in 0..<3 {
            // Close-on-exec: a child spawned meanwhile by another thread must not inherit
            // these ends, or this child's reader waits for that one to exit before EOF.
            var fds: [Int32] = [0, 0]
            guard closeOnExecPipe(&fds, O_CLOEXEC) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
            pipes.append(fds)
        }
        // The child reads end 0 of the first pipe and writes end 1 of the others.
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipes[0][0], 0)
        posix_spawn_file_actions_adddup2(&actions, pipes[1][1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipes[2][1], 2)
        // And nothing else: a descriptor another thread opened without close-on-exec
        // (liblmdb opens data.mdb so, and the store marks it only once the open returns)
        // would otherwise live as long as this child, keeping a store's file open.
        _ = Self.closeFrom?(&actions, 3)
        var argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = merged.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var child: pid_t = 0
        // The child gets SIGPIPE's default action back (an ignored signal stays ignored
        // across exec): it must meet a closed pipe as it would outside the tests.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))
        let spawned = posix_spawn(&child, path, &actions, &attributes, &argv, &envp)
        close(pipes[0][0])
        close(pipes[1][1])
        close(pipes[2][1])
        guard spawned == 0 else {
            for fd in [pipes[0][1], pipes[1][0], pipes[2][0]] { close(fd) }
            throw POSIXError(POSIXErrorCode(rawValue: spawned) ?? .EIO, userInfo: [NSFilePathErrorKey: path])
        }
        pid = child
        input = FileHandle(fileDescriptor: pipes[0][1], closeOnDealloc: true)
        output = FileHandle(fileDescriptor: pipes[1][0], closeOnDealloc: true)
        errors = FileHandle(fileDescriptor: pipes[2][0], closeOnDealloc: true)
    }

    /// Runs `executable` to completion, feeding it `stdin`.
    public static func run(
        _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]
    ) throws -> Output {
        try ChildProcess(executable, arguments, environment: environment).finish(stdin: stdin)
    }

    /// Writes `stdin` (if any), closes it, reads both output pipes to the end and waits.
    /// A child may exit without reading its input (a command refused before it reads):
    /// what it did not read is dropped.
    public func finish(stdin: String? = nil) throws -> Output {
        if let stdin { try feed(stdin) }
        try? input.close()
        // Drain stderr on another thread so that a chatty child cannot block on either pipe.
        let stderrData = Handoff()
        let reader = Thread { [errors] in stderrData.put(errors.readDataToEndOfFile()) }
        reader.start()
        let stdoutData = output.readDataToEndOfFile()
        let status = waitForExit()
        let signaled = status & 0x7f != 0 && status & 0x7f != 0x7f
        return Output(
            status: signaled ? status & 0x7f : (status >> 8) & 0xff,
            killedBySignal: signaled,
            stdout: String(decoding: stdoutData, as: UTF8.self),
            stderr: String(decoding: stderrData.take(), as: UTF8.self))
    }

    /// Writes all of `text` to the child's stdin, or as much as it takes before it closes
    /// its end.
    private func feed(_ text: String) throws {
        let bytes = Array(text.utf8)
        var written = 0
        while written < bytes.count {
            let count = bytes[written...].withUnsafeBytes { write(input.fileDescriptor, $0.baseAddress, $0.count) }
            if count >= 0 {
                written += count
            } else if errno == EPIPE {
                return
            } else if errno != EINTR {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
            }
        }
    }

    /// Reads one line of stdout (blocking), without its newline; `nil` at end of file.
    public func readLine() -> String? {
        var bytes: [UInt8] = []
        while true {
            guard let byte = output.readData(ofLength: 1).first else {
                return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }

    /// Sends SIGKILL and waits until the child is gone.
    public func kill() {
        // Once reaped, the id may belong to another process.
        if exit.withLock({ status == nil }) { Foundation.kill(pid, SIGKILL) }
        _ = waitForExit()
    }

    /// Blocks until the child has exited; its raw `waitpid` status.
    @discardableResult
    public func waitForExit() -> Int32 {
        exit.lock()
        while status == nil && reaping { exit.wait() }
        if let status {
            exit.unlock()
            return status
        }
        reaping = true
        exit.unlock()
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) == -1 && errno == EINTR {}
        exit.lock()
        status = raw
        reaping = false
        exit.broadcast()
        exit.unlock()
        return raw
    }
}

/// A value handed once from a reader thread to the thread that waits for it.
private final class Handoff: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Data?

    func put(_ data: Data) {
        condition.lock()
        value = data
        condition.broadcast()
        condition.unlock()
    }

    func take() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let value { return value }
            condition.wait()
        }
    }
}

/// `pipe2`, which Glibc's Swift module leaves out (it is declared for `_GNU_SOURCE` only):
/// a pipe whose ends are close-on-exec from the start, with no moment in which another
/// thread's spawn could inherit them.
@_silgen_name("pipe2")
private func closeOnExecPipe(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32
