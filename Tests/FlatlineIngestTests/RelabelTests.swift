import FlatlineCore
import Testing

@testable import FlatlineIngest

/// Relabeling as Prometheus does it (relabel.Process): anchored patterns, `$1`/`${name}`
/// expansion, empty results delete the label, and the six actions.
@Suite("Relabeling")
struct RelabelTests {
    static let sample: LabelSet = {
        (try? LabelSet(validating: [
            "__name__": "gnatsd_connz_in_msgs", "client_name": "orders-worker-7", "cid": "12", "job": "nats",
        ]))
            ?? LabelSet()
    }()

    static func run(_ rules: [RelabelRule], _ labels: LabelSet = sample) -> [String: String]? {
        var relabeler = Relabeler(rules: rules)
        return relabeler.relabel(labels)?.dictionary
    }

    @Test("replace derives a client group from the connection name")
    func replaceClientGroup() throws {
        let rule = try RelabelRule(
            sourceLabels: ["client_name"],
            regex: "(.+)-worker-\\d+",
            targetLabel: "client_group",
            replacement: "$1"
        )
        #expect(Self.run([rule])?["client_group"] == "orders")
        // No match: unchanged.
        let other = try RelabelRule(sourceLabels: ["client_name"], regex: "api-(.*)", targetLabel: "client_group")
        #expect(Self.run([other]) == Self.sample.dictionary)
    }

    @Test("patterns are anchored at both ends")
    func anchored() throws {
        let rule = try RelabelRule(action: .keep, sourceLabels: ["client_name"], regex: "worker")
        #expect(Self.run([rule]) == nil)
        let whole = try RelabelRule(action: .keep, sourceLabels: ["client_name"], regex: ".*worker.*")
        #expect(Self.run([whole]) != nil)
    }

    @Test("several source labels are joined with the separator")
    func separator() throws {
        let rule = try RelabelRule(sourceLabels: ["job", "cid"], separator: "/", regex: "(.*)", targetLabel: "key")
        #expect(Self.run([rule])?["key"] == "nats/12")
    }

    @Test("an empty replacement removes the target label; ${name} and $$ expand")
    func expansion() throws {
        let remove = try RelabelRule(sourceLabels: ["cid"], regex: ".*", targetLabel: "job", replacement: "")
        #expect(Self.run([remove])?["job"] == nil)
        let named = try RelabelRule(
            sourceLabels: ["client_name"],
            regex: "(?<svc>[a-z]+)-(?<role>[a-z]+)-\\d+",
            targetLabel: "x",
            replacement: "${role}@${svc}$$"
        )
        #expect(Self.run([named])?["x"] == "worker@orders$")
        // As in Go's Expand, `$1x` names the group "1x", which does not exist.
        let greedy = try RelabelRule(sourceLabels: ["cid"], regex: "(.*)", targetLabel: "y", replacement: "$1x")
        #expect(Self.run([greedy])?["y"] == nil)
        let braced = try RelabelRule(sourceLabels: ["cid"], regex: "(.*)", targetLabel: "y", replacement: "${1}x")
        #expect(Self.run([braced])?["y"] == "12x")
    }

    @Test("keep and drop")
    func keepDrop() throws {
        let drop = try RelabelRule(action: .drop, sourceLabels: ["__name__"], regex: "gnatsd_connz_.*")
        #expect(Self.run([drop]) == nil)
        let keep = try RelabelRule(action: .keep, sourceLabels: ["job"], regex: "nats|other")
        #expect(Self.run([keep]) == Self.sample.dictionary)
    }

    @Test("labelmap, labeldrop, labelkeep (never the metric name)")
    func labelActions() throws {
        let map = try RelabelRule(action: .labelmap, regex: "client_(.*)", replacement: "c_$1")
        #expect(Self.run([map])?["c_name"] == "orders-worker-7")
        #expect(Self.run([map])?["client_name"] == "orders-worker-7")
        let drop = try RelabelRule(action: .labeldrop, regex: "cid|client_.*")
        #expect(Self.run([drop]) == ["__name__": "gnatsd_connz_in_msgs", "job": "nats"])
        let keep = try RelabelRule(action: .labelkeep, regex: "job")
        #expect(Self.run([keep]) == ["__name__": "gnatsd_connz_in_msgs", "job": "nats"])
    }

    @Test("rules apply in order")
    func order() throws {
        let derive = try RelabelRule(sourceLabels: ["client_name"], regex: "(.+)-\\d+", targetLabel: "client_group")
        let dropOrders = try RelabelRule(action: .drop, sourceLabels: ["client_group"], regex: "orders-worker")
        #expect(Self.run([derive, dropOrders]) == nil)
        #expect(Self.run([dropOrders, derive])?["client_group"] == "orders-worker")
    }

    @Test("rules that cannot work are refused with the reason")
    func invalid() {
        #expect(throws: RelabelError.self) { try RelabelRule(regex: "(unclosed") }
        #expect(throws: RelabelError.self) { try RelabelRule(action: .replace, sourceLabels: ["a"]) }
        #expect(throws: RelabelError.self) { try RelabelRule(action: .keep) }
    }
}
