import FlatlineAlerting
import FlatlineCore
import FlatlineNotify
import Foundation

/// The page at `/`: targets, active alerts with their explanation and, for each alert, charts of
/// the series its model watches (recent values, the expected value and band, anomalous points,
/// the alert's active span). One self-contained HTML document: inline CSS and SVG drawn on the
/// server, no script, no external asset, so it works offline and behind any proxy.
enum StatusPage {
    /// One charted series.
    struct Chart: Sendable {
        var labels: LabelSet
        /// The points are a counter's per-second rate.
        var rate: Bool
        var points: [SeriesHistory.Point]
    }

    /// An active alert and the charts of its series.
    struct AlertPanel: Sendable {
        var alert: Alert
        var charts: [Chart]
    }

    /// Everything the page shows, taken from the pipeline at once.
    struct Snapshot: Sendable {
        var now: Timestamp
        var version: String
        var targets: [Pipeline.TargetStatus]
        var active: [AlertPanel]
        var resolved: [Alert]
        var silences: [Silence]
        var series: Int
        /// Seconds between the page's reloads; 0: none.
        var refresh: Int = 15
        /// This replica's cluster, with `cluster:`.
        var cluster: ClusterStatus?
    }

    static func render(_ snapshot: Snapshot) -> String {
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">

            """
        if snapshot.refresh > 0 { html += "<meta http-equiv=\"refresh\" content=\"\(snapshot.refresh)\">\n" }
        let firing = snapshot.active.filter { $0.alert.state == .firing }.count
        html += """
            <title>\(firing > 0 ? "(\(firing)) " : "")Flatline</title>
            <style>\(style)</style>
            </head>
            <body>
            <header><h1>Flatline</h1><p>version \(escape(snapshot.version)) · \(snapshot.series) series · \
            page drawn \(escape(snapshot.now.description))</p></header>

            """
        html += alertsSection(snapshot)
        html += targetsSection(snapshot.targets)
        html += resolvedSection(snapshot.resolved)
        html += silencesSection(snapshot.silences, now: snapshot.now)
        if let cluster = snapshot.cluster { html += clusterSection(cluster) }
        html += """
            <footer>JSON: <a href="api/v1/alerts">alerts</a> · <a href="api/v1/targets">targets</a> · \
            <a href="api/v1/series">series</a> · <a href="api/v1/silences">silences</a> · \
            <a href="metrics">metrics</a></footer>
            </body>
            </html>

            """
        return html
    }

    // MARK: Sections

    private static func alertsSection(_ snapshot: Snapshot) -> String {
        var html = "<section id=\"alerts\"><h2>Active alerts (\(snapshot.active.count))</h2>\n"
        if snapshot.active.isEmpty {
            html += "<p class=\"calm\">No alert is pending or firing.</p>\n"
        }
        for panel in snapshot.active {
            let alert = panel.alert
            let severity = alert.labels["severity"] ?? ""
            html += """
                <article class="alert \(cssClass(alert.state.rawValue)) severity-\(cssClass(severity))">
                <h3><span class="state">\(escape(alert.state.rawValue))</span> \
                \(escape(alert.labels["alertname"] ?? "")) <span class="severity">\(escape(severity))</span></h3>
                <p class="summary">\(escape(alert.annotations["summary"] ?? ""))</p>
                <p class="description">\(escape(alert.annotations["description"] ?? ""))</p>
                <dl class="explanation">
                """
            for key in ["observed", "expected", "band", "score", "detector", "since", "related"] {
                guard let value = alert.annotations[key], !value.isEmpty else { continue }
                html += "<dt>\(key)</dt><dd>\(escape(value))</dd>"
            }
            html += "<dt>active since</dt><dd>\(escape(alert.activeSince.description))</dd></dl>\n"
            html += "<p class=\"labels\">" + labelChips(alert.labels.filter { $0.key != "alertname" }) + "</p>\n"
            if panel.charts.isEmpty {
                html += "<p class=\"nochart\">No recent points of its series are kept.</p>\n"
            }
            for chart in panel.charts {
                html += "<figure>" + svg(chart, alert: alert) + "<figcaption>"
                html += (chart.rate ? "per-second rate of " : "") + escape(seriesName(chart.labels))
                html += " · line: value · dashed: expected · band: normal range · dots: anomalous"
                html += "</figcaption></figure>\n"
            }
            html += "</article>\n"
        }
        return html + "</section>\n"
    }

    private static func targetsSection(_ targets: [Pipeline.TargetStatus]) -> String {
        var html = """
            <section id="targets"><h2>Targets (\(targets.count))</h2>
            <table><thead><tr><th>target</th><th>job</th><th>health</th><th>last scrape</th>\
            <th>duration</th><th>samples</th><th>last error</th></tr></thead><tbody>

            """
        if targets.isEmpty {
            html += "<tr><td colspan=\"7\">No scrape has finished yet.</td></tr>\n"
        }
        for target in targets {
            let duration = target.lastScrapeDurationSeconds.map { HumanNumber.format($0) + " s" } ?? ""
            html += """
                <tr class="\(cssClass(target.health))"><td>\(escape(target.target))</td><td>\(escape(target.job))</td>\
                <td class="health">\(escape(target.health))</td><td>\(escape(target.lastScrape ?? ""))</td>\
                <td>\(duration)</td><td>\(target.samples)</td><td>\(escape(target.lastError ?? ""))</td></tr>

                """
        }
        return html + "</tbody></table></section>\n"
    }

    private static func clusterSection(_ cluster: ClusterStatus) -> String {
        let owned = cluster.shards.filter { $0.value.contains(cluster.replica ?? "") }.count
        var html = """
            <section id="cluster"><h2>Cluster \(escape(cluster.name ?? ""))</h2>
            <p>This replica: <strong>\(escape(cluster.replica ?? ""))</strong>, \(escape(cluster.phase.rawValue)), \
            evaluating \(owned) of \(cluster.shards.count) targets.</p>
            <table><thead><tr><th>replica</th><th>started</th><th>version</th><th>targets</th><th>API</th></tr>\
            </thead><tbody>

            """
        for member in cluster.members {
            let targets = cluster.shards.filter { $0.value.contains(member.name) }.count
            let api = member.api.map { "<a href=\"\(escape($0))\">\(escape($0))</a>" } ?? ""
            html += """
                <tr><td>\(escape(member.name))\(member.this ? " (this one)" : "")\(member.settled ? "" : " (settling)")</td><td>\(escape(member.started))</td>\
                <td>\(escape(member.version))</td><td>\(targets)</td><td>\(api)</td></tr>

                """
        }
        return html + "</tbody></table></section>\n"
    }

    private static func resolvedSection(_ resolved: [Alert]) -> String {
        guard !resolved.isEmpty else { return "" }
        var html = """
            <section id="resolved"><h2>Recently resolved (\(resolved.count))</h2>
            <table><thead><tr><th>alert</th><th>labels</th><th>fired</th><th>resolved</th></tr></thead><tbody>

            """
        for alert in resolved {
            html += """
                <tr><td>\(escape(alert.labels["alertname"] ?? ""))</td>\
                <td>\(labelChips(alert.labels.filter { $0.key != "alertname" }))</td>\
                <td>\(escape(alert.firedAt?.description ?? "never (pending only)"))</td>\
                <td>\(escape(alert.resolvedAt?.description ?? ""))</td></tr>

                """
        }
        return html + "</tbody></table></section>\n"
    }

    private static func silencesSection(_ silences: [Silence], now: Timestamp) -> String {
        let current = silences.filter { $0.endsAt > now }
        guard !current.isEmpty else { return "" }
        var html = """
            <section id="silences"><h2>Silences (\(current.count))</h2>
            <table><thead><tr><th>matchers</th><th>from</th><th>until</th><th>by</th><th>comment</th></tr></thead>\
            <tbody>

            """
        for silence in current {
            html += """
                <tr><td>\(escape(silence.matchers.joined(separator: ", ")))</td>\
                <td>\(escape(silence.startsAt.description))</td><td>\(escape(silence.endsAt.description))</td>\
                <td>\(escape(silence.createdBy))</td><td>\(escape(silence.comment))</td></tr>

                """
        }
        return html + "</tbody></table></section>\n"
    }

    // MARK: Charts

    static let chartWidth = 720.0
    static let chartHeight = 180.0
    /// Room for the axis labels: left, right, top, bottom.
    static let margins = (left: 64.0, right: 12.0, top: 10.0, bottom: 22.0)

    /// A chart of one series as SVG: the band (`path.band`), the expected value
    /// (`polyline.expected`), the values (`polyline.values`), anomalous points (`circle.anomaly`)
    /// and the span the alert was active (`rect.alert-span`).
    static func svg(_ chart: Chart, alert: Alert) -> String {
        let points = chart.points
        let w = chartWidth
        let h = chartHeight
        var svg = """
            <svg class="chart" xmlns="http://www.w3.org/2000/svg" width="\(Int(w))" height="\(Int(h))" \
            viewBox="0 0 \(Int(w)) \(Int(h))" role="img"><title>\(escape(seriesName(chart.labels)))</title>
            """
        guard let first = points.first, let last = points.last else {
            return svg + "<text x=\"\(Int(w / 2))\" y=\"\(Int(h / 2))\" class=\"axis\">no points</text></svg>"
        }
        let (low, high) = range(points)
        let t0 = Double(first.time)
        let span = max(Double(last.time) - t0, 1)
        let plotWidth = w - margins.left - margins.right
        let plotHeight = h - margins.top - margins.bottom
        func x(_ time: Int64) -> Double { margins.left + (Double(time) - t0) / span * plotWidth }
        // Clamped to the plot: a band far wider than the values (a detector still warming up) is
        // cut at the frame rather than squashing the values into a line.
        func y(_ value: Float) -> Double {
            margins.top + min(max((high - Double(value)) / (high - low), 0), 1) * plotHeight
        }
        func xy(_ time: Int64, _ value: Float) -> String { coordinate(x(time)) + "," + coordinate(y(value)) }

        // The plot's frame and the alert's span behind everything.
        svg += """
            <rect class="plot" x="\(coordinate(margins.left))" y="\(coordinate(margins.top))" \
            width="\(coordinate(plotWidth))" height="\(coordinate(plotHeight))"/>
            """
        let spanStart = max(alert.activeSince.milliseconds, first.time)
        let spanEnd = min(alert.resolvedAt?.milliseconds ?? last.time, last.time)
        if spanStart <= spanEnd {
            let x0 = x(spanStart)
            svg += """
                <rect class="alert-span" x="\(coordinate(x0))" y="\(coordinate(margins.top))" \
                width="\(coordinate(max(x(spanEnd) - x0, 2)))" height="\(coordinate(plotHeight))">\
                <title>alert active since \(escape(alert.activeSince.description))</title></rect>
                """
        }
        // The band, one polygon per run of points that have one (none while warming up).
        for run in runs(points, where: { $0.lower.isFinite && $0.upper.isFinite }) {
            let upper = run.map { xy($0.time, $0.upper) }
            let lower = run.reversed().map { xy($0.time, $0.lower) }
            svg += "<path class=\"band\" d=\"M" + (upper + lower).joined(separator: " L") + " Z\"/>"
        }
        for run in runs(points, where: { $0.expected.isFinite }) {
            svg +=
                "<polyline class=\"expected\" points=\""
                + run.map { xy($0.time, $0.expected) }
                .joined(separator: " ") + "\"/>"
        }
        for run in runs(points, where: { $0.value.isFinite }) {
            svg +=
                "<polyline class=\"values\" points=\""
                + run.map { xy($0.time, $0.value) }
                .joined(separator: " ") + "\"/>"
        }
        for point in points where point.anomalous && point.value.isFinite {
            svg += """
                <circle class="anomaly" cx="\(coordinate(x(point.time)))" cy="\(coordinate(y(point.value)))" r="4">\
                <title>\(escape(Timestamp(milliseconds: point.time).description)): \
                \(HumanNumber.format(Double(point.value))), anomalous</title></circle>
                """
        }
        // Axes: the value range on the left, the time range below.
        let bottom = h - 6
        svg += """
            <text class="axis" x="\(coordinate(margins.left - 6))" y="\(coordinate(margins.top + 10))" \
            text-anchor="end">\(axisNumber(high))</text>\
            <text class="axis" x="\(coordinate(margins.left - 6))" y="\(coordinate(margins.top + plotHeight))" \
            text-anchor="end">\(axisNumber(low))</text>\
            <text class="axis" x="\(coordinate(margins.left))" y="\(coordinate(bottom))">\
            \(clock(first.time))</text>\
            <text class="axis" x="\(coordinate(w - margins.right))" y="\(coordinate(bottom))" \
            text-anchor="end">\(clock(last.time)) UTC</text></svg>
            """
        return svg
    }

    /// The value axis: the values and expected values, widened by the band up to once their own
    /// span on either side, with a small margin.
    static func range(_ points: [SeriesHistory.Point]) -> (low: Double, high: Double) {
        func extent(_ values: [Float]) -> (Double, Double)? {
            let finite = values.filter(\.isFinite).map(Double.init)
            guard let low = finite.min(), let high = finite.max() else { return nil }
            return (low, high)
        }
        guard var (low, high) = extent(points.flatMap { [$0.value, $0.expected] }) else { return (0, 1) }
        let span = max(high - low, abs(high) * 0.1, 1e-9)
        if let (bandLow, bandHigh) = extent(points.flatMap { [$0.lower, $0.upper] }) {
            low = max(min(low, bandLow), low - span)
            high = min(max(high, bandHigh), high + span)
        }
        if high - low < 1e-9 { (low, high) = (low - 1, high + 1) }
        let pad = (high - low) * 0.06
        return (low - pad, high + pad)
    }

    /// The maximal runs of consecutive points satisfying `include`.
    static func runs(
        _ points: [SeriesHistory.Point],
        where include: (SeriesHistory.Point) -> Bool
    ) -> [ArraySlice<SeriesHistory.Point>] {
        var out: [ArraySlice<SeriesHistory.Point>] = []
        var start: Int?
        for (i, point) in points.enumerated() {
            if include(point) {
                if start == nil { start = i }
            } else if let s = start {
                out.append(points[s..<i])
                start = nil
            }
        }
        if let s = start { out.append(points[s...]) }
        return out
    }

    // MARK: Text

    /// `metric{label="value", ...}`, the way Prometheus writes a series.
    static func seriesName(_ labels: LabelSet) -> String {
        let rest = labels.dictionary.filter { $0.key != LabelSet.metricNameLabel }.sorted { $0.key < $1.key }
        return labels.metricName + "{" + rest.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ", ") + "}"
    }

    static func labelChips(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.map {
            "<span class=\"label\">\(escape($0.key))=\(escape($0.value))</span>"
        }.joined(separator: " ")
    }

    /// Escapes text for HTML and SVG content and attribute values: scraped labels are not trusted.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }

    /// A class name from a word: letters, digits and `-` only.
    static func cssClass(_ text: String) -> String {
        String(text.lowercased().unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) || $0 == "-" })
    }

    static func coordinate(_ value: Double) -> String { String(format: "%.1f", value) }

    /// A compact axis number: 3 significant digits with k, M, G, T.
    static func axisNumber(_ value: Double) -> String {
        let magnitude = abs(value)
        for (size, suffix) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] where magnitude >= size {
            return HumanNumber.format((value / size * 100).rounded() / 100) + suffix
        }
        return HumanNumber.format(value)
    }

    /// `HH:MM:SS` (UTC) of a time in milliseconds.
    static func clock(_ milliseconds: Int64) -> String {
        let seconds = (milliseconds / 1000) % 86_400
        return String(format: "%02d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
    }

    static let style = """
        body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;\
        padding:0 16px 32px;color:#1b1f24;background:#fff}
        header{display:flex;align-items:baseline;gap:16px;border-bottom:1px solid #d0d7de}
        header h1{font-size:22px;margin:12px 0}header p{color:#57606a;margin:0}
        h2{font-size:17px;margin:22px 0 8px}h3{font-size:15px;margin:0 0 4px}
        .alert{border:1px solid #d0d7de;border-left:6px solid #bf8700;border-radius:6px;padding:10px 14px;\
        margin:10px 0}
        .alert.firing.severity-critical{border-left-color:#cf222e}.alert.firing{border-left-color:#d1242f}
        .alert.pending{border-left-color:#bf8700}
        .state{text-transform:uppercase;font-size:11px;letter-spacing:.05em;color:#fff;background:#bf8700;\
        border-radius:3px;padding:1px 5px;vertical-align:middle}
        .firing .state{background:#cf222e}.severity{color:#57606a;font-weight:normal;font-size:13px}
        .summary{font-weight:600;margin:4px 0}.description{margin:4px 0;color:#32383f}
        dl.explanation{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 0;\
        font-size:13px}
        dt{color:#57606a}dd{margin:0;font-family:ui-monospace,monospace}
        .label{display:inline-block;background:#eaeef2;border-radius:10px;padding:0 8px;margin:1px 0;\
        font:12px ui-monospace,monospace}
        figure{margin:8px 0}figcaption{font:12px ui-monospace,monospace;color:#57606a;overflow-wrap:anywhere}
        svg.chart{max-width:100%;height:auto;display:block}
        .plot{fill:#fbfcfd;stroke:#d0d7de}.alert-span{fill:#cf222e;fill-opacity:.08}
        .band{fill:#0969da;fill-opacity:.16;stroke:none}
        .expected{fill:none;stroke:#57606a;stroke-width:1.2;stroke-dasharray:4 3}
        .values{fill:none;stroke:#0969da;stroke-width:2;stroke-linejoin:round}
        .anomaly{fill:#d62728;stroke:#fff;stroke-width:1}
        .axis{font:11px ui-monospace,monospace;fill:#57606a}
        table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:4px 8px;\
        border-bottom:1px solid #eaeef2;vertical-align:top}
        tr.down .health{color:#cf222e;font-weight:600}tr.up .health{color:#1a7f37}
        .calm{color:#1a7f37}footer{margin-top:24px;color:#57606a;font-size:12px}
        """
}
