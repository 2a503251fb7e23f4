import Foundation

/// A throwaway certificate authority for TLS tests, made with the `openssl` tool in a
/// temporary directory: it signs server certificates for the names asked and client
/// certificates for a role. Keys are P-256, valid for two days.
public final class TestCertificateAuthority: Sendable {
    /// The authority's certificate (PEM), to trust as `sslrootcert`.
    public let certificate: String
    private let key: String
    private let directory: String
    private let name: String

    /// A certificate and its key, as files.
    public struct Issued: Sendable {
        public let certificate: String
        public let key: String
    }

    /// A new authority called `name`, its files in `directory`.
    public init(name: String, in directory: String) throws {
        self.name = name
        self.directory = directory
        certificate = directory + "/\(name).crt"
        key = directory + "/\(name).key"
        try Self.openssl([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=\(name)", "-keyout", key, "-out", certificate,
        ])
    }

    /// A server certificate naming `dnsNames` and `ipAddresses` (subject alternative names).
    public func serverCertificate(file: String, dnsNames: [String] = [], ipAddresses: [String] = []) throws -> Issued {
        let names = dnsNames.map { "DNS:\($0)" } + ipAddresses.map { "IP:\($0)" }
        return try issue(
            file: file, subject: dnsNames.first ?? ipAddresses.first ?? "server",
            extensions: "subjectAltName=\(names.joined(separator: ","))\nextendedKeyUsage=serverAuth\n")
    }

    /// A client certificate whose common name is `role` (PostgreSQL's `cert` authentication
    /// takes the role from it).
    public func clientCertificate(file: String, role: String) throws -> Issued {
        try issue(file: file, subject: role, extensions: "extendedKeyUsage=clientAuth\n")
    }

    private func issue(file: String, subject: String, extensions: String) throws -> Issued {
        let issued = Issued(certificate: directory + "/\(file).crt", key: directory + "/\(file).key")
        let request = directory + "/\(file).csr"
        let extensionFile = directory + "/\(file).ext"
        try ("basicConstraints=CA:FALSE\n" + extensions).write(toFile: extensionFile, atomically: true, encoding: .utf8)
        try Self.openssl([
            "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=\(subject)",
            "-keyout", issued.key, "-out", request,
        ])
        try Self.openssl([
            "x509", "-req", "-in", request, "-CA", certificate, "-CAkey", key, "-CAcreateserial", "-days", "2",
            "-extfile", extensionFile, "-out", issued.certificate,
        ])
        return issued
    }

    private static func openssl(_ arguments: [String]) throws {
        // ChildProcess, not Foundation.Process, whose waitUntilExit may miss a child's exit.
        let output = try ChildProcess(path: "/usr/bin/openssl", arguments).finish()
        guard output.status == 0 && !output.killedBySignal else {
            throw PostgresServer.ServerError(description: "openssl \(arguments.joined(separator: " ")): \(output.stderr)")
        }
    }
}
