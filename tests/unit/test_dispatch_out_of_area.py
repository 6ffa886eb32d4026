"""The dispatch core keeps nests, no-fly zones and drones outside the zone out of its grids
and run cards, and reports each one; its cards stay bounded whatever the nests' spread."""

from __future__ import annotations

import math

from airgrid.geo import destination_point
from airgrid.nofly import NoFlyZone
from services.dispatch.domain.core import DispatchCore
from services.dispatch.domain.model import Assigned, NestView
from services.dispatch.domain.run_cards import MAX_CARD_CELLS, RunCards
from tests.builders import BASE_LAT, BASE_LON
from tests.unit.test_dispatch_core import drone, incident

# A 20 km square around the base: the zone of these tests.
AREA = (
    (BASE_LON - 0.1, BASE_LAT - 0.09),
    (BASE_LON + 0.1, BASE_LAT - 0.09),
    (BASE_LON + 0.1, BASE_LAT + 0.09),
    (BASE_LON - 0.1, BASE_LAT + 0.09),
    (BASE_LON - 0.1, BASE_LAT - 0.09),
)
FAR = destination_point(BASE_LON, BASE_LAT, 45.0, 5_000_000.0)  # 5,000 km north-east


def cells_spanned(cards: RunCards) -> int:
    """How many response cells the nests' bounding box covers: what one pass would build."""
    xs = [xy[0] for xy in cards.anchors.values()]
    ys = [xy[1] for xy in cards.anchors.values()]
    width = math.ceil((max(xs) - min(xs)) / cards.cell_m) + 1
    height = math.ceil((max(ys) - min(ys)) / cards.cell_m) + 1
    return width * height


def zone_core() -> DispatchCore:
    core = DispatchCore(origin=(BASE_LON, BASE_LAT), area=AREA)
    core.upsert_nest(NestView("nest-01", BASE_LON, BASE_LAT))
    core.upsert_drone(drone(1))
    return core


def test_a_nest_5000_km_away_is_kept_out_and_the_cards_stay_bounded() -> None:
    core = zone_core()
    assert core.upsert_nest(NestView("nest-far", *FAR)) == []

    assert "nest-far" not in core.cards.anchors and "nest-far" not in core.nests
    assert cells_spanned(core.cards) <= MAX_CARD_CELLS
    [kept_out] = core.take_out_of_area()
    assert (kept_out.kind, kept_out.entity_id) == ("nest", "nest-far")
    assert "outside the zone" in kept_out.reason
    assert core.take_out_of_area() == []  # reported once

    decisions = core.accept(incident(1))
    core.tick(10_000)
    assert any(isinstance(d, Assigned) for d in decisions)
    assert core.cards._order is not None and len(core.cards._order) <= MAX_CARD_CELLS


def test_a_drone_reported_far_away_is_not_searched_and_a_far_zone_is_ignored() -> None:
    core = zone_core()
    core.upsert_drone(drone(2, lon=FAR[0], lat=FAR[1]))
    ring = ((FAR[0], FAR[1]), (FAR[0] + 0.01, FAR[1]), (FAR[0], FAR[1] + 0.01))
    core.upsert_zone(NoFlyZone("nfz-far", ring))

    assert "drone-002" not in core.index and "drone-002" in core.outside
    assert "nfz-far" not in core.zones
    assert [(k.kind, k.entity_id) for k in core.take_out_of_area()] == [
        ("drone", "drone-002"),
        ("geofence", "nfz-far"),
    ]
    grid = core.live._bounds
    assert grid is None or (grid[2] - grid[0] + 1) * (grid[3] - grid[1] + 1) <= MAX_CARD_CELLS

    core.upsert_drone(drone(2, lon=BASE_LON + 0.01, lat=BASE_LAT))  # back in the zone
    assert "drone-002" in core.index and "drone-002" not in core.outside


def test_run_cards_of_nests_spread_wider_than_the_cap_are_built_per_cell() -> None:
    cards = RunCards(500.0)
    cards.set_nest("a", (0.0, 0.0))
    cards.set_nest("b", (300_000.0, 300_000.0))
    assert cells_spanned(cards) > MAX_CARD_CELLS

    card = cards.card((100.0, 100.0))
    assert [nest for _, nest in card.nests] == ["a", "b"]
    assert cards._order is not None and len(cards._order) <= MAX_CARD_CELLS


def test_a_core_without_an_area_takes_everything() -> None:
    core = DispatchCore()
    core.upsert_nest(NestView("nest-far", *FAR))
    assert "nest-far" in core.nests and core.take_out_of_area() == []
