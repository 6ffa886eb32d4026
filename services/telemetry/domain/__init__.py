"""Pure telemetry rules: record validation and the drone-state fold; no I/O, no clock."""
