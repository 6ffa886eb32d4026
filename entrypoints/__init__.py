"""The composition layer: the `airgrid` CLI, `airgrid up` and the schema of every service.

It sits above the services, gateways and benchmarks and wires them together; nothing below
imports it (an import-linter contract in `make test` keeps it so)."""
