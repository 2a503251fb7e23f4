/// Removes the whitespace between the tokens of a JSON text, leaving strings as they are.
///
/// Why: `data` given as text (a provider's response) is stored as given, and printed as
/// stored; compacting it keeps records small and the store's JSON output in one form
/// whichever way `data` arrived.
package enum JSONCompaction {
    /// `text` without whitespace outside strings.
    ///
    /// - Precondition: `text` is valid JSON (checked by ``JSONParser``): every string is
    ///   closed and every backslash starts an escape.
    package static func compacted(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: text.count) { output, count in
            var inString = false
            var index = 0
            while index < text.count {
                let byte = text[index]
                index += 1
                if inString {
                    if byte == UInt8(ascii: "\\") {
                        // The escaped byte is copied with its backslash: `\"` ends no string.
                        output[count] = byte
                        output[count + 1] = text[index]
                        count += 2
                        index += 1
                        continue
                    }
                    if byte == UInt8(ascii: "\"") { inString = false }
                } else {
                    switch byte {
                    case 0x20, 0x09, 0x0A, 0x0D: continue
                    case UInt8(ascii: "\""): inString = true
                    default: break
                    }
                }
                output[count] = byte
                count += 1
            }
        }
    }
}
