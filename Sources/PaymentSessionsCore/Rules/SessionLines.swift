/// The JSON Lines form of a store (export and import), the same on every backend.
package enum SessionLines {
    /// Parses every non-blank line of `text` as a session in the schema's JSON form.
    ///
    /// - Throws: ``PaymentSessionError/importFailed(line:error:)`` naming the first bad line.
    package static func parse(_ text: String) throws(PaymentSessionError) -> [(line: Int, session: PaymentSession)] {
        var sessions: [(line: Int, session: PaymentSession)] = []
        var lineNumber = 0
        for line in lines(of: text) {
            lineNumber += 1
            if line.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            do throws(PaymentSessionError) {
                sessions.append((lineNumber, try PaymentSession(jsonText: String(line))))
            } catch {
                throw .importFailed(line: lineNumber, error: error)
            }
        }
        return sessions
    }

    /// `session`'s export line, checked to read back as import reads it: export never
    /// writes a line that import would refuse.
    package static func exportLine(_ session: PaymentSession) throws(PaymentSessionError) -> String {
        let line = session.jsonText()
        do {
            _ = try PaymentSession(jsonText: line)
        } catch {
            throw .corruptRecord(key: session.id, reason: "its JSON form would not import: \(error)")
        }
        return line
    }

    /// The lines of `text`, split at `\n`, `\r\n` or a lone `\r`, without a leading
    /// byte order mark.
    ///
    /// Split on Unicode scalars: Swift counts `\r\n` as one `Character`, so splitting a
    /// `String` at `"\n"` leaves Windows lines whole.
    package static func lines(of text: String) -> [Substring] {
        var scalars = text.unicodeScalars[...]
        if scalars.first == "\u{FEFF}" { scalars = scalars.dropFirst() }
        var lines: [Substring] = []
        var start = scalars.startIndex
        var index = start
        while index < scalars.endIndex {
            let scalar = scalars[index]
            guard scalar == "\n" || scalar == "\r" else {
                index = scalars.index(after: index)
                continue
            }
            lines.append(Substring(scalars[start..<index]))
            index = scalars.index(after: index)
            if scalar == "\r", index < scalars.endIndex, scalars[index] == "\n" { index = scalars.index(after: index) }
            start = index
        }
        lines.append(Substring(scalars[start..<scalars.endIndex]))
        return lines
    }
}
