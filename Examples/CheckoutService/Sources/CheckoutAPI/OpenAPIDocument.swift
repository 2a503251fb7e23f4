import Foundation

/// The service's OpenAPI document, `openapi.yaml`: the source its routes are generated
/// from, shipped as a resource so that `GET /openapi.yaml` serves exactly that file.
enum OpenAPIDocument {
    /// The document's bytes.
    static func bytes() throws -> [UInt8] {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw APIError(status: .internalServerError, code: "storage", message: "openapi.yaml is missing from the service's resources")
        }
        return Array(try Data(contentsOf: url))
    }
}
