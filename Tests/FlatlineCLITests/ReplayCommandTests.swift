import FlatlineTestSupport
import Foundation
import Testing

/// `flatline replay` end to end: the real binary on real files.
@Suite("flatline replay", .serialized)
struct ReplayCommandTests {
    static let example = TestSupport.repositoryFile("examples/nats-orders-rate.csv").path
    static let labels = TestSupport.repositoryFile("examples/nats-orders-rate.labels.csv").path
    static let serverExample = TestSupport.repositoryFile("examples/nats-server.om").path

    func replay(_ arguments: [String]) throws -> TestSupport.ProcessResult {
        try TestSupport.run(TestSupport.flatlineBinary, ["replay"] + arguments)
    }

    @Test("the example series: one row per input row, and every labelled incident found")
    func exampleIncidents() throws {
        let result = try replay([Self.example])
        #expect(result.status == 0, "\(result.standardError)")
        let lines = result.standardOutput.split(separator: "\n")
        let input = try String(contentsOfFile: Self.example, encoding: .utf8).split(separator: "\n")
        #expect(lines.first == "timestamp,value,expected,lower,upper,score,anomaly")
        #expect(lines.count == input.count)
        #expect(
            zip(lines.dropFirst(), input.dropFirst()).allSatisfy {
                $0.split(separator: ",")[0] == $1.split(separator: ",")[0]
            }
        )

