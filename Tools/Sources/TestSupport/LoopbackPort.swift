import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A free loopback TCP port for a test server that may stop and listen again on the same
/// port (a restarted PostgreSQL, a webhook receiver brought back).
///
/// Chosen **below the system's ephemeral range** (`ip_local_port_range`): a port from that
/// range (what binding port 0 gives) is free for anyone once its server stops, and the next
/// outgoing connection of any test may take it as its local port, so the restart fails with
/// `EADDRINUSE` (seen with the webhook receiver: 2 full runs of the service's tests in 5).
/// Below the range, only a server that names the port explicitly can take it.
public enum LoopbackPort {
    /// A port that nothing listens on now, from below the ephemeral range.
    public static func free() -> Int {
        let low = ephemeralRangeStart()
        let candidates = max(1024, low - 12_000)..<low
        for _ in 0..<200 {
            let port = Int.random(in: candidates)
            if isFree(port) { return port }
        }
        return 0
    }

    /// Whether binding 127.0.0.1:`port` succeeds now.
    public static func isFree(_ port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { return false }
        defer { close(socket) }
        var reuse: Int32 = 1
        setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0
    }

    /// The first port of the ephemeral range (32768 when it cannot be read).
    static func ephemeralRangeStart() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8),
            let first = text.split(whereSeparator: \.isWhitespace).first, let low = Int(first), low > 2048
        else { return 32_768 }
        return low
    }
}
