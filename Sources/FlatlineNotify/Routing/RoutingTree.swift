import FlatlineConfig
import FlatlineCore

/// How a route splits its alerts into groups.
public enum GroupBy: Sendable, Hashable {
    /// One group per distinct tuple of these labels' values.
    case labels([String])
    /// `group_by: ['...']`: every alert is its own group.
    case everything

    /// The group labels of an alert.
    public func groupLabels(_ labels: [String: String]) -> [String: String] {
        switch self {
        case .everything:
            return labels
        case .labels(let names):
            var out: [String: String] = [:]
            for name in names {
                if let value = labels[name] { out[name] = value }
            }
            return out
        }
    }
}

/// A route with its options resolved (inherited ones filled in) and its Alertmanager key.
public struct ResolvedRoute: Sendable, Hashable {
    /// Position in the tree, depth first.
    public var index: Int
    /// Alertmanager's route key: the matchers of every route from the root, `{}/{team="a"}`.
    public var key: String
    public var receiver: String
    public var matchers: [LabelMatcher]
    public var groupBy: GroupBy
    public var groupWait: Double
    public var groupInterval: Double
    public var repeatInterval: Double
    public var continueMatching: Bool
    public var children: [Int]
}

/// The routing tree, as Alertmanager walks it: every alert enters at the root; it descends into
/// the first child that matches (and, past a child with `continue`, into later matching
/// siblings too); a route none of whose children match takes the alert itself.
public struct RoutingTree: Sendable, Hashable {
    public private(set) var routes: [ResolvedRoute] = []

    /// Alertmanager's defaults: 30 s group wait, 5 min group interval, 4 h repeat interval.
    public static let defaultGroupWait = 30.0
    public static let defaultGroupInterval = 300.0
    public static let defaultRepeatInterval = 14_400.0

    public init(_ root: RouteSettings) {
        _ = add(
            root,
            parentKey: nil,
            inherited: ResolvedRoute(
                index: 0,
                key: "",
                receiver: root.receiver ?? "",
                matchers: [],
                groupBy: .labels([]),
                groupWait: Self.defaultGroupWait,
                groupInterval: Self.defaultGroupInterval,
                repeatInterval: Self.defaultRepeatInterval,
                continueMatching: false,
                children: []
            )
        )
    }

    private mutating func add(_ settings: RouteSettings, parentKey: String?, inherited: ResolvedRoute) -> Int {
        var route = inherited
        route.index = routes.count
        route.matchers = settings.matchers
        let own = "{" + settings.matchers.map(\.description).joined(separator: ",") + "}"
        route.key = parentKey.map { $0 + "/" + own } ?? own
        if let receiver = settings.receiver { route.receiver = receiver }
        if let groupBy = settings.groupBy { route.groupBy = groupBy == ["..."] ? .everything : .labels(groupBy) }
        if let v = settings.groupWait { route.groupWait = v }
        if let v = settings.groupInterval { route.groupInterval = v }
        if let v = settings.repeatInterval { route.repeatInterval = v }
        route.continueMatching = settings.continueMatching
        route.children = []
        routes.append(route)
        let index = route.index
        for child in settings.routes {
            let childIndex = add(child, parentKey: route.key, inherited: route)
            routes[index].children.append(childIndex)
        }
        return index
    }

    /// The routes that take an alert with these labels, in tree order.
    public func match(_ labels: [String: String]) -> [ResolvedRoute] { matchIndices(labels).map { routes[$0] } }

    /// The positions of those routes.
    public func matchIndices(_ labels: [String: String]) -> [Int] {
        guard !routes.isEmpty else { return [] }
        var out: [Int] = []
        _ = collect(0, labels, into: &out)
        return out
    }

    /// Appends the routes under `index` that take the alert; returns whether `index` matched.
    private func collect(_ index: Int, _ labels: [String: String], into out: inout [Int]) -> Bool {
        // Read in place: copying a route would retain every string and array in it.
        guard routes[index].matchers.allSatisfy({ $0.matches(labels) }) else { return false }
        let before = out.count
        for child in routes[index].children {
            if collect(child, labels, into: &out) && !routes[child].continueMatching { break }
        }
        if out.count == before { out.append(index) }
        return true
    }
}

/// Alertmanager's text of a label set: `{a="1", b="2"}`, sorted by name.
func labelSetText(_ labels: [String: String]) -> String {
    "{" + labels.keys.sorted().map { "\($0)=\"\(LabelSet.escape(labels[$0] ?? ""))\"" }.joined(separator: ", ") + "}"
}
