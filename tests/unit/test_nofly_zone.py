"""The one no-fly zone type: its window is half-open, [active_from_ms, active_until_ms)."""

from __future__ import annotations

from airgrid.nofly import NoFlyZone

SQUARE = ((0.0, 0.0), (0.01, 0.0), (0.01, 0.01), (0.0, 0.01))


def test_in_force_at_its_start_and_not_at_its_end() -> None:
    zone = NoFlyZone("nfz-1", SQUARE, active_from_ms=1_000, active_until_ms=2_000)
    assert not zone.active_at(999)
    assert zone.active_at(1_000)
    assert zone.active_at(1_999)
    assert not zone.active_at(2_000)
    assert not zone.active_at(2_001)


def test_a_lifted_zone_and_its_successor_never_overlap() -> None:
    lifted = NoFlyZone("nfz-1", SQUARE, active_until_ms=5_000)
    successor = NoFlyZone("nfz-2", SQUARE, active_from_ms=5_000)
    assert [z.id for z in (lifted, successor) if z.active_at(5_000)] == ["nfz-2"]
    assert [z.id for z in (lifted, successor) if z.active_at(4_999)] == ["nfz-1"]


def test_zero_bounds_are_unbounded() -> None:
    zone = NoFlyZone("nfz-1", SQUARE)
    assert zone.active_at(0)
    assert zone.active_at(2**62)


def test_both_services_read_the_same_rule() -> None:
    zone = NoFlyZone("nfz-1", list(SQUARE), 1_000, 2_000)
    for at_ms in (999, 1_000, 1_999, 2_000):
        assert zone.is_active(at_ms) == zone.active_at(at_ms)
    assert zone.zone_id == zone.id == "nfz-1"


def test_rings_from_lists_or_tuples_make_equal_zones() -> None:
    from_list = NoFlyZone("nfz-1", [list(p) for p in SQUARE])  # type: ignore[misc]
    from_tuple = NoFlyZone("nfz-1", SQUARE)
    assert from_list == from_tuple
    assert hash(from_list) == hash(from_tuple)
    assert from_tuple.contains(0.005, 0.005)
    assert not from_tuple.contains(0.02, 0.005)
