import CZlib
import Foundation

/// A decoded PNG (8-bit RGB or RGBA, not interlaced: what Chromium's screenshots are), to check
/// what a browser actually drew.
public struct PNGImage: Sendable {
    public let width: Int
    public let height: Int
    /// RGBA, row by row.
    public let pixels: [UInt8]

    public init(data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count > 8, bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
            throw TestError("not a PNG file")
        }
        var offset = 8
        var width = 0
        var height = 0
        var channels = 0
        var compressed: [UInt8] = []
        func integer(_ at: Int) -> Int {
            Int(bytes[at]) << 24 | Int(bytes[at + 1]) << 16 | Int(bytes[at + 2]) << 8 | Int(bytes[at + 3])
        }
        while offset + 8 <= bytes.count {
            let length = integer(offset)
            let type = String(decoding: bytes[(offset + 4)..<(offset + 8)], as: UTF8.self)
            let body = offset + 8
            guard body + length + 4 <= bytes.count else { throw TestError("PNG chunk \(type) is cut short") }
            switch type {
            case "IHDR":
                width = integer(body)
                height = integer(body + 4)
                let depth = bytes[body + 8]
                let color = bytes[body + 9]
                let interlace = bytes[body + 12]
                guard depth == 8, color == 2 || color == 6, interlace == 0 else {
                    throw TestError("PNG with bit depth \(depth), color type \(color), interlace \(interlace)")
                }
                channels = color == 6 ? 4 : 3
            case "IDAT":
                compressed += bytes[body..<(body + length)]
            default:
                break
            }
            offset = body + length + 4
            if type == "IEND" { break }
        }
        guard width > 0, height > 0 else { throw TestError("PNG without a header") }
        let stride = width * channels
        var raw = [UInt8](repeating: 0, count: height * (stride + 1))
        var size = uLongf(raw.count)
        let status = raw.withUnsafeMutableBufferPointer { out in
            compressed.withUnsafeBufferPointer { input in
                uncompress(out.baseAddress, &size, input.baseAddress, uLong(input.count))
            }
        }
        guard status == Z_OK, Int(size) == raw.count else { throw TestError("PNG data does not inflate (\(status))") }
        // Undo each row's filter (PNG spec section 9).
        var image = [UInt8](repeating: 0, count: height * stride)
        for row in 0..<height {
            let filter = raw[row * (stride + 1)]
            let source = row * (stride + 1) + 1
            let target = row * stride
            for i in 0..<stride {
                let left = i >= channels ? Int(image[target + i - channels]) : 0
                let up = row > 0 ? Int(image[target - stride + i]) : 0
                let upLeft = row > 0 && i >= channels ? Int(image[target - stride + i - channels]) : 0
                let predictor: Int
                switch filter {
                case 0: predictor = 0
                case 1: predictor = left
                case 2: predictor = up
                case 3: predictor = (left + up) / 2
                case 4:
                    let p = left + up - upLeft
                    let (pa, pb, pc) = (abs(p - left), abs(p - up), abs(p - upLeft))
                    predictor = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft
                default: throw TestError("PNG row \(row) has filter \(filter)")
                }
                image[target + i] = UInt8((Int(raw[source + i]) + predictor) & 0xFF)
            }
        }
        if channels == 4 {
            pixels = image
        } else {
            var rgba = [UInt8]()
            rgba.reserveCapacity(width * height * 4)
            for i in Swift.stride(from: 0, to: image.count, by: 3) {
                rgba += [image[i], image[i + 1], image[i + 2], 255]
            }
            pixels = rgba
        }
        self.width = width
        self.height = height
    }

    /// How many pixels have exactly this color.
    public func count(red: UInt8, green: UInt8, blue: UInt8) -> Int {
        var n = 0
        for i in Swift.stride(from: 0, to: pixels.count, by: 4)
        where pixels[i] == red && pixels[i + 1] == green && pixels[i + 2] == blue {
            n += 1
        }
        return n
    }
}

/// Debian's `chromium`, headless: what a real browser makes of a page.
public enum HeadlessChromium {
    public static var isInstalled: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium") }

    static func arguments(_ extra: [String]) -> [String] {
        [
            "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-extensions", "--force-device-scale-factor=1",
        ] + extra
    }

    /// The DOM after the page loaded, serialised.
    public static func dumpDOM(_ url: String, timeout: Double = 60) throws -> String {
        let result = try TestSupport.run(
            URL(fileURLWithPath: "/usr/bin/chromium"),
            arguments(["--timeout=\(Int(timeout * 1000))", "--dump-dom", url]),
            timeout: timeout + 15
        )
        guard result.status == 0 else {
            throw TestError("chromium --dump-dom exited \(result.status): \(result.standardError)")
        }
        return result.standardOutput
    }

    /// A screenshot of the page in a window of the given size.
    public static func screenshot(_ url: String, to file: URL, width: Int, height: Int, timeout: Double = 60) throws
        -> PNGImage
    {
        let result = try TestSupport.run(
            URL(fileURLWithPath: "/usr/bin/chromium"),
            arguments(["--screenshot=\(file.path)", "--window-size=\(width),\(height)", url]),
            timeout: timeout + 15
        )
        guard result.status == 0 else {
            throw TestError("chromium --screenshot exited \(result.status): \(result.standardError)")
        }
        return try PNGImage(data: try Data(contentsOf: file))
    }
}
