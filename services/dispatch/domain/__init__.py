"""The dispatch core: a pure, deterministic state machine (no clock, no I/O, no randomness)."""
