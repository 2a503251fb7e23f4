#if PostgreSQL
import Foundation
import NIOSSL
import PaymentSessionsCore
import PostgresNIO

/// How a store's connections are encrypted and the server verified: libpq's `sslmode`,
/// `sslrootcert`, `sslcert` and `sslkey`, read by ``PostgresStoreURL``.
///
/// | `sslmode` | Encrypted | Server verified |
/// |---|---|---|
/// | `disable` | never | no |
/// | `allow`, `prefer` | when the server offers TLS | against the root certificate, if there is one |
/// | `require` | always | against the root certificate, if there is one (as libpq) |
/// | `verify-ca` | always | its certificate chains to the root certificate |
/// | `verify-full` | always | as `verify-ca`, and the certificate names the host |
///
/// The root certificate is `sslrootcert`, else `~/.postgresql/root.crt` when it exists;
/// `sslrootcert=system` trusts the system's certificate authorities. `verify-ca` and
/// `verify-full` need one. `allow` is read as `prefer` (postgres-nio cannot try plain text
/// first); that encrypts where libpq would not, and connects where libpq would.
///
/// Certificates and keys are read when the URL is, so a missing or unreadable file is an
/// `PaymentSessionError/invalidInput(field:value:reason:)` naming it, not a failed connection.
public struct PostgresTLS: Sendable {
    /// libpq's `sslmode` values.
    public enum Mode: String, Sendable, CaseIterable {
        case disable, allow, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    /// The mode.
    public var mode: Mode
    /// The root certificate file the server is verified against, `system`, or `nil` (not verified).
    public var rootCertificate: String?
    /// The client certificate file presented to the server, if any.
    public var clientCertificate: String?
    /// The client certificate's private key file.
    public var clientKey: String?
    private var configuration: TLSConfiguration?
    private var context: NIOSSLContext?

    /// The TLS settings for `mode` and the files named; `isLocal` picks the default mode
    /// (`disable` on loopback and sockets, `require` elsewhere).
    init(
        mode text: String?, rootCertificate root: String?, certificate: String?, key: String?, isLocal: Bool, home: String?
    ) throws(PaymentSessionError) {
        let text = text ?? (isLocal ? "disable" : "require")
        guard let mode = Mode(rawValue: text) else {
            throw .invalidInput(field: "sslmode", value: text, reason: "use disable, allow, prefer, require, verify-ca or verify-full")
        }
        self.mode = mode
        let defaults = home.map { $0 + "/.postgresql/" }
        func existing(_ name: String) -> String? {
            guard let defaults, FileManager.default.fileExists(atPath: defaults + name) else { return nil }
            return defaults + name
        }
        rootCertificate = root ?? existing("root.crt")
        clientCertificate = certificate ?? existing("postgresql.crt")
        clientKey = key ?? existing("postgresql.key")
        guard mode != .disable else { return }
        var tls = TLSConfiguration.makeClientConfiguration()
        switch rootCertificate {
        case nil:
            guard mode != .verifyCA && mode != .verifyFull else {
                throw .invalidInput(
                    field: "sslrootcert", value: "",
                    reason: "sslmode=\(mode.rawValue) verifies the server against a root certificate: name one with sslrootcert (or sslrootcert=system)")
            }
            tls.certificateVerification = .none
        case "system":
            tls.trustRoots = .default
            tls.certificateVerification = mode == .verifyFull ? .fullVerification : .noHostnameVerification
        case let path?:
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
            } catch {
                throw .invalidInput(field: "sslrootcert", value: path, reason: "cannot be read as PEM certificates: \(error)")
            }
            tls.certificateVerification = mode == .verifyFull ? .fullVerification : .noHostnameVerification
        }
        if let clientCertificate {
            guard let clientKey else {
                throw .invalidInput(field: "sslkey", value: "", reason: "a client certificate (sslcert) needs its key (sslkey)")
            }
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMFile(clientCertificate).map { .certificate($0) }
            } catch {
                throw .invalidInput(field: "sslcert", value: clientCertificate, reason: "cannot be read as a PEM certificate: \(error)")
            }
            do {
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(file: clientKey, format: .pem))
            } catch {
                throw .invalidInput(field: "sslkey", value: clientKey, reason: "cannot be read as a PEM private key: \(error)")
            }
        }
        configuration = tls
        do {
            context = try NIOSSLContext(configuration: tls)
        } catch {
            throw .invalidInput(field: "sslmode", value: mode.rawValue, reason: "cannot set up TLS with these files: \(error)")
        }
    }

    /// postgres-nio's setting for this mode.
    var clientTLS: PostgresClient.Configuration.TLS {
        guard let configuration else { return .disable }
        return mode == .allow || mode == .prefer ? .prefer(configuration) : .require(configuration)
    }

    /// The same, for a single connection.
    var connectionTLS: PostgresConnection.Configuration.TLS {
        guard let context else { return .disable }
        return mode == .allow || mode == .prefer ? .prefer(context) : .require(context)
    }
}
#endif
