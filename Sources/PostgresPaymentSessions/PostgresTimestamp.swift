#if PostgreSQL
import NIOCore
import PostgresNIO

/// A `timestamptz` value as the model keeps it: microseconds since 1970 UTC.
///
/// PostgreSQL sends a `timestamptz` in binary as microseconds since 2000 UTC, so the two
/// convert exactly. `Date`, postgres-nio's own mapping, goes through a `Double` of
/// seconds and may move a value by a microsecond, which would break the rules'
/// comparisons of `updated_at` (a stale-write check, say) on a value read back.
///
/// A value outside PostgreSQL's range (before 4714 BC or from 294277 AD; a purge cutoff a
/// million years back, say) is sent as `-infinity` or `infinity`, which compare as the
/// nearest end; a stored value can only be one of those if written by hand, and then the
/// row reads as corrupt.
struct PostgresTimestamp: PostgresNonThrowingEncodable, PostgresDecodable {
    /// Microseconds since 1970-01-01 00:00 UTC.
    var microseconds: Int64

    init(_ microseconds: Int64) { self.microseconds = microseconds }

    /// Microseconds from 1970 to 2000, the epoch of PostgreSQL's encoding.
    private static let epochShift: Int64 = 946_684_800_000_000
    /// PostgreSQL's finite range, in its own epoch: `MIN_TIMESTAMP` up to, not including,
    /// `END_TIMESTAMP`.
    private static let finite: Range<Int64> = -211_813_488_000_000_000..<9_223_371_331_200_000_000

    static var psqlType: PostgresDataType { .timestamptz }
    static var psqlFormat: PostgresFormat { .binary }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        let (shifted, overflow) = microseconds.subtractingReportingOverflow(Self.epochShift)
        let value: Int64 =
            if overflow || shifted < Self.finite.lowerBound {
                .min  // -infinity
            } else if shifted >= Self.finite.upperBound {
                .max  // infinity
            } else {
                shifted
            }
        buffer.writeInteger(value)
    }

    init<JSONDecoder: PostgresJSONDecoder>(
        from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
        context: PostgresDecodingContext<JSONDecoder>
    ) throws {
        guard type == .timestamptz, format == .binary else { throw PostgresDecodingError.Code.typeMismatch }
        guard buffer.readableBytes == 8, let shifted = buffer.readInteger(as: Int64.self),
            Self.finite.contains(shifted)
        else { throw PostgresDecodingError.Code.failure }
        // PostgreSQL's last 30 years (past 294247 AD) lie beyond 64 bits of microseconds since 1970.
        let (value, overflow) = shifted.addingReportingOverflow(Self.epochShift)
        guard !overflow else { throw PostgresDecodingError.Code.failure }
        microseconds = value
    }
}
#endif