        let flagged = lines.dropFirst().filter { $0.hasSuffix(",1") }.map { String($0.split(separator: ",")[0]) }
        let incidents = try String(contentsOfFile: Self.labels, encoding: .utf8).split(separator: "\n").dropFirst()
        for incident in incidents {
            let fields = incident.split(separator: ",").map(String.init)
            // Found within 15 minutes (3 samples) of the start, string order being time order.
            let hit = flagged.contains { $0 >= fields[0] && $0 <= Self.plusMinutes(fields[0], 15) }
            #expect(hit, "missed \(fields[2]) at \(fields[0]); flagged \(flagged)")
        }
        #expect(flagged.count <= incidents.count + 1, "false alarms: \(flagged)")
        #expect(result.standardError.contains("1 series, 4032 points (4032 scored)"))
    }

    static func plusMinutes(_ text: String, _ minutes: Int) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        formatter.timeZone = TimeZone(identifier: "UTC")
        guard let date = formatter.date(from: text) else { return text }
        return formatter.string(from: date.addingTimeInterval(Double(minutes) * 60))
    }

    @Test("a recording of raw NATS scrapes replays through extraction, with failed scrapes reported")
    func recording() throws {
        let fixture = TestSupport.repositoryFile(
            "Tests/FlatlineIngestTests/Fixtures/nats/scenario-freeze-flood.ndjson.gz"
        ).path
        let result = try replay([fixture, "--model", "ewma"])
        #expect(result.status == 0, "\(result.standardError)")
        let lines = result.standardOutput.split(separator: "\n")
        #expect(lines.first == "series,timestamp,value,expected,lower,upper,score,anomaly")
        #expect(lines.contains { $0.hasPrefix("\"gnatsd_varz_in_msgs{instance=\"\"recording\"\",job=\"\"nats\"\"") })
        #expect(result.standardError.contains("series,"))

        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let varz = { (ts: String, n: Int) in
            #"{"ts":"\#(ts)","target":"n1:8222","endpoint":"varz","body":{"server_id":"A","now":"\#(ts)","in_msgs":\#(n)}}"#
        }
        let text = [
            varz("2026-01-01T00:00:00Z", 0), varz("2026-01-01T00:00:01Z", 10),
            #"{"ts":"2026-01-01T00:00:02Z","target":"n1:8222","endpoint":"varz","error":"connection refused"}"#,
            #"{"ts":"2026-01-01T00:00:02Z","target":"n1:8222","endpoint":"bogusz","body":{}}"#,
            varz("2026-01-01T00:00:03Z", 30),
        ].joined(separator: "\n")
        let file = try directory.write("small.ndjson", text)
        let small = try replay([file.path])
        #expect(small.status == 0, "\(small.standardError)")
        #expect(small.standardError.contains("n1:8222 /varz: 1 failed scrape (first at line 3: connection refused)"))
        #expect(small.standardError.contains("/bogusz: 1 line of an unknown endpoint skipped"))
        // The round the recorder's own stop cut short (Ctrl-C while scraping; older recordings
        // say CancellationError()) is no failure of the target: one line says so.
        let stopped = try directory.write(
            "stopped.ndjson",
            text + "\n"
                + [
                    #"{"ts":"2026-01-01T00:00:04Z","target":"n1:8222","endpoint":"varz","error":"cut short: stopping"}"#,
                    #"{"ts":"2026-01-01T00:00:04Z","target":"n1:8222","endpoint":"connz","error":"CancellationError()"}"#,
                ].joined(separator: "\n")
        )
        for arguments in [[stopped.path], [stopped.path, "--alerts-out", directory.file("stopped-alerts").path]] {
            let run = try replay(arguments)
            #expect(run.status == 0, "\(run.standardError)")
            #expect(run.standardError.contains("n1:8222 /varz: 1 failed scrape (first at line 3: connection refused)"))
            #expect(
                run.standardError.contains("2 scrapes were cut short when the recording stopped"),
                "\(run.standardError)"
            )
            #expect(!run.standardError.contains("/connz: 1 failed"), "\(run.standardError)")
        }
        // A byte order mark before the first line is read past, as in a CSV file.
        let marked = try directory.write("marked.ndjson", "\u{FEFF}" + text)
        let markedReplay = try replay([marked.path])
        #expect(markedReplay.status == 0, "\(markedReplay.standardError)")
        #expect(markedReplay.standardOutput == small.standardOutput)
        // A recording cut off (a crash while recording) replays up to the cut, and says so.
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixture))
        let cut = directory.file("cut.ndjson.gz")
        try whole.prefix(whole.count / 2).write(to: cut)
        let short = try replay([cut.path])
        #expect(short.status == 0, "\(short.standardError)")
        #expect(short.standardError.contains("the gzip stream is truncated"), "\(short.standardError)")
        #expect(short.standardError.contains("replayed what came before"))
        #expect(short.standardOutput.split(separator: "\n").count > 1000)
        // --quiet drops the summary, never the warning.
        let quietShort = try replay([cut.path, "--quiet"])
        #expect(quietShort.standardError.contains("the gzip stream is truncated"), "\(quietShort.standardError)")
        #expect(!quietShort.standardError.contains("series,"))
        // The counter's rate over the failed scrape: 20 in 2 s.
        #expect(
            small.standardOutput.contains(
                "gnatsd_varz_in_msgs{instance=\"\"n1:8222\"\",job=\"\"nats\"\"}\",2026-01-01T00:00:03.000Z,10.0"
            )
        )
    }

    @Test("--alerts-out writes the models' alert events as NDJSON; a missing models directory is an error")
    func alertsOut() throws {
        let fixture = TestSupport.repositoryFile(
            "Tests/FlatlineIngestTests/Fixtures/nats/scenario-freeze-flood.ndjson.gz"
        ).path
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let out = directory.file("alerts.ndjson").path
        let models = TestSupport.repositoryFile("models").path
        let result = try replay([
            fixture, "--model", "ewma", "--out", "/dev/null", "--alerts-out", out, "--models", models,
        ])
        #expect(result.status == 0, "\(result.standardError)")
        // Freeze (and its backlog forecast), flood, slow consumer: each fired and resolved; the
        // slow consumer's disconnect fired too (it resolves 5 minutes later, after the recording).
        #expect(result.standardError.contains("alerts.ndjson: 5 alerts fired, 4 resolved"), "\(result.standardError)")
        let lines = try String(contentsOfFile: out, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 9)
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["status"] as? String == "firing")
        #expect(first["endsAt"] as? String == "0001-01-01T00:00:00Z")
        #expect((first["fingerprint"] as? String)?.count == 16)
        #expect((first["labels"] as? [String: String])?["alertname"] == "ConsumerFreeze")
        #expect((first["annotations"] as? [String: String])?["summary"]?.contains("ORDERS/worker") == true)
        #expect(first["ts"] as? String == first["startsAt"] as? String)

        let missing = try replay([
            fixture, "--out", "/dev/null", "--alerts-out", out, "--models", directory.file("nope").path,
        ])
        #expect(missing.status == 1)
        #expect(!missing.standardError.contains("Usage:"), "\(missing.standardError)")
        #expect(missing.standardError.contains("nope: no such models directory"), "\(missing.standardError)")
        #expect(missing.standardError.contains("pass --models DIR"), "\(missing.standardError)")
    }

    @Test("--config: its detector: section is the detector replayed, for a CSV as for a recording")
    func configDetector() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let config = try directory.write("flatline.yml", "detector: {kind: ewma, ewma: {half_life: 8 samples}}\n")
        let configured = try replay([Self.example, "--config", config.path, "--quiet"])
        #expect(configured.status == 0, "\(configured.standardError)")
        let flags = try directory.write("ewma.yml", "detector: {kind: ewma}\n")
        let plainEWMA = try replay([Self.example, "--config", flags.path, "--quiet"])
        let model = try replay([Self.example, "--model", "ewma", "--quiet"])
        let surprise = try replay([Self.example, "--quiet"])
        // The section's kind is what --model ewma gives; its parameters count; the default differs.
        #expect(plainEWMA.standardOutput == model.standardOutput)
        #expect(configured.standardOutput != model.standardOutput)
        #expect(model.standardOutput != surprise.standardOutput)
        // A bad section is refused with its key.
        let bad = try directory.write("bad.yml", "detector: {surprise: {threshold: 99}}\n")
        let refused = try replay([Self.example, "--config", bad.path])
        #expect(refused.status != 0)
        #expect(refused.standardError.contains("detector.surprise.threshold"), "\(refused.standardError)")
    }

    @Test("the same input gives the same output, byte for byte")
    func deterministic() throws {
        let a = try replay([Self.serverExample, "--quiet"])
        let b = try replay([Self.serverExample, "--quiet"])
        #expect(a.status == 0)
        #expect(a.standardOutput == b.standardOutput)
        #expect(a.standardError.isEmpty)
    }

    @Test("many series: a leading series column, counters as rates, the first counter sample empty")
    func manySeries() throws {
        let result = try replay([Self.serverExample, "--format", "csv"])
        #expect(result.status == 0)
        let lines = result.standardOutput.split(separator: "\n")
        #expect(lines.first == "series,timestamp,value,expected,lower,upper,score,anomaly")
        #expect(lines[1].hasPrefix(#""gnatsd_varz_in_msgs_total{server_id=""NDEMO""}",1793577600,,"#))
        let rate = try #require(Double(lines[2].split(separator: ",")[2]))
        #expect(rate > 50 && rate < 500, "a per-second rate, not a running total: \(rate)")
        // The first counter sample and the one after the counter's reset.
        #expect(result.standardError.contains("2 awaiting a rate"), "\(result.standardError)")
        #expect(result.standardError.contains("1 counter resets"))
        let flagged = lines.filter { $0.hasSuffix(",1") }
        #expect(flagged.contains { $0.contains("num_pending") }, "the consumer freeze is found")
        #expect(flagged.contains { $0.contains("pending_bytes") }, "the slow consumer is found")
    }

    @Test("NDJSON carries the same fields; --anomalies-only keeps just the flags")
    func ndjson() throws {
        let result = try replay([Self.example, "--format", "ndjson", "--anomalies-only", "--quiet"])
        #expect(result.status == 0)
        let lines = result.standardOutput.split(separator: "\n")
        #expect(!lines.isEmpty)
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(Set(object.keys) == ["timestamp", "value", "expected", "lower", "upper", "score", "anomaly"])
            #expect(object["anomaly"] as? Int == 1)
            let score = try #require(object["score"] as? Double)
            #expect(score >= 0 && score <= 1)
        }
    }

    @Test("a replay split in two with saved state gives the same output as one straight run")
    func splitReplay() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let lines = try String(contentsOfFile: Self.example, encoding: .utf8).split(separator: "\n").map(String.init)
        let header = lines[0]
        let middle = lines.count / 2
        let first = try directory.write("first.csv", ([header] + lines[1..<middle]).joined(separator: "\n") + "\n")
        let second = try directory.write("second.csv", ([header] + lines[middle...]).joined(separator: "\n") + "\n")
        let state = directory.file("state.json").path

        let straight = try replay([Self.example, "--quiet"])
        let one = try replay([first.path, "--quiet", "--save-state", state])
        let two = try replay([second.path, "--quiet", "--load-state", state])
        #expect(one.status == 0 && two.status == 0, "\(one.standardError)\(two.standardError)")
        let joined = one.standardOutput + two.standardOutput.split(separator: "\n", maxSplits: 1)[1]
        #expect(joined == straight.standardOutput)
    }

    @Test("a loaded state judges with the thresholds given; an option that changes what it learned is refused")
    func loadStateWithThresholds() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let lines = try String(contentsOfFile: Self.example, encoding: .utf8).split(separator: "\n").map(String.init)
        let middle = lines.count / 2
        let first = try directory.write("first.csv", ([lines[0]] + lines[1..<middle]).joined(separator: "\n") + "\n")
        let second = try directory.write("second.csv", ([lines[0]] + lines[middle...]).joined(separator: "\n") + "\n")
        let state = directory.file("state.json").path
        #expect(try replay([first.path, "--quiet", "--save-state", state]).status == 0)
        let plain = try replay([second.path, "--quiet", "--load-state", state])
        let wide = try replay([second.path, "--quiet", "--load-state", state, "--min-deviation", "1000000"])
        let strict = try replay([second.path, "--quiet", "--load-state", state, "--threshold", "30"])
        #expect(
            plain.status == 0 && wide.status == 0 && strict.status == 0,
            "\(wide.standardError)\(strict.standardError)"
        )
        #expect(plain.standardOutput.hasPrefix("timestamp,value,expected,lower,upper,score,anomaly\n"))
        func rows(_ text: String) -> [[Substring]] {
            text.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        }
        func anomalies(_ text: String) -> Set<Substring> { Set(rows(text).filter { $0.last == "1" }.map { $0[0] }) }
        // A minimum deviation only judges: the same forecasts, bands and scores, fewer anomalies
        // (a series stuck at one value is flagged whatever its deviation).
        let before = rows(plain.standardOutput)
        let judged = rows(wide.standardOutput)
        #expect(before.count == judged.count && before.count > 1000)
        #expect(before.map { $0.dropLast() } == judged.map { $0.dropLast() }, "forecasts, bands or scores differ")
        #expect(anomalies(wide.standardOutput).count < anomalies(plain.standardOutput).count)
        // A threshold judges too (the tail learns below it, so scores may move after a point
        // between the two).
        #expect(anomalies(strict.standardOutput).count < anomalies(plain.standardOutput).count)

        let model = try replay([second.path, "--quiet", "--load-state", state, "--model", "ewma"])
        #expect(model.status != 0)
        #expect(model.standardError.contains("the state learned with kind surprise"), "\(model.standardError)")
    }

    @Test(
        "bad input: a clear message on standard error and a non-zero exit",
        arguments: [
            (
                "bad-value.csv", "timestamp,value\n1700000000,1\n1700000060,twelve\n",
                "bad-value.csv:3: value \"twelve\" is not a number"
            ),
            ("empty.csv", "timestamp,value\n", "empty.csv: no usable data"),
            ("mystery.dat", "%%%\n", "accepted formats: csv, prometheus, openmetrics"),
            ("no-ts.prom", "up 1\n", "no-ts.prom:1: sample has no timestamp"),
        ]
    )
    func badInput(name: String, content: String, message: String) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write(name, content)
        let result = try replay([file.path])
        #expect(result.status != 0)
        #expect(result.standardError.contains(message), "\(result.standardError)")
        #expect(result.standardOutput.isEmpty)
    }

    @Test("bad options and files are refused with a reason")
    func badOptions() throws {
        let missing = try replay(["/nonexistent/series.csv"])
        #expect(missing.status != 0)
        #expect(missing.standardError.contains("/nonexistent/series.csv: cannot open"))

        let model = try replay([Self.example, "--model", "prophet"])
        #expect(model.status != 0)
        #expect(model.standardError.contains("prophet"))

        let threshold = try replay([Self.example, "--model", "ensemble", "--threshold", "2"])
        #expect(threshold.status != 0)
        #expect(threshold.standardError.contains("calibration.threshold"))
        let surprise = try replay([Self.example, "--threshold", "40"])
        #expect(surprise.status != 0)
        #expect(
            surprise.standardError.contains("surprise.threshold must be from -3 to 30"),
            "\(surprise.standardError)"
        )

        // A negative surprise threshold is a value, not another option.
        let negative = try replay([Self.example, "--threshold", "-1", "--quiet", "--anomalies-only"])
        #expect(negative.status == 0, "\(negative.standardError)")
        let usual = try replay([Self.example, "--quiet", "--anomalies-only"])
        #expect(negative.standardOutput.count > usual.standardOutput.count)

        let format = try replay([Self.example, "--input-format", "parquet"])
        #expect(format.status != 0)
        #expect(format.standardError.contains("parquet"))

        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let corrupt = try directory.write(
            "state.json",
            #"{"format":"flatline-detection-state","version":1,"bank":{"store":7}}"#
        )
        let state = try replay([Self.example, "--load-state", corrupt.path])
        #expect(state.status != 0)
        #expect(state.standardError.contains("corrupt state"), "\(state.standardError)")
        let newer = try directory.write("newer.json", #"{"format":"flatline-detection-state","version":99}"#)
        let future = try replay([Self.example, "--load-state", newer.path])
        #expect(future.standardError.contains("version 99 is not supported"), "\(future.standardError)")

        let both = try replay([Self.example, "--prometheus", "http://127.0.0.1:9090"])
        #expect(both.standardError.contains("give a file or --prometheus, not both"))
        let noQuery = try replay(["--prometheus", "http://127.0.0.1:9090", "--start", "1h"])
        #expect(noQuery.standardError.contains("--prometheus needs --query"))
        let badStart = try replay(["--prometheus", "http://127.0.0.1:9090", "--query", "up", "--start", "yesterday"])
        #expect(badStart.standardError.contains("--start \"yesterday\" is not RFC 3339"), "\(badStart.standardError)")
        let strayQuery = try replay([Self.example, "--query", "up"])
        #expect(strayQuery.standardError.contains("go with --prometheus"))
    }

    @Test("--prometheus: a history read back from a real Prometheus replays to the same bytes as its file")
    func fromPrometheus() throws {
        // Two gauges every 15 s for half a day, a daily-like swing with a spike in each.
        let start = 1_767_225_600
        let points = 3_000
        var text = "# TYPE app_latency_seconds gauge\n"
        for instance in ["a", "b"] {
            for k in 0..<points {
                let swing = (sin(Double(k) / 240 * 2 * .pi) * 40).rounded() / 4
                let spike = k == (instance == "a" ? 2_500 : 2_700) ? 60.0 : 0
                let noise = Double((k * 7919) % 13) / 8
                text +=
                    "app_latency_seconds{instance=\"\(instance)\"} \(20 + swing + spike + noise) \(start + 15 * k)\n"
            }
        }
        text += "# EOF\n"
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("history.om", text)
        let prometheus = try PrometheusProcess(history: text)
        defer { prometheus.stop() }

        let fromFile = try replay([file.path, "--out", directory.file("file.csv").path])
        #expect(fromFile.status == 0, "\(fromFile.standardError)")
        let fromAPI = try replay([
            "--prometheus", prometheus.url, "--query", "app_latency_seconds", "--start", String(start),
            "--end", String(start + 15 * (points - 1)), "--step", "15s", "--out", directory.file("api.csv").path,
        ])
        #expect(fromAPI.status == 0, "\(fromAPI.standardError)")
        #expect(fromAPI.standardError.contains("2 series, 6000 points"), "\(fromAPI.standardError)")
        let expected = try String(contentsOf: directory.file("file.csv"), encoding: .utf8)
        let got = try String(contentsOf: directory.file("api.csv"), encoding: .utf8)
        #expect(got == expected)
        let flagged = got.split(separator: "\n").filter { $0.hasSuffix(",1") }
        #expect(flagged.contains { $0.hasPrefix("\"app_latency_seconds{instance=\"\"a\"\"}\",\(start + 15 * 2_500),") })
        #expect(flagged.contains { $0.hasPrefix("\"app_latency_seconds{instance=\"\"b\"\"}\",\(start + 15 * 2_700),") })

        // An absolute start and no end: up to now.
        let untilNow = try replay([
            "--prometheus", prometheus.url, "--query", "app_latency_seconds", "--start", String(start),
            "--step", "15s", "--quiet", "--anomalies-only",
        ])
        #expect(untilNow.status == 0, "\(untilNow.standardError)")

        // A query Prometheus refuses: its reason, and a failing exit.
        let bad = try replay([
            "--prometheus", prometheus.url, "--query", "rate(app_latency_seconds[", "--start", String(start),
            "--end", String(start + 600),
        ])
        #expect(bad.status != 0)
        #expect(bad.standardError.contains("Prometheus said bad_data"), "\(bad.standardError)")
    }
}

