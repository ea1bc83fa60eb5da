/// Messages on a subject, as an async sequence.
///
/// The subscription buffers up to ``NATSClientConfiguration/subscriptionBufferMessages``
/// messages; when the consumer falls further behind, new messages are dropped and counted in
/// ``droppedMessages`` and the client's statistics, and a warning is logged: a client-side slow
/// consumer is visible, not silent. The sequence ends after ``unsubscribe()``, ``NATSClient/drain(timeout:)``
/// or ``NATSClient/close()``, once the buffered messages are read.
public struct NATSSubscription: AsyncSequence, Sendable {
    public typealias Element = NATSMessage

    /// The subscription's id on the connection.
    public let sid: UInt64
    /// The subject, wildcards included.
    public let subject: String
    /// The queue group, if any.
    public let queue: String?
    let stream: AsyncStream<NATSMessage>
    let client: NATSClient

    public func makeAsyncIterator() -> AsyncStream<NATSMessage>.Iterator { stream.makeAsyncIterator() }

    /// Messages dropped so far because this subscription's buffer was full.
    public var droppedMessages: Int { client.droppedMessages(sid: sid) }

    /// Stops the subscription; the sequence ends once buffered messages are read.
    public func unsubscribe() throws(NATSError) { try client.unsubscribe(sid: sid, after: nil) }

    /// Ends the subscription after `messages` more messages (the server stops sending then too).
    public func unsubscribe(after messages: Int) throws(NATSError) { try client.unsubscribe(sid: sid, after: messages) }
}
