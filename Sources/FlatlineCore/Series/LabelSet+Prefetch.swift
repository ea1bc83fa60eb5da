import CPrefetch

extension LabelSet {
    /// Where this label set's storage lives, as a number: for ``prefetch(storageAt:)`` only, never
    /// read through (0 when it has none). It stays right while the label set is kept unchanged.
    package var storageAddress: UInt {
        // The elements follow the storage object's header (its type, reference count, count and
        // capacity: 32 bytes on 64-bit platforms); the count is what a retain touches.
        labels.withUnsafeBufferPointer { buffer in
            guard let elements = buffer.baseAddress else { return 0 }
            return UInt(bitPattern: elements) &- 32
        }
    }

    /// Asks the processor to bring the label set stored at `address` (``storageAddress``) into
    /// the cache: a walk over remembered series pays a cache miss at each one's first touch, which
    /// a prefetch a few series ahead overlaps with the work in between. Never faults and changes
    /// no result, whatever the address.
    @inline(__always)
    package static func prefetch(storageAt address: UInt) {
        guard address != 0 else { return }
        flatline_prefetch(UnsafeRawPointer(bitPattern: address))
    }
}
