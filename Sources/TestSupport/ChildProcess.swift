import Foundation

/// A child process started from an executable this package builds, for multi-process
/// tests, with pipes on its stdin, stdout and stderr.
///
/// Children are spawned with `Foundation.Process` (posix_spawn), never `fork`: an LMDB
/// environment must not be used in a forked child.
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

    /// The running process.
    public let process: Process
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()

    /// Starts `executable` (a product of this package) with `arguments`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        process = Process()
        process.executableURL = ChildProcess.productsDirectory.appendingPathComponent(executable)
        process.arguments = arguments
        var merged = ProcessInfo.processInfo.environment
        for (key, value) in environment { merged[key] = value }
        process.environment = merged
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
    }

    /// Runs `executable` to completion, feeding it `stdin`.
    public static func run(
        _ executable: String, _ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]
    ) throws -> Output {
        try ChildProcess(executable, arguments, environment: environment).finish(stdin: stdin)
    }

    /// Writes `stdin` (if any), closes it, reads both output pipes to the end and waits.
    public func finish(stdin: String? = nil) throws -> Output {
        if let stdin { try input.fileHandleForWriting.write(contentsOf: Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Drain stderr on another thread so that a chatty child cannot block on either pipe.
        let stderrData = Handoff()
        let reader = Thread { [errors] in stderrData.put(errors.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let stdoutData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Output(
            status: process.terminationStatus,
            killedBySignal: process.terminationReason == .uncaughtSignal,
            stdout: String(decoding: stdoutData, as: UTF8.self),
            stderr: String(decoding: stderrData.take(), as: UTF8.self))
    }

    /// Reads one line of stdout (blocking), without its newline; `nil` at end of file.
    public func readLine() -> String? {
        var bytes: [UInt8] = []
        while true {
            guard let byte = output.fileHandleForReading.readData(ofLength: 1).first else {
                return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
            }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
    }

    /// Sends SIGKILL and waits until the child is gone.
    public func kill() {
        Foundation.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
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
