import FlatlineAlerting
import FlatlineCore
import Foundation
import Testing

@testable import FlatlineDaemon

/// The status page's drawing, on series with known answers: where points land, how runs without
/// a band are left out, how hostile label values are escaped.
@Suite("Status page")
struct StatusPageTests {
    static func point(_ second: Int64, _ value: Float, band: Float? = nil, anomalous: Bool = false)
        -> SeriesHistory.Point
    {
        SeriesHistory.Point(
            time: second * 1000,
            value: value,
            expected: band == nil ? .nan : value,
            lower: band.map { value - $0 } ?? .nan,
            upper: band.map { value + $0 } ?? .nan,
            anomalous: anomalous
        )
    }

    static func alert(labels: [String: String], since: Int64) -> Alert {
        let time = Timestamp(milliseconds: since * 1000)
        return Alert(
            fingerprint: AlertFingerprint(labels: labels),
            labels: labels,
            annotations: ["summary": "stuck <b>now</b>", "observed": "12"],
            state: .firing,
            timing: AlertTiming(),
            activeSince: time,
            firedAt: time,
            lastActive: time,
            lastSeen: time
        )
    }

    @Test("points land where the axes say; the anomalous one is marked; the band skips warm-up")
    func geometry() throws {
        // Values 0, 10 (anomalous), 5 at t = 0, 10, 20 s; no band for the first point.
        let chart = StatusPage.Chart(
            labels: try LabelSet(validating: ["__name__": "m", "k": "v"]),
            rate: false,
            points: [Self.point(0, 0), Self.point(10, 10, band: 1, anomalous: true), Self.point(20, 5, band: 1)]
        )
        // The axis: values and expected span 0...10 (band 4...11 within it widens the top to 11),
        // plus 6 % of 11 on each side: -0.66 ... 11.66.
        let (low, high) = StatusPage.range(chart.points)
        #expect(abs(low - -0.66) < 1e-9 && abs(high - 11.66) < 1e-9, "\(low) \(high)")
        let svg = StatusPage.svg(chart, alert: Self.alert(labels: ["alertname": "A"], since: 10))
        // x: 64 + t/20 * 644 (720 wide, margins 64 and 12); y: 10 + (11.66 - v)/12.32 * 148.
        func y(_ v: Double) -> String { String(format: "%.1f", 10 + (11.66 - v) / 12.32 * 148) }
        #expect(svg.contains("points=\"64.0,\(y(0)) 386.0,\(y(10)) 708.0,\(y(5))\""), "\(svg)")
        #expect(svg.contains("<circle class=\"anomaly\" cx=\"386.0\" cy=\"\(y(10))\""))
        #expect(svg.components(separatedBy: "<circle").count == 2, "one anomalous point, one circle")
        // The band only over the two points that have one: upper edge left to right, lower back.
        #expect(svg.contains("d=\"M386.0,\(y(11)) L708.0,\(y(6)) L708.0,\(y(4)) L386.0,\(y(9)) Z\""), "\(svg)")
        // The alert's span from its start (10 s) to the last point.
        #expect(svg.contains("<rect class=\"alert-span\" x=\"386.0\""))
        #expect(svg.contains(">00:00:00</text>") && svg.contains(">00:00:20 UTC</text>"))
    }

    @Test("a band far wider than the values is cut at the frame")
    func wideBand() throws {
        let points = (0..<10).map { Self.point(Int64($0), Float(100 + $0 % 2), band: 1e6) }
        let (low, high) = StatusPage.range(points)
        // Values 100...101: span max(1, 10.1) = 10.1 on each side at most.
        #expect(low > 80 && high < 120, "\(low) \(high)")
    }

    @Test("label values and annotations cannot inject markup")
    func escaping() throws {
        let hostile = "\"><script>alert(1)</script>"
        let labels = ["alertname": "Freeze", "consumer": hostile]
        let chart = StatusPage.Chart(
            labels: try LabelSet(validating: ["__name__": "m", "consumer": hostile]),
            rate: true,
            points: [Self.point(0, 1), Self.point(1, 2)]
        )
        let html = StatusPage.render(
            StatusPage.Snapshot(
                now: Timestamp(milliseconds: 2000),
                version: "test",
                targets: [],
                active: [StatusPage.AlertPanel(alert: Self.alert(labels: labels, since: 0), charts: [chart])],
                resolved: [],
                silences: [],
                series: 1
            )
        )
        #expect(!html.contains("<script>"))
        #expect(!html.contains("<b>now</b>"))
        #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("stuck &lt;b&gt;now&lt;/b&gt;"))
        #expect(html.contains("per-second rate of m{consumer=&quot;&quot;&gt;&lt;script&gt;"))
        #expect(html.contains("<title>(1) Flatline</title>"))
    }
}
