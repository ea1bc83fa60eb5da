extension Scenario {
    /// The scenario `flatline loadgen` runs without `--scenario`: normal traffic, a consumer
    /// freeze, then a producer flood, the shape of the incidents Flatline exists to catch.
    public static let builtInYAML = """
        # flatline loadgen: the built-in scenario. Copy it, edit it, pass it with --scenario.
        name: freeze-and-flood
        seed: 42                      # the same seed gives the same traffic pattern
        duration: 4m                  # default: end of the last incident + 20s

        streams:                      # JetStream streams to create
          - name: ORDERS
            subjects: ["orders.>"]
            storage: file             # file | memory
          - name: PAYMENTS
            subjects: ["payments.>"]

        consumers:                    # durable pull consumers, each drained by a worker
          - stream: ORDERS
            name: worker
            capacity: 500             # messages/s the worker processes at most
            max_ack_pending: 200
            ack_wait: 10s
            batch: 50                 # messages per pull
          - stream: ORDERS
            name: archiver
            capacity: 2000
          - stream: PAYMENTS
            name: settler
            capacity: 500

        publishers:                   # each on its own connection, named as here
          - name: orders-producer
            subject: orders.new
            rate: 20                  # messages/s on average
            amplitude: 0.25           # the rate swings ±25% along a sinusoid...
            period: 60s               # ...with this period
            noise: 0.1                # per-second multiplicative noise (standard deviation)
            payload: 256              # bytes
          - name: payments-producer
            subject: payments.new
            rate: 10
          - name: telemetry-producer
            subject: telemetry.host
            rate: 50
            payload: 1024

        subscribers:                  # core subscribers, each on its own connection
          - name: audit-sub
            subject: "orders.>"
          - name: dashboard-sub
            subject: "payments.>"
            queue: dashboard
          - name: telemetry-sub
            subject: "telemetry.>"

        incidents:                    # what goes wrong, and when (seconds from the start)
          - kind: freeze              # freeze | flood | slow_subscriber
            target: ORDERS/worker     # STREAM/consumer
            mode: noack               # noack: pulls but never acks; nofetch: stops pulling
            at: 90s
            duration: 60s
          - kind: flood
            target: orders-producer   # a publisher
            multiplier: 50            # times its normal rate
            at: 180s
            duration: 30s
        """

    /// ``builtInYAML``, parsed.
    public static var builtIn: Scenario {
        // The text above is part of the program and checked by a test; it always parses.
        (try? parse(yaml: builtInYAML, source: "built-in scenario")) ?? Scenario(emptyNamed: "built-in")
    }

    init(emptyNamed name: String) {
        self.name = name
    }
}
