import ArgumentParser
import Foundation
import PaymentSessions

/// Writing results and failures the way the tool's contract says.
enum Output {
    /// Writes `text` and a newline to stdout.
    static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    /// Writes a JSON value as one line to stdout.
    static func json(_ value: JSONValue) {
        line(value.jsonText)
    }

    /// Writes text to stderr (no newline added).
    static func diagnostic(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// The exit status for each error code.
    static func exitStatus(for code: PaymentSessionError.Code) -> Int32 {
        switch code {
        case .notFound: 1
        case .invalidInput, .invalidTransition: 2
        case .conflict: 3
        case .storage: 4
        case .outcomeUnknown: 6
        }
    }

    /// Reports `error` as the last line of stderr and returns the exit code to throw.
    static func failure(_ error: any Error) -> ExitCode {
        let storeError: PaymentSessionError =
            switch error {
            case let error as PaymentSessionError: error
            case let error as InputError: .invalidInput(field: error.field, value: error.value, reason: error.reason)
            default:
                .storage(
                    StorageFailure(
                        backend: .lmdb, kind: .failed, operation: "payment-sessions", code: "",
                        message: String(describing: error)))
            }
        let body: JSONValue = [
            "error": ["code": .string(storeError.code.rawValue), "message": .string(storeError.description)]
        ]
        diagnostic(body.jsonText + "\n")
        return ExitCode(exitStatus(for: storeError.code))
    }
}

/// A command-line value that does not parse (`--data`, `--status`, a duration).
struct InputError: Error {
    var field: String
    var value: String?
    var reason: String
}

/// Runs a subcommand body, turning any failure into the contract's stderr line and exit status.
func runReporting(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        throw Output.failure(error)
    }
}

/// The `async` form of ``runReporting(_:)``, for commands that may talk to a server.
func runReporting(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        throw Output.failure(error)
    }
}

/// Parsing of option values shared by several subcommands.
enum Parse {
    static func status(_ text: String, field: String = "status") throws -> PaymentSessionStatus {
        guard let status = PaymentSessionStatus(rawValue: text) else {
            throw InputError(
                field: field, value: text,
                reason: "expected one of \(PaymentSessionStatus.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return status
    }

    /// `--data`: a JSON object given inline, as `@PATH` (read from a file) or as `@-`
    /// (read from stdin), as curl takes a request body. The file forms keep provider
    /// secrets off the command line, where every local user sees them through `ps`.
    /// Errors never echo the text: it may be a secret.
    static func data(_ argument: String) throws -> [String: JSONValue] {
        let text: String
        if argument.hasPrefix("@") {
            let path = String(argument.dropFirst())
            let bytes: Data
            if path == "-" {
                bytes = FileHandle.standardInput.readDataToEndOfFile()
            } else if let contents = FileManager.default.contents(atPath: path) {
                bytes = contents
            } else {
                throw InputError(field: "data", value: argument, reason: "the file cannot be read")
            }
            guard let decoded = String(validating: bytes, as: UTF8.self) else {
                throw InputError(field: "data", value: nil, reason: "is not valid UTF-8")
            }
            text = decoded
        } else {
            text = argument
        }
        let value: JSONValue
        do {
            value = try JSONValue(parsing: text)
        } catch {
            throw InputError(field: "data", value: nil, reason: error.description)
        }
        guard case .object(let members) = value else {
            throw InputError(field: "data", value: nil, reason: "expected a JSON object, got \(value.typeName)")
        }
        return members
    }

    /// A whole number option within `range`; anything else (not a number, too large for
    /// 64 bits, out of range) is `invalid_input`.
    static func integer(_ text: String, field: String, in range: ClosedRange<Int>) throws -> Int {
        guard let value = Int(text), range.contains(value) else {
            throw InputError(field: field, value: text, reason: "expected a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// An amount: a whole number of the currency's minor unit, 0 to 2^53 - 1.
    static func amount(_ text: String) throws -> Int {
        try integer(text, field: "amount", in: 0...SessionValidation.maxAmount)
    }

    /// A decimal option within `range` (finite); anything else is `invalid_input`.
    static func decimal(_ text: String, field: String, in range: ClosedRange<Double>, excludingLowerBound: Bool = false) throws -> Double {
        guard let value = Double(text), value.isFinite, range.contains(value), !(excludingLowerBound && value == range.lowerBound) else {
            let lower = excludingLowerBound ? "above" : "from"
            throw InputError(
                field: field, value: text, reason: "expected a number \(lower) \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// The longest `--older-than`: a hundred years. A longer age is a typing error, and
    /// its cutoff date would leave the range dates are stored in.
    static let maxAge: TimeInterval = 36_500 * 86_400

    /// `90s`, `30m`, `72h`, `7d` (also combined: `1h30m`) to seconds.
    static func duration(_ text: String) throws -> TimeInterval {
        var total: TimeInterval = 0
        var digits = ""
        var sawUnit = false
        for character in text {
            if character.isASCII && character.isNumber {
                digits.append(character)
                continue
            }
            let unit: TimeInterval? =
                switch character {
                case "s": 1
                case "m": 60
                case "h": 3600
                case "d": 86400
                default: nil
                }
            guard let unit, let amount = Double(digits) else {
                throw InputError(field: "older-than", value: text, reason: "expected a duration such as 90s, 30m, 72h or 7d")
            }
            total += amount * unit
            guard total <= maxAge else {
                throw InputError(field: "older-than", value: text, reason: "must be at most 36500d (a hundred years)")
            }
            digits = ""
            sawUnit = true
        }
        guard digits.isEmpty, sawUnit else {
            throw InputError(field: "older-than", value: text, reason: "expected a duration such as 90s, 30m, 72h or 7d")
        }
        return total
    }
}
