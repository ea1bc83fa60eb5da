extension LabelSet {
    /// The prefix a scraped label takes when the target sets a label of the same name.
    public static let exportedPrefix = "exported_"

    /// A target's labels over a scraped series' labels, Prometheus' way (without
    /// `honor_labels`): the target's value wins, and the scraped value is kept as
    /// `exported_<name>`, prefixed again (`exported_exported_<name>`...) until the name is free,
    /// conflicts taken shortest name first. So `m{job="a",exported_job="b"}` from a target of
    /// job `x` is `{exported_exported_job="a", exported_job="b", job="x"}`: no name twice, ever.
    ///
    /// - Parameters:
    ///   - target: the target's labels, sorted by name, names unique, values not empty.
    ///   - exposed: the scraped labels, names unique, in any order.
    /// - Returns: all labels, sorted by name, names unique.
    package static func mergingTargetLabels(_ target: [Label], into exposed: [Label]) -> [Label] {
        var own = exposed
        own.sort { $0.name.utf8Precedes($1.name) }
        // The common case: no scraped name is a target name; a merge of two sorted lists.
        guard own.contains(where: { label in target.contains { $0.name == label.name } }) else {
            return merge(target, own)
        }
        var taken = Set(own.map(\.name))
        for label in target { taken.insert(label.name) }
        var conflicts: [Label] = []
        own.removeAll { label in
            guard target.contains(where: { $0.name == label.name }) else { return false }
            conflicts.append(label)
            return true
        }
        // Shortest first, as Prometheus resolves them; the sort is stable for equal lengths.
        conflicts = conflicts.enumerated().sorted {
            ($0.element.name.utf8.count, $0.offset) < ($1.element.name.utf8.count, $1.offset)
        }.map(\.element)
        for label in conflicts {
            var name = label.name
            repeat { name = exportedPrefix + name } while taken.contains(name)
            taken.insert(name)
            own.append(Label(name: name, value: label.value))
        }
        own.sort { $0.name.utf8Precedes($1.name) }
        return merge(target, own)
    }

    /// Two sorted label lists with no name in both, as one sorted list.
    package static func merge(_ a: [Label], _ b: [Label]) -> [Label] {
        var out: [Label] = []
        out.reserveCapacity(a.count + b.count)
        var i = 0
        var j = 0
        while i < a.count && j < b.count {
            if a[i].name.utf8Precedes(b[j].name) {
                out.append(a[i])
                i += 1
            } else {
                out.append(b[j])
                j += 1
            }
        }
        out.append(contentsOf: a[i...])
        out.append(contentsOf: b[j...])
        return out
    }
}
