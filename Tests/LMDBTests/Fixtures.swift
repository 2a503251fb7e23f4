import LMDB
import TestSupport

/// A fresh environment in its own temporary directory, kept alive with the directory.
struct Fixture {
    let directory = TemporaryDirectory(prefix: "lmdb")
    let env: Environment
    let db: Database

    init(_ configure: (inout Environment.Options) -> Void = { _ in }) throws {
        var options = Environment.Options()
        options.mapSize = 8 << 20
        configure(&options)
        env = try Environment.open(path: directory.path, options: options)
        db = try env.database(named: "test")
    }
}

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }

func string(_ bytes: [UInt8]?) -> String? { bytes.map { String(decoding: $0, as: UTF8.self) } }

/// Whether `body` throws an `LMDBError` whose code satisfies `matches`.
func throwsLMDB(_ matches: (LMDBError.Code) -> Bool, _ body: () throws -> Void) -> Bool {
    do {
        try body()
        return false
    } catch let error as LMDBError {
        return matches(error.code)
    } catch {
        return false
    }
}
