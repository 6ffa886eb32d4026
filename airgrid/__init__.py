"""airgrid: the shared kernel (config, bus, database, geo, auth, observability, events, CLI)."""

__version__ = "0.1.0"
