/// A dense matrix of doubles stored column by column (the layout LAPACK works in).
///
/// Element `(row, column)` is at `storage[column * rows + row]`. Flatline keeps series in columns:
/// a matrix of per-series coefficient vectors has one column per series slot.
public struct Matrix: Hashable, Sendable {
    /// The number of rows.
    public private(set) var rows: Int
    /// The number of columns.
    public private(set) var columns: Int
    /// The elements in column-major order; `rows * columns` of them.
    public var storage: [Double]

    /// A `rows` × `columns` matrix filled with `value`.
    public init(rows: Int, columns: Int, repeating value: Double = 0) {
        precondition(rows >= 0 && columns >= 0, "Matrix dimensions must not be negative")
        self.rows = rows
        self.columns = columns
        storage = Array(repeating: value, count: rows * columns)
    }

    /// A matrix over column-major `storage`.
    /// - Throws: ``NumericsError`` when `storage` does not hold `rows * columns` elements.
    public init(rows: Int, columns: Int, columnMajor storage: [Double]) throws(NumericsError) {
        guard rows >= 0, columns >= 0, storage.count == rows * columns else {
            throw NumericsError(
                .shapeMismatch,
                routine: "Matrix",
                "\(storage.count) elements for a \(rows)×\(columns) matrix"
            )
        }
        self.rows = rows
        self.columns = columns
        self.storage = storage
    }

    /// A matrix from its rows, as written on paper.
    /// - Throws: ``NumericsError`` when the rows differ in length.
    public init(rowMajor rowsOfValues: [[Double]]) throws(NumericsError) {
        let r = rowsOfValues.count
        let c = rowsOfValues.first?.count ?? 0
        guard rowsOfValues.allSatisfy({ $0.count == c }) else {
            throw NumericsError(.shapeMismatch, routine: "Matrix", "rows of different lengths")
        }
        var storage = [Double](repeating: 0, count: r * c)
        for i in 0..<r {
            for j in 0..<c { storage[j * r + i] = rowsOfValues[i][j] }
        }
        self.rows = r
        self.columns = c
        self.storage = storage
    }

    /// The `n` × `n` identity matrix.
    public static func identity(_ n: Int) -> Matrix {
        var m = Matrix(rows: n, columns: n)
        for i in 0..<n { m[i, i] = 1 }
        return m
    }

    /// Element access.
    public subscript(row: Int, column: Int) -> Double {
        get { storage[column * rows + row] }
        set { storage[column * rows + row] = newValue }
    }

    /// Column `j` as an array.
    public func column(_ j: Int) -> [Double] { Array(storage[(j * rows)..<((j + 1) * rows)]) }

    /// The transpose.
    public var transposed: Matrix {
        var t = Matrix(rows: columns, columns: rows)
        for j in 0..<columns {
            for i in 0..<rows { t[j, i] = self[i, j] }
        }
        return t
    }

    /// Whether every element is finite.
    public var isFinite: Bool { storage.allSatisfy(\.isFinite) }
}
