import Foundation

/// A throwaway certificate authority, with a server certificate for 127.0.0.1/localhost and a
/// client certificate, made with the `openssl` command at test time.
public struct TestCertificates: Sendable {
    public let directory: URL
    public var caFile: String { directory.appendingPathComponent("ca.pem").path }
    public var serverCertificate: String { directory.appendingPathComponent("server.pem").path }
    public var serverKey: String { directory.appendingPathComponent("server-key.pem").path }
    public var clientCertificate: String { directory.appendingPathComponent("client.pem").path }
    public var clientKey: String { directory.appendingPathComponent("client-key.pem").path }

    public init(in directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let extensions = directory.appendingPathComponent("san.ext")
        try Data("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n".utf8).write(to: extensions)
        let clientExtensions = directory.appendingPathComponent("client.ext")
        try Data("extendedKeyUsage=clientAuth\n".utf8).write(to: clientExtensions)
        let d = directory.path
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/ca-key.pem", "-out", "\(d)/ca.pem",
                "-days", "2", "-subj", "/CN=Flatline Test CA",
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/server-key.pem", "-out", "\(d)/server.csr",
                "-subj", "/CN=localhost",
            ],
            [
                "x509", "-req", "-in", "\(d)/server.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca-key.pem",
                "-CAcreateserial", "-out", "\(d)/server.pem", "-days", "2", "-extfile", extensions.path,
            ],
            [
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(d)/client-key.pem", "-out", "\(d)/client.csr",
                "-subj", "/CN=flatline-client",
            ],
            [
                "x509", "-req", "-in", "\(d)/client.csr", "-CA", "\(d)/ca.pem", "-CAkey", "\(d)/ca-key.pem",
                "-CAcreateserial", "-out", "\(d)/client.pem", "-days", "2", "-extfile", clientExtensions.path,
            ],
        ]
        for step in steps {
            let result = try TestSupport.run(URL(fileURLWithPath: "/usr/bin/openssl"), step)
            guard result.status == 0 else { throw TestError("openssl \(step[0]) failed: \(result.standardError)") }
        }
    }
}
