/// The version of the payment sessions library, which its executables report with
/// `--version`.
public enum PaymentSessionsVersion {
    /// The version, as `MAJOR.MINOR.PATCH` (semantic versioning: the store's format and the
    /// public API change only with the major version once it is 1).
    public static let current = "0.9.0"
}
