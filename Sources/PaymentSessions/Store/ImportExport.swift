extension PaymentSessionStore {
    /// Writes every session as JSON Lines (one schema-form JSON object per line, id
    /// order), from one consistent snapshot, passing each line (without its newline) to
    /// `writeLine`.
    ///
    /// ```swift
    /// try store.exportJSONLines { line in print(line) }
    /// ```
    ///
    /// - Returns: How many sessions were written.
    @discardableResult
    public func exportJSONLines(_ writeLine: (String) throws -> Void) throws -> Int {
        try read { tx in
            var count = 0
            var failure: (any Error)?
            try tx.forEachRecord { session in
                do {
                    try writeLine(session.jsonText())
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

    /// Imports sessions in ``exportJSONLines(_:)``'s format, all or nothing: every line is
    /// parsed and checked first, then all are inserted in one transaction, keeping their
    /// ids, timestamps, statuses and selections. Blank lines are skipped.
    ///
    /// - Throws: ``PaymentSessionError/importFailed(line:error:)`` naming the first bad
    ///   line (malformed JSON, a field that breaks the rules, an id or (cart, provider)
    ///   that exists already or twice in the input, two selected sessions of one cart);
    ///   nothing is imported then.
    /// - Returns: How many sessions were imported.
    @discardableResult
    public func importJSONLines(_ text: String) throws(PaymentSessionError) -> Int {
        var sessions: [(line: Int, session: PaymentSession)] = []
        var lineNumber = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let trimmed = line.hasSuffix("\r") ? line.dropLast() : line
            if trimmed.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            do throws(PaymentSessionError) {
                sessions.append((lineNumber, try PaymentSession(jsonText: String(trimmed))))
            } catch {
                throw .importFailed(line: lineNumber, error: error)
            }
        }
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