@Suite("flatline replay edge cases", .serialized)
struct ReplayEdgeCaseTests {
    @Test("rows out of time order are scored in time order; duplicates and NaN are counted")
    func orderAndDrops() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write(
            "back.csv",
            "timestamp,value\n2026-01-01 00:00:00,5\n2026-01-01 00:00:00,6\n2025-12-31 23:00:00,7\n2026-01-01 00:05:00,NaN\n"
        )
        let result = try TestSupport.run(TestSupport.flatlineBinary, ["replay", file.path])
        #expect(result.status == 0)
        let rows = result.standardOutput.split(separator: "\n").map {
            $0.split(separator: ",", omittingEmptySubsequences: false)
        }
        #expect(rows[1][2] == "7.0", "the 00:00 row is expected to be like the 23:00 row before it")
        #expect(result.standardError.contains("2 dropped: non_finite=1 duplicate=1"), "\(result.standardError)")
    }

    @Test("--max-gap: no counter rate across a longer gap")
    func maxGap() throws {
        let example = TestSupport.repositoryFile("examples/nats-server.om").path
        let result = try TestSupport.run(TestSupport.flatlineBinary, ["replay", example, "--max-gap", "30s"])
        #expect(result.status == 0)
        // Every counter sample is 60 s after the last: each starts the counter afresh.
        #expect(result.standardError.contains("(8640 scored, 2880 awaiting a rate)"), "\(result.standardError)")
    }

    @Test("a single sample cannot give a sampling interval; the message names the file")
    func singleSample() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("one.csv", "timestamp,value\n2026-01-01 00:00:00,5\n")
        let result = try TestSupport.run(TestSupport.flatlineBinary, ["replay", file.path])
        #expect(result.status != 0)
        #expect(result.standardError.contains("one.csv: cannot infer the sampling interval"))
        let stepped = try TestSupport.run(TestSupport.flatlineBinary, ["replay", file.path, "--step", "1m", "--quiet"])
        #expect(stepped.status == 0)
        #expect(stepped.standardOutput.split(separator: "\n").count == 2)
    }
}

