import AsyncHTTPClient
import Foundation
import NIOSSL

/// An HTTP client's TLS files (`tls_config`) that could not be read.
public struct TLSFilesError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { "TLS files: \(reason)" }
}

/// What every HTTP client of Flatline shares, scrapes and notifications alike: TLS from
/// `tls_config`, and errors told in words an operator can act on.
package enum HTTPClientSupport {
    /// The client TLS configuration of `tls`: its CA, its client certificate and key.
    /// - Throws: ``TLSFilesError`` when a certificate or key cannot be loaded.
    package static func tlsConfiguration(_ tls: TLSSettings) throws(TLSFilesError) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let ca = tls.caFile {
            configuration.trustRoots = .certificates(
                try load("ca_file", ca, "PEM certificates") { try NIOSSLCertificate.fromPEMFile(ca) }
            )
        }
        if let cert = tls.certFile, let key = tls.keyFile {
            configuration.certificateChain = try load("cert_file", cert, "PEM certificates") {
                try NIOSSLCertificate.fromPEMFile(cert)
            }.map { .certificate($0) }
            configuration.privateKey = .privateKey(
                try load("key_file", key, "a PEM private key") { try NIOSSLPrivateKey(file: key, format: .pem) }
            )
        }
        if tls.insecureSkipVerify { configuration.certificateVerification = .none }
        return configuration
    }

    /// One TLS file, loaded; its failure names the key, the path and why (NIOSSL's own error
    /// says only `failedToLoadCertificate`).
    private static func load<T>(_ key: String, _ path: String, _ what: String, _ body: () throws -> T)
        throws(TLSFilesError) -> T
    {
        do {
            return try body()
        } catch {
            let why =
                FileManager.default.isReadableFile(atPath: path)
                ? "does not hold \(what) (\(error))"
                : FileManager.default.fileExists(atPath: path) ? "cannot be read" : "does not exist"
            throw TLSFilesError(reason: "\(key) \"\(path)\" \(why)")
        }
    }

    /// Errors in words an operator can act on.
    package static func describe(_ error: any Error) -> String {
        // A request the process stopped (a shutdown, Ctrl-C in `flatline record`) mid-way.
        if error is CancellationError { return "cut short: stopping" }
        if let error = error as? HTTPClientError {
            switch error {
            case .connectTimeout: return "connection timed out"
            case .remoteConnectionClosed: return "the target closed the connection"
            case .cancelled: return "cut short: stopping"
            default: return "\(error)"
            }
        }
        let text = "\(error)"
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return
                "TLS: the target's certificate is not trusted (CERTIFICATE_VERIFY_FAILED: check tls_config ca_file and server_name)"
        }
        if let error = error as? NIOSSLError { return "TLS: \(error)" }
        if let error = error as? BoringSSLError { return "TLS: \(error)" }
        if text.contains("connectionRefused") || text.contains("Connection refused") { return "connection refused" }
        return text
    }

    /// Whether `error` says the host could not be reached at all (refused, or no connection
    /// within the connect timeout): another request to it now would fail the same way.
    package static func isUnreachable(_ error: any Error) -> Bool {
        ["connection refused", "connection timed out"].contains(describe(error))
    }
}
