import Crypto
import Foundation

/// NATS NKeys: Ed25519 key pairs written as base32 text with a type prefix and a CRC-16, as
/// `nats-io/nkeys` encodes them (`SU…` for a user seed, `U…` for a user's public key).
public struct NKeyPair: Sendable {
    /// What a key belongs to; the first letter of its public key.
    public enum KeyType: UInt8, Sendable, CaseIterable {
        case account = 0  // A
        case cluster = 16  // C
        case server = 104  // N
        case `operator` = 112  // O
        case user = 160  // U
    }

    static let seedPrefix: UInt8 = 18 << 3  // S

    /// The key's type.
    public let type: KeyType
    private let key: Curve25519.Signing.PrivateKey

    /// Reads a seed (`SU…`, `SA…`, `SO…`).
    /// - Throws: ``NATSError`` with code ``NATSError/Code/credentials`` for a malformed seed.
    public init(seed text: String) throws(NATSError) {
        guard let raw = Base32.decode(text.trimmingCharacters(in: .whitespacesAndNewlines)), raw.count == 36 else {
            throw NATSError(.credentials, "the NKey seed is not base32 of 36 bytes")
        }
        let body = Array(raw.prefix(34))
        let checksum = UInt16(raw[34]) | UInt16(raw[35]) << 8
        guard CRC16.checksum(body) == checksum else {
            throw NATSError(.credentials, "the NKey seed's checksum is wrong")
        }
        guard body[0] & 248 == Self.seedPrefix else { throw NATSError(.credentials, "this NKey is not a seed") }
        let typeByte = (body[0] & 7) << 5 | (body[1] & 248) >> 3
        guard let type = KeyType(rawValue: typeByte) else {
            throw NATSError(.credentials, "the NKey seed has an unknown type prefix")
        }
        do {
            key = try Curve25519.Signing.PrivateKey(rawRepresentation: body[2..<34])
        } catch {
            throw NATSError(.credentials, "the NKey seed is not an Ed25519 seed: \(error)")
        }
        self.type = type
    }

    /// A fresh random key pair.
    public init(random type: KeyType) {
        self.type = type
        key = Curve25519.Signing.PrivateKey()
    }

    /// The seed, encoded (`S` + type letter + …).
    public var seed: String {
        var body: [UInt8] = [Self.seedPrefix | type.rawValue >> 5, (type.rawValue & 31) << 3]
        body.append(contentsOf: key.rawRepresentation)
        return Self.finish(body)
    }

    /// The public key, encoded (`U…` for a user).
    public var publicKey: String {
        Self.finish([type.rawValue] + Array(key.publicKey.rawRepresentation))
    }

    /// Signs `data` with the private key.
    public func sign(_ data: some DataProtocol) throws(NATSError) -> [UInt8] {
        do {
            return Array(try key.signature(for: data))
        } catch {
            throw NATSError(.credentials, "cannot sign with the NKey: \(error)")
        }
    }

    /// Verifies an Ed25519 signature made by the holder of `publicKey` (encoded).
    public static func verify(_ signature: [UInt8], of data: [UInt8], publicKey: String) -> Bool {
        guard let raw = Base32.decode(publicKey), raw.count == 35,
            CRC16.checksum(Array(raw.prefix(33))) == UInt16(raw[33]) | UInt16(raw[34]) << 8,
            let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw[1..<33])
        else { return false }
        return key.isValidSignature(signature, for: data)
    }

    private static func finish(_ body: [UInt8]) -> String {
        let crc = CRC16.checksum(body)
        return Base32.encode(body + [UInt8(crc & 0xFF), UInt8(crc >> 8)])
    }
}

/// CRC-16/XMODEM (polynomial 0x1021, initial value 0), as NKeys use it.
enum CRC16 {
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}

/// RFC 4648 base32 without padding, as NKeys use it.
enum Base32 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | Int(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[(buffer >> (bits - 5)) & 31])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[(buffer << (5 - bits)) & 31]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer = 0
        var bits = 0
        for ch in text.utf8 where ch != UInt8(ascii: "=") {
            guard let value = alphabet.firstIndex(of: ch) else { return nil }
            buffer = (buffer << 5 | value) & 0xFFFF
            bits += 5
            if bits >= 8 {
                out.append(UInt8((buffer >> (bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return out
    }
}

/// A `.creds` file: a user JWT and the user's NKey seed, between the armour lines `nsc` writes.
public struct UserCredentials: Sendable {
    /// The user JWT.
    public var jwt: String
    /// The user's key pair.
    public var keyPair: NKeyPair

    /// Parses the file's text.
    /// - Throws: ``NATSError`` with code ``NATSError/Code/credentials`` naming what is missing.
    public init(text: String, source: String = "credentials") throws(NATSError) {
        guard let jwt = Self.block(in: text, after: "BEGIN NATS USER JWT") else {
            throw NATSError(.credentials, "\(source): no user JWT between '-----BEGIN NATS USER JWT-----' lines")
        }
        guard let seed = Self.block(in: text, after: "BEGIN USER NKEY SEED") else {
            throw NATSError(.credentials, "\(source): no seed between '-----BEGIN USER NKEY SEED-----' lines")
        }
        self.jwt = jwt
        keyPair = try NKeyPair(seed: seed)
    }

    /// Reads a `.creds` file.
    public init(contentsOf path: String) throws(NATSError) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw NATSError(.credentials, "cannot read \(path): \(error.localizedDescription)")
        }
        try self.init(text: text, source: path)
    }

    private static func block(in text: String, after marker: String) -> String? {
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        guard let start = lines.firstIndex(where: { $0.contains(marker) }) else { return nil }
        let value = lines[(start + 1)...].first { !$0.isEmpty }
        guard let value, !value.hasPrefix("---") else { return nil }
        return value
    }
}

extension [UInt8] {
    /// Base64 URL encoding without padding, as NATS wants signatures.
    var base64URLEncoded: String {
        Data(self).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