extension ReplayCommandTests {
    /// Prometheus text of `series` series on schedules of their own: some every 15 s, some 7 s
    /// later, samples missing now and then, counters with a reset, a NaN.
    static func irregular(series: Int, points: Int) -> String {
        var generator = UInt64(42)
        func next() -> UInt64 {
            generator = generator &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return generator >> 33
        }
        var lines = ["# TYPE requests_total counter", "# TYPE temperature gauge"]
        var counters = [Int](repeating: 0, count: series)
        for k in 0..<points {
            for s in 0..<series {
                if next() % 30 == 0 { continue }
                let time = 1_700_000_000_000 + k * 15_000 + (s % 7 == 0 ? 7_000 : 0)
                if s % 2 == 0 {
                    counters[s] += Int(next() % 50) * (k > 150 && k < 160 && s == 4 ? 20 : 1)
                    if k == 100 && s == 8 { counters[s] = 0 }
                    lines.append("requests_total{svc=\"s\(s)\"} \(counters[s]) \(time)")
                } else {
                    let value = Double(next() % 1000) / 100 + (k == 120 && s == 3 ? 80 : 10)
                    lines.append("temperature{svc=\"s\(s)\"} \(k == 50 && s == 5 ? "NaN" : String(value)) \(time)")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    @Test(
        "series split over cores give the same bytes as one core, for each detector whose series are independent",
        arguments: ["surprise", "ewma", "robust"]
    )
    func splitOverCores(model: String) throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write("many.prom", Self.irregular(series: 150, points: 240))
        let one = try replay([file.path, "--model", model, "--jobs", "1"])
        let two = try replay([file.path, "--model", model, "--jobs", "2"])
        #expect(one.status == 0 && two.status == 0, "\(one.standardError)\(two.standardError)")
        #expect(two.standardError.contains("series scored on 2 cores"), "\(two.standardError)")
        #expect(!one.standardError.contains("cores"), "\(one.standardError)")
        #expect(one.standardOutput == two.standardOutput)
        #expect(one.standardOutput.contains(",1\n"), "something is flagged, so the flags are compared too")
        let ndjsonOne = try replay([file.path, "--model", model, "--jobs", "1", "--format", "ndjson", "--quiet"])
        let ndjsonTwo = try replay([file.path, "--model", model, "--jobs", "2", "--format", "ndjson", "--quiet"])
        #expect(ndjsonOne.standardOutput == ndjsonTwo.standardOutput)
    }

    @Test("a file laid out series after series is replayed a block at a time: the same bytes as read whole")
    func streamedAsWhole() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        // The irregular series, series after series (each series' lines together, in time order).
        let lines = Self.irregular(series: 150, points: 200).split(separator: "\n")
        let types = lines.filter { $0.hasPrefix("#") }
        let samples = lines.filter { !$0.hasPrefix("#") }
        let bySeries = Dictionary(grouping: samples.enumerated(), by: { $0.element.prefix { $0 != " " } })
        let order = bySeries.keys.sorted { bySeries[$0]![0].offset < bySeries[$1]![0].offset }
        let text = (types + order.flatMap { bySeries[$0]!.map(\.element) }).joined(separator: "\n") + "\n"
        let file = try directory.write("series.prom", text)
        let streamed = try replay([file.path])
        // A state to save keeps every series in one bank: the file is read whole.
        let whole = try replay([file.path, "--save-state", directory.file("state.json").path])
        #expect(streamed.status == 0 && whole.status == 0, "\(streamed.standardError)\(whole.standardError)")
        #expect(streamed.standardOutput == whole.standardOutput)
        #expect(streamed.standardOutput.contains(",1\n"), "something is flagged, so the flags are compared too")
        // The same summary, but for the cores the series were scored on.
        let summary = { (text: String) in
            // The last line without its cores and time.
            let line = (text.split(separator: "\n").last ?? "").replacing(", series scored on 2 cores", with: "")
            return line.split(separator: ", ").dropLast().joined(separator: ", ")
        }
        #expect(summary(streamed.standardError) == summary(whole.standardError), "\(streamed.standardError)")
        #expect(
            streamed.standardError.contains("series scored on 2 cores")
                || ProcessInfo.processInfo.activeProcessorCount < 2
        )
        // A pipe cannot be read twice: it is read once, whole, with the same result.
        let piped = try TestSupport.run(
            URL(fileURLWithPath: "/bin/sh"),
            [
                "-c",
                "cat '\(file.path)' | '\(TestSupport.flatlineBinary.path)' replay /dev/stdin --input-format prometheus --quiet",
            ]
        )
        #expect(piped.status == 0, "\(piped.standardError)")
        #expect(piped.standardOutput == streamed.standardOutput)
    }

    @Test("--out opens the path as it is: a symbolic link stays a link and its target gets the rows")
    func outputThroughLink() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let target = directory.file("target.csv").path
        let link = directory.file("link.csv").path
        try "old content that is longer than nothing\n".write(toFile: target, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        let result = try replay([Self.example, "--quiet", "--out", link])
        #expect(result.status == 0, "\(result.standardError)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link)) == target)
        let written = try String(contentsOfFile: target, encoding: .utf8)
        #expect(written.hasPrefix("timestamp,value,expected,lower,upper,score,anomaly\n"))
        #expect(written == (try replay([Self.example, "--quiet"])).standardOutput)
    }

    @Test(
        "an output that is the input (by its path or a link to it), another output or a state read is refused; the input is kept"
    )
    func outputOverInput() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let original = try String(contentsOfFile: Self.example, encoding: .utf8)
        let input = try directory.write("same.csv", original).path
        let link = directory.file("link.csv").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: input)
        for arguments in [
            [input, "--out", input], [input, "--out", link], [link, "--out", "\(directory.url.path)/./same.csv"],
        ] {
            let result = try replay(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.standardError.contains("is the input"), "\(result.standardError)")
            #expect(try String(contentsOfFile: input, encoding: .utf8) == original, "\(arguments) changed the input")
        }
        let saved = try replay([input, "--save-state", input])
        #expect(saved.status != 0)
        #expect(saved.standardError.contains("--save-state \(input) is the input"), "\(saved.standardError)")
        #expect(try String(contentsOfFile: input, encoding: .utf8) == original)

