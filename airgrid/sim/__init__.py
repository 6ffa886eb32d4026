"""The closed-loop digital twin: simulated drones, nests and incident load (`airgrid sim`).

- `physics`: one drone's flight and battery, pure (time is an input).
- `fleet`: every drone of the reference zone, and the telemetry each tick makes due.
- `incidents`: seeded incident generator (department, type, point inside the zone).
- `start_state`: the fleet at the start: all docked, or mid-operation (a seeded warm-up).
- `runner`: the I/O around them: Kafka telemetry out, commands in, incidents over HTTP.
"""
