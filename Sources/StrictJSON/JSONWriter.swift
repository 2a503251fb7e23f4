/// Writes compact JSON text: object keys sorted, strings escaped per RFC 8259,
/// non-ASCII kept as UTF-8.
///
/// It writes into its own growable buffer rather than an `[UInt8]`: `Array.append`
/// costs a uniqueness and capacity check per call and takes a generic path for buffers,
/// which made encoding `data` a large part of a create. Noncopyable, so that the
/// buffer has one owner and is freed once.
package struct JSONWriter: ~Copyable {
    private var storage: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    /// Bytes written so far.
    package private(set) var count = 0
    /// The deepest nesting of values inside the outermost array or object that may be
    /// written (its members are at depth 1); deeper, writing stops and
    /// ``exceededMaxDepth`` is set. Checked while writing, so that validating a depth
    /// limit costs no walk of its own.
    package var maxDepth = Int.max
    /// Set when a value deeper than ``maxDepth`` was met; the text is then incomplete.
    package private(set) var exceededMaxDepth = false
    /// The depth of the values being written.
    private var level = 0

    package init(reservingCapacity capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    /// The text written so far, copied.
    package var bytes: [UInt8] { Array(UnsafeBufferPointer(start: storage, count: count)) }

    /// The text written so far as a string.
    package var text: String { String(decoding: UnsafeBufferPointer(start: storage, count: count), as: UTF8.self) }

    /// Makes room for `extra` more bytes.
    @inline(__always)
    private mutating func reserve(_ extra: Int) {
        if count &+ extra > capacity { grow(toHold: count + extra) }
    }

    private mutating func grow(toHold needed: Int) {
        let larger = max(capacity * 2, needed)
        let moved = UnsafeMutablePointer<UInt8>.allocate(capacity: larger)
        moved.update(from: storage, count: count)
        storage.deallocate()
        storage = moved
        capacity = larger
    }

    @inline(__always)
    private mutating func append(_ byte: UInt8) {
        reserve(1)
        storage[count] = byte
        count &+= 1
    }

    @inline(__always)
    private mutating func append(_ buffer: UnsafeBufferPointer<UInt8>) {
        guard let base = buffer.baseAddress else { return }
        reserve(buffer.count)
        (storage + count).update(from: base, count: buffer.count)
        count &+= buffer.count
    }

    package mutating func write(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let flag): raw(flag ? "true" : "false")
        case .number(let number): appendUTF8(of: number.text)
        case .string(let string): write(string: string)
        case .array(let elements):
            append(UInt8(ascii: "["))
            level &+= 1
            for (offset, element) in elements.enumerated() {
                if level > maxDepth { exceededMaxDepth = true }
                if exceededMaxDepth { return }  // the text is abandoned
                if offset > 0 { append(UInt8(ascii: ",")) }
                write(element)
            }
            level &-= 1
            append(UInt8(ascii: "]"))
        case .object(let members):
            write(object: members)
        }
    }

    package mutating func write(object members: [String: JSONValue]) {
        append(UInt8(ascii: "{"))
        level &+= 1
        // Keys are sorted as they are collected, next to their positions in the dictionary
        // (buffers on the stack for small objects): comparing the stored keys instead of
        // looking both up by position at every comparison, with an insertion sort that
        // takes no closure (objects are small), and the depth check folded in.
        let count = members.count
        withUnsafeTemporaryAllocation(of: String.self, capacity: count) { keys in
            withUnsafeTemporaryAllocation(of: Dictionary<String, JSONValue>.Index.self, capacity: count) { positions in
                var filled = 0
                var position = members.startIndex
                while filled < count {
                    let key = members.keys[position]
                    var slot = filled
                    while slot > 0, key < keys[slot - 1] {
                        keys.initializeElement(at: slot, to: keys.moveElement(from: slot - 1))
                        positions.initializeElement(at: slot, to: positions.moveElement(from: slot - 1))
                        slot -= 1
                    }
                    keys.initializeElement(at: slot, to: key)
                    positions.initializeElement(at: slot, to: position)
                    filled += 1
                    members.formIndex(after: &position)
                }
                for offset in 0..<filled {
                    if level > maxDepth { exceededMaxDepth = true }
                    if exceededMaxDepth { break }  // the text is abandoned
                    if offset > 0 { append(UInt8(ascii: ",")) }
                    write(string: keys[offset])
                    append(UInt8(ascii: ":"))
                    write(members.values[positions[offset]])
                }
                keys.deinitialize()
                positions.deinitialize()
            }
        }
        if exceededMaxDepth { return }
        level &-= 1
        append(UInt8(ascii: "}"))
    }

    /// Appends JSON text that is already valid and compact, verbatim.
    package mutating func append(json: some RandomAccessCollection<UInt8>) {
        if json.withContiguousStorageIfAvailable({ append($0) }) == nil {
            for byte in json { append(byte) }
        }
    }

    /// Appends `text` verbatim (for literals and punctuation).
    package mutating func raw(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    /// Appends `"key":`.
    package mutating func key(_ name: StaticString) {
        append(UInt8(ascii: "\""))
        raw(name)
        append(UInt8(ascii: "\""))
        append(UInt8(ascii: ":"))
    }

    package mutating func write(string: String) {
        var string = string
        string.withUTF8 { write(utf8: $0) }
    }

    /// Writes UTF-8 text as a JSON string, escaping what JSON requires.
    package mutating func write(utf8: UnsafeBufferPointer<UInt8>) {
        // Most strings need no escaping: copy their UTF-8 in one go when that is so.
        var position = ByteScan.firstToEscape(utf8, from: 0)
        while position < utf8.count, !Self.needsEscape(utf8[position]) { position += 1 }
        if position == utf8.count {
            reserve(utf8.count + 2)
            append(UInt8(ascii: "\""))
            append(utf8)
            append(UInt8(ascii: "\""))
            return
        }
        append(UInt8(ascii: "\""))
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                append(0x5C)
                append(byte)
            case 0x0A: escape(UInt8(ascii: "n"))
            case 0x0D: escape(UInt8(ascii: "r"))
            case 0x09: escape(UInt8(ascii: "t"))
            case 0x00..<0x20:
                escape(UInt8(ascii: "u"))
                append(0x30)
                append(0x30)
                append(hexDigit(byte >> 4))
                append(hexDigit(byte & 0xF))
            default: append(byte)
            }
        }
        append(UInt8(ascii: "\""))
    }

    /// Appends `text`'s UTF-8 (contiguous for native strings: one copy).
    private mutating func appendUTF8(of text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ append($0) }) == nil {
            for byte in text.utf8 { append(byte) }
        }
    }

    private static func needsEscape(_ byte: UInt8) -> Bool {
        byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\")
    }

    private mutating func escape(_ letter: UInt8) {
        append(0x5C)
        append(letter)
    }

    private func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }
}