        let out = try directory.write("out.csv", "").path
        let both = try replay([input, "--out", out, "--alerts-out", out])
        #expect(both.status != 0)
        #expect(
            both.standardError.contains("--alerts-out \(out) is the same file as --out \(out)"),
            "\(both.standardError)"
        )

        // Paths that do not exist yet are one file too (by directory and name).
        let new = directory.file("new.csv").path
        for arguments in [
            [input, "--out", new, "--alerts-out", "\(directory.url.path)/./new.csv"],
            [input, "--out", new, "--save-state", new],
        ] {
            let result = try replay(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.standardError.contains("is the same file as --out \(new)"), "\(result.standardError)")
        }
        // A state that is not there, or is a directory, says so.
        for (path, why) in [(directory.file("none.json").path, "no such file"), (directory.url.path, "a directory")] {
            let missing = try replay([input, "--quiet", "--out", out, "--load-state", path])
            #expect(missing.status == 1)
            #expect(missing.standardError.contains("\(path): cannot read: \(why)"), "\(missing.standardError)")
        }
        // An output after the rows that cannot be written is refused before them.
        let nowhere = directory.file("missing/state.json").path
        let unwritable = try replay([input, "--quiet", "--out", out, "--save-state", nowhere])
        #expect(unwritable.status == 1)
        #expect(
            unwritable.standardError.contains(
                "--save-state \(nowhere): the directory \(directory.url.path)/missing does not exist"
            ),
            "\(unwritable.standardError)"
        )
        #expect(try String(contentsOfFile: out, encoding: .utf8).isEmpty, "rows written before the refusal")

        // Saving over the state it loaded is allowed: the state is replaced only at the end.
        let state = directory.file("state.json").path
        #expect(try replay([input, "--quiet", "--out", out, "--save-state", state]).status == 0)
        let again = try replay([input, "--quiet", "--out", out, "--load-state", state, "--save-state", state])
        #expect(again.status == 0, "\(again.standardError)")
        let loaded = try replay([input, "--quiet", "--out", state, "--load-state", state])
        #expect(loaded.status != 0)
        #expect(loaded.standardError.contains("--out \(state) is --load-state"), "\(loaded.standardError)")
    }

    @Test("a pipe, standard input or a FIFO is read once and replays as the file does, whatever its format")
    func pipes() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let recording = TestSupport.repositoryFile(
            "Tests/FlatlineIngestTests/Fixtures/nats/scenario-freeze-flood.ndjson.gz"
        ).path
        let binary = TestSupport.flatlineBinary.path
        for file in [Self.example, recording] {
            let direct = try replay([file, "--quiet"])
            #expect(direct.status == 0, "\(direct.standardError)")
            let fifo = directory.file("fifo").path
            for script in [
                "cat '\(file)' | '\(binary)' replay /dev/stdin --quiet",
                "'\(binary)' replay <(cat '\(file)') --quiet",
                "rm -f '\(fifo)'; mkfifo '\(fifo)'; cat '\(file)' > '\(fifo)' & '\(binary)' replay '\(fifo)' --quiet",
            ] {
                let piped = try TestSupport.run(URL(fileURLWithPath: "/bin/bash"), ["-c", script], timeout: 120)
                #expect(piped.status == 0, "\(script): \(piped.standardError)")
                #expect(piped.standardOutput == direct.standardOutput, "\(script)")
            }
        }
        // A bad line is named as the input was given.
        let bad = try TestSupport.run(
            URL(fileURLWithPath: "/bin/bash"),
            ["-c", "printf 'timestamp,value\\n1,x\\n' | '\(binary)' replay /dev/stdin"],
            timeout: 60
        )
        #expect(bad.status == 1)
        #expect(bad.standardError.contains("/dev/stdin:2: "), "\(bad.standardError)")
    }

    @Test("a value that is not a number names the column taken as the value when none is named value")
    func valueColumnNamed() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let file = try directory.write(
            "hosts.csv",
            "timestamp,host,cpu\n2026-01-01 00:00:00,web1,0.5\n2026-01-01 00:01:00,web2,0.7\n"
        )
        let result = try replay([file.path])
        #expect(result.status != 0)
        #expect(
            result.standardError.contains(
                #"hosts.csv:2: value "web1" is not a number (no column is named "value", so column "host" is read as the value"#
            ),
            "\(result.standardError)"
        )
        // Named, the right column is scored.
        let named = try directory.write(
            "named.csv",
            "timestamp,host,value\n2026-01-01 00:00:00,web1,0.5\n2026-01-01 00:01:00,web1,0.7\n"
        )
        #expect(try replay([named.path, "--quiet"]).status == 0)
    }

    @Test("a CSV of several value columns and none named value says which one is scored and which are not")
    func wideCSVWarned() throws {
        let directory = try TestSupport.TemporaryDirectory()
        defer { directory.remove() }
        let warning =
            #"no column is named "value": column "cpu" is scored, "mem", "disk" are not (a CSV file is one series"#
        // In time order (streamed) and not (read whole): the same warning, and the rows of `cpu`.
        for (name, times) in [
            ("ordered.csv", ["00:00", "00:01", "00:02"]), ("unordered.csv", ["00:02", "00:00", "00:01"]),
        ] {
            let rows = times.enumerated().map { k, t in "2026-01-01 \(t):00,\(k).5,\(k + 10),\(k + 20)" }
            let file = try directory.write(name, "timestamp,cpu,mem,disk\n" + rows.joined(separator: "\n") + "\n")
            let result = try replay([file.path, "--quiet"])
            #expect(result.status == 0, "\(result.standardError)")
            #expect(result.standardError.contains("\(name): \(warning)"), "\(name): \(result.standardError)")
            let values = result.standardOutput.split(separator: "\n").dropFirst().map { $0.split(separator: ",")[1] }
            #expect(Set(values) == ["0.5", "1.5", "2.5"], "\(result.standardOutput)")
        }
        // A labelled file (timestamp, value, label) replays without a word.
        let labelled = try directory.write(
            "labelled.csv",
            "timestamp,value,label\n2026-01-01 00:00:00,1,0\n2026-01-01 00:01:00,2,0\n"
        )
        let quiet = try replay([labelled.path, "--quiet"])
        #expect(quiet.status == 0 && quiet.standardError.isEmpty, "\(quiet.standardError)")
    }
}
