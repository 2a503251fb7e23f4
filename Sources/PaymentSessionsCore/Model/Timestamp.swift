import StrictJSON
public import Foundation

/// Conversions between `Date`, the stored form (whole microseconds since 1970 UTC) and
/// RFC 3339 text with microseconds and a `Z` zone (`2026-11-24T23:43:53.123456Z`).
///
/// Every date a session carries has gone through ``date(microseconds:)``, so a session
/// equals itself after a trip through the store, JSON or an export. (`Date` is a
/// `Double` of seconds since 2001: it holds every microsecond exactly until about 2130;
/// the stored integer is exact for any date.)
public enum Timestamp {
    /// `date` as whole microseconds since 1970 UTC (rounded to the nearest).
    ///
    /// Dates beyond what 64 bits of microseconds hold (about 292,000 years either side of
    /// 1970: a purge cutoff a million years back, say) are clamped to the nearest end rather
    /// than trapping; a date that is not a number is 1970.
    public static func microseconds(_ date: Date) -> Int64 {
        let value = (date.timeIntervalSince1970 * 1_000_000).rounded()
        if value.isNaN { return 0 }
        // Int64.max is not a Double: 2^63 is the first Double past it.
        if value >= 0x1p63 { return .max }
        if value < -0x1p63 { return .min }
        return Int64(value)
    }

    /// The date `microseconds` after 1970 UTC.
    public static func date(microseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(microseconds) / 1_000_000)
    }

    /// `date` rounded to the microsecond, as the store keeps it.
    public static func normalized(_ date: Date) -> Date {
        Self.date(microseconds: microseconds(date))
    }

    /// RFC 3339 text in UTC with six fractional digits.
    public static func rfc3339(microseconds value: Int64) -> String {
        var days = value / 86_400_000_000
        var rest = value % 86_400_000_000
        if rest < 0 {
            rest += 86_400_000_000
            days -= 1
        }
        let (year, month, day) = civil(fromDays: days)
        let micros = Int(rest % 1_000_000)
        let seconds = Int(rest / 1_000_000)
        var text = ""
        text.reserveCapacity(27)
        func append(_ n: Int, width: Int) {
            let digits = String(n)
            for _ in digits.count..<max(width, digits.count) { text.append("0") }
            text.append(digits)
        }
        append(year, width: 4)
        text.append("-")
        append(month, width: 2)
        text.append("-")
        append(day, width: 2)
        text.append("T")
        append(seconds / 3600, width: 2)
        text.append(":")
        append(seconds / 60 % 60, width: 2)
        text.append(":")
        append(seconds % 60, width: 2)
        text.append(".")
        append(micros, width: 6)
        text.append("Z")
        return text
    }

    /// RFC 3339 text for `date`.
    public static func rfc3339(_ date: Date) -> String { rfc3339(microseconds: microseconds(date)) }

    /// Parses RFC 3339 `date-time` (`2026-11-24T23:43:53Z`, `2026-11-24T23:43:53.5+01:00`)
    /// to microseconds since 1970 UTC; digits beyond microseconds are truncated.
    /// `nil` when the text is not RFC 3339 or names an impossible date.
    public static func parseRFC3339(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count else { return nil }
            var value = 0
            for i in range {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                value = value * 10 + Int(b[i] - 0x30)
            }
            return value
        }
        guard b.count >= 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
            hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var micros = 0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if digits < 6 { micros = micros * 10 + Int(b[i] - 0x30) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 6)..<6 { micros *= 10 }
        }
        guard i < b.count else { return nil }
        var offsetSeconds = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            i += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard i + 6 == b.count, b[i + 3] == UInt8(ascii: ":"),
                let hours = number(i + 1..<i + 3), let minutes = number(i + 4..<i + 6), hours < 24, minutes < 60
            else { return nil }
            offsetSeconds = (hours * 3600 + minutes * 60) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
            i += 6
        default:
            return nil
        }
        guard i == b.count else { return nil }
        let days = Self.days(fromCivil: year, month, day)
        // A leap second (:60) is read as :59, the last representable second.
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offsetSeconds)
        return seconds * 1_000_000 + Int64(micros)
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    // Howard Hinnant's days-from-civil and civil-from-days algorithms (proleptic Gregorian).
    private static func days(fromCivil year: Int, _ month: Int, _ day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    private static func civil(fromDays value: Int64) -> (Int, Int, Int) {
        let z = value + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }
}
