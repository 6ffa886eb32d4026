"""Every collector of the registry service (a leaf: adapters import it, it imports none)."""

from __future__ import annotations

from prometheus_client import Counter

SNAPSHOTS_REPUBLISHED = Counter(
    "airgrid_registry_snapshots_republished_total",
    "Times the registry published its whole content again after the broker lost its data.",
)
