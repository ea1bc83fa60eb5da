import FlatlineCore

/// A job's limits on what one body may hold, with Prometheus' keys and meaning: past any of
/// them the scrape of that body fails with the reason (`up` 0), and nothing of it is kept.
/// 0 means the key is not set.
public struct ScrapeLimits: Sendable, Hashable {
    /// `sample_limit`: the most samples one body may give after relabeling (an exposition, or
    /// one NATS endpoint with all its pages).
    public var sampleLimit = 0
    /// `label_limit`: the most labels a sample may have (the name included), after relabeling.
    /// Whatever it says, more than ``LabelSet/maximumCount`` are never accepted.
    public var labelLimit = 0
    /// `label_name_length_limit`: the longest label name, in bytes.
    public var labelNameLengthLimit = 0
    /// `label_value_length_limit`: the longest label value, in bytes.
    public var labelValueLengthLimit = 0

    public init(
        sampleLimit: Int = 0,
        labelLimit: Int = 0,
        labelNameLengthLimit: Int = 0,
        labelValueLengthLimit: Int = 0
    ) {
        self.sampleLimit = sampleLimit
        self.labelLimit = labelLimit
        self.labelNameLengthLimit = labelNameLengthLimit
        self.labelValueLengthLimit = labelValueLengthLimit
    }

    /// The label limit that applies: the configured one, never above ``LabelSet/maximumCount``.
    public var effectiveLabelLimit: Int {
        labelLimit > 0 ? Swift.min(labelLimit, LabelSet.maximumCount) : LabelSet.maximumCount
    }

    /// Checks one body's samples.
    /// - Throws: ``ExtractionError`` naming the limit, the value and the series.
    func check(_ samples: [Sample], endpoint: String) throws(ExtractionError) {
        if sampleLimit > 0, samples.count > sampleLimit {
            throw ExtractionError(
                endpoint: endpoint,
                reason: "sample_limit exceeded: \(samples.count) samples, the limit is \(sampleLimit)"
            )
        }
        let labelLimit = effectiveLabelLimit
        let lengthLimits = labelNameLengthLimit > 0 || labelValueLengthLimit > 0
        for sample in samples {
            if sample.labels.count > labelLimit {
                throw ExtractionError(
                    endpoint: endpoint,
                    reason:
                        "label_limit exceeded: \(Self.name(sample)) has \(sample.labels.count) labels, the limit is "
                        + "\(labelLimit)"
                )
            }
            guard lengthLimits else { continue }
            for label in sample.labels.labels {
                if labelNameLengthLimit > 0, label.name.utf8.count > labelNameLengthLimit {
                    throw ExtractionError(
                        endpoint: endpoint,
                        reason: "label_name_length_limit exceeded: \(Self.name(sample)) has a label name of "
                            + "\(label.name.utf8.count) bytes, the limit is \(labelNameLengthLimit)"
                    )
                }
                if labelValueLengthLimit > 0, label.value.utf8.count > labelValueLengthLimit {
                    throw ExtractionError(
                        endpoint: endpoint,
                        reason: "label_value_length_limit exceeded: label \(label.name.prefix(64)) of "
                            + "\(Self.name(sample)) is \(label.value.utf8.count) bytes, the limit is "
                            + "\(labelValueLengthLimit)"
                    )
                }
            }
        }
    }

    private static func name(_ sample: Sample) -> String {
        let name = sample.labels.metricName
        return name.isEmpty ? "a series" : String(name.prefix(100))
    }
}
