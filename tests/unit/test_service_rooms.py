"""The three services have the same rooms, and no hand-written module of the project passes
about 500 lines: a newcomer finds a concern from the file names alone.

Generated protobuf modules (`*_pb2.py`) are not hand-written and not counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("api.py", "app.py", "service.py", "schemas.py", "models.py", "metrics.py", "domain")
MAX_LINES = 500
CHECKED = ("dispatch", "registry", "telemetry")
PACKAGES = (
    "airgrid",
    "services",
    "gateways",
    "entrypoints",
    "deploy",
    "loadtests",
    "scripts",
    "tests",
)


@pytest.mark.parametrize("name", CHECKED)
def test_a_service_has_every_room(name: str) -> None:
    service = ROOT / "services" / name
    missing = [room for room in ROOMS if not (service / room).exists()]
    assert missing == [], f"services/{name} lacks {missing}"


@pytest.mark.parametrize("name", CHECKED)
def test_no_module_of_a_service_passes_the_bound(name: str) -> None:
    service = ROOT / "services" / name
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(service.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


def test_no_hand_written_module_passes_the_bound() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not path.name.endswith("_pb2.py")
        and (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these modules (over {MAX_LINES} lines): {long}"


def test_feed_routing_has_a_module_named_for_it() -> None:
    routing = (ROOT / "services" / "telemetry" / "feed_routing.py").read_text()
    assert "class FeedRouting" in routing
    assert "def departments_of" in routing
