/// A range of keys in LMDB's default order: bytewise, shorter first on a common prefix.
///
/// ```swift
/// KeyRange.all
/// KeyRange.prefix(Array("cart_123\u{0}".utf8))   // every key starting with these bytes
/// KeyRange(from: start, to: end)                // start <= key < end
/// KeyRange(after: lastSeen)                     // lastSeen < key (pagination)
/// ```
public struct KeyRange: Sendable, Hashable {
    /// The lowest key in the range, and whether it is included.
    public var lower: (key: [UInt8], inclusive: Bool)? {
        get { lowerKey.map { ($0, lowerInclusive) } }
        set {
            lowerKey = newValue?.key
            lowerInclusive = newValue?.inclusive ?? true
        }
    }
    /// The highest key in the range, and whether it is included.
    public var upper: (key: [UInt8], inclusive: Bool)? {
        get { upperKey.map { ($0, upperInclusive) } }
        set {
            upperKey = newValue?.key
            upperInclusive = newValue?.inclusive ?? false
        }
    }

    private var lowerKey: [UInt8]?
    private var lowerInclusive = true
    private var upperKey: [UInt8]?
    private var upperInclusive = false
    /// Keys must also start with this prefix (set by ``prefix(_:)``).
    private(set) var requiredPrefix: [UInt8] = []

    /// Every key.
    public static let all = KeyRange()

    /// Every key.
    public init() {}

    /// Keys from `start` (included) up to `end` (excluded); either may be `nil`.
    public init(from start: [UInt8]?, to end: [UInt8]? = nil) {
        lowerKey = start
        upperKey = end
    }

    /// Keys strictly greater than `key`, up to `end` (excluded).
    public init(after key: [UInt8], to end: [UInt8]? = nil) {
        lowerKey = key
        lowerInclusive = false
        upperKey = end
    }

    /// Keys that begin with `prefix`.
    public static func prefix(_ prefix: [UInt8]) -> KeyRange {
        var range = KeyRange(from: prefix, to: nil)
        range.requiredPrefix = prefix
        return range
    }

    /// Keys that begin with `prefix` and are strictly greater than `key`.
    public static func prefix(_ prefix: [UInt8], after key: [UInt8]) -> KeyRange {
        var range = KeyRange(after: key, to: nil)
        range.requiredPrefix = prefix
        return range
    }

    /// Whether `key` lies in the range.
    public func contains(_ key: some Collection<UInt8>) -> Bool {
        if !requiredPrefix.isEmpty && !key.starts(with: requiredPrefix) { return false }
        if let lowerKey {
            let order = compare(key, lowerKey)
            if order < 0 || (order == 0 && !lowerInclusive) { return false }
        }
        if let upperKey {
            let order = compare(key, upperKey)
            if order > 0 || (order == 0 && !upperInclusive) { return false }
        }
        return true
    }

    /// The smallest key greater than every key that starts with `prefix`, or `nil` when
    /// there is none (the prefix is all 0xFF bytes).
    static func successor(ofPrefix prefix: [UInt8]) -> [UInt8]? {
        var bytes = prefix
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return nil
    }

    /// Where a forward scan starts: the lower key (or prefix, whichever is greater).
    var forwardStart: (key: [UInt8], inclusive: Bool)? {
        switch (lowerKey, requiredPrefix.isEmpty) {
        case (nil, true): return nil
        case (nil, false): return (requiredPrefix, true)
        case (let key?, true): return (key, lowerInclusive)
        case (let key?, false):
            return compare(key, requiredPrefix) >= 0 ? (key, lowerInclusive) : (requiredPrefix, true)
        }
    }

    /// Where a reverse scan starts: the first key that is *past* the range, whose
    /// predecessor is the last key in range; `nil` means "from the last key".
    var reverseStart: (key: [UInt8], inclusive: Bool)? {
        let prefixEnd = requiredPrefix.isEmpty ? nil : KeyRange.successor(ofPrefix: requiredPrefix)
        switch (upperKey, prefixEnd) {
        case (nil, nil): return nil
        case (nil, let end?): return (end, false)
        case (let key?, nil): return (key, upperInclusive)
        case (let key?, let end?):
            return compare(key, end) <= 0 ? (key, upperInclusive) : (end, false)
        }
    }
}

extension KeyRange {
    public static func == (lhs: KeyRange, rhs: KeyRange) -> Bool {
        lhs.lowerKey == rhs.lowerKey && lhs.lowerInclusive == rhs.lowerInclusive && lhs.upperKey == rhs.upperKey
            && lhs.upperInclusive == rhs.upperInclusive && lhs.requiredPrefix == rhs.requiredPrefix
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(lowerKey)
        hasher.combine(lowerInclusive)
        hasher.combine(upperKey)
        hasher.combine(upperInclusive)
        hasher.combine(requiredPrefix)
    }
}

/// LMDB's default key order: `memcmp` on the common length, then the shorter first.
func compare(_ lhs: some Collection<UInt8>, _ rhs: some Collection<UInt8>) -> Int {
    var left = lhs.makeIterator()
    var right = rhs.makeIterator()
    while true {
        switch (left.next(), right.next()) {
        case (nil, nil): return 0
        case (nil, _): return -1
        case (_, nil): return 1
        case (let a?, let b?):
            if a != b { return a < b ? -1 : 1 }
        }
    }
}
