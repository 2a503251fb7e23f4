extension PaymentSessionStore {
    /// Writes every session as JSON Lines (one schema-form JSON object per line, id
    /// order), from one consistent snapshot, passing each line (without its newline) to
    /// `writeLine`.
    ///
    /// ```swift
    /// try store.exportJSONLines { line in print(line) }
    /// ```
    ///
    /// Every line is read back as `importJSONLines(_:)` reads it before it is passed
    /// on, so that export never writes a line that import would refuse: a record that
    /// decodes but breaks the input rules (a checksum forged around `data` that is not
    /// JSON, a version 1 record without a checksum whose `updated_at` precedes its
    /// `created_at`) stops the export with `PaymentSessionError/corruptRecord(key:reason:)`
    /// naming it, and ``verify()`` reports it. Records are decoded a chunk at a time and
    /// `writeLine` runs outside the map, so a slow consumer does not hold back the map's
    /// growth.
    ///
    /// - Returns: How many sessions were written.
    @discardableResult
    public func exportJSONLines(_ writeLine: (String) throws -> Void) throws -> Int {
        try exportLines(writeLine)
    }

    func exportLines(_ writeLine: (String) throws -> Void) throws -> Int {
        try performRead(as: "exportJSONLines(_:)") { tx in
            var count = 0
            var failure: (any Error)?
            try tx.forEachRecord { session throws(PaymentSessionError) in
                let line = try SessionLines.exportLine(session)
                do {
                    try writeLine(line)
                } catch {
                    failure = error
                    return false
                }
                count += 1
                return true
            }
            if let failure { throw failure }
            return count
        }
    }

    /// Imports sessions in `exportJSONLines(_:)`'s format, all or nothing: every line is
    /// parsed and checked first, then all are inserted in one transaction, keeping their
    /// ids, timestamps, statuses and selections. Blank lines are skipped; lines may end
    /// in `\n`, `\r\n` or `\r`, and a leading byte order mark is ignored, so files
    /// written on other systems import as they are.
    ///
    /// - Throws: `PaymentSessionError/importFailed(line:error:)` naming the first bad
    ///   line (malformed JSON, a field that breaks the rules, an id or (cart, provider)
    ///   that exists already or twice in the input, two selected sessions of one cart);
    ///   nothing is imported then.
    /// - Returns: How many sessions were imported.
    @discardableResult
    public func importJSONLines(_ text: String) throws(PaymentSessionError) -> Int {
        try importLines(text)
    }

    func importLines(_ text: String) throws(PaymentSessionError) -> Int {
        let sessions = try SessionLines.parse(text)
        return try typedWrite { tx throws(PaymentSessionError) in
            for (line, session) in sessions {
                do throws(PaymentSessionError) {
                    try tx.insert(session)
                } catch {
                    throw .importFailed(line: line, error: error)
                }
            }
            return sessions.count
        }
    }
}
