"""What happened to the simulated incidents: decisions and mission stages joined with what
the simulator posted, summarised per department and priority (the dashboard and the SLA
report both read it).

`Outcomes` is pure bookkeeping; `follow_outcomes` is the Kafka edge that feeds it from
airgrid.dispatch.decisions and airgrid.mission.events.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer

from airgrid.bus import client_options, topic_name, topic_partitions
from airgrid.config import Settings
from airgrid.topics import DISPATCH_DECISIONS, MISSION_EVENTS
from airgrid.v1 import dispatch_pb2, mission_pb2


@dataclass
class MissionBreak:
    """A mission ended by its drone's failure: when, why, and when the incident was next
    assigned a drone (0: not yet)."""

    at_ms: int
    reason: str
    reassigned_ms: int = 0


@dataclass
class IncidentOutcome:
    id: str
    department: str = ""
    priority: int = 0
    type: str = ""
    posted_ms: int = 0
    accepted_ms: int = 0
    first_decision_ms: int = 0
    assigned_ms: int = 0
    queued: bool = False
    linked_to: str = ""
    on_scene_ms: int = 0
    completed_ms: int = 0
    posted_here: bool = False
    # When the assigned drone is expected on scene (decided + the core's ETA), 0 unknown.
    expected_on_scene_ms: int = 0
    # The expectation standing when a drone reached the scene (its ETA error's reference).
    eta_at_arrival_ms: int = 0
    # The first drone's launch for it (MISSION_STAGE_LAUNCHED: the drone reports taking off
    # on the mission; the dock's launch delay and the climb are still ahead of it).
    launched_ms: int = 0
    # Missions of this incident that broke (their drone failed: link, fault, battery), in
    # order: when, the reason, and when another drone was assigned in its place (0 not yet).
    breaks: list[MissionBreak] = field(default_factory=list)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    k = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def distribution(values: Sequence[float], sla: float) -> dict[str, Any]:
    """Count, mean, percentiles and the share within the SLA of a list of seconds."""
    out: dict[str, Any] = {"count": len(values)}
    if not values:
        return out
    out["mean_s"] = round(sum(values) / len(values), 2)
    for q in (50, 90, 95, 99):
        out[f"p{q}_s"] = round(percentile(values, q) or 0.0, 2)
    out["max_s"] = round(max(values), 2)
    out["within_sla_share"] = round(sum(1 for v in values if v <= sla) / len(values), 4)
    return out


@dataclass
class Outcomes:
    """Incidents by id; only those the simulator posted count in the summaries."""

    incidents: dict[str, IncidentOutcome] = field(default_factory=dict)

    def _get(self, incident_id: str) -> IncidentOutcome:
        found = self.incidents.get(incident_id)
        if found is None:
            found = self.incidents[incident_id] = IncidentOutcome(incident_id)
        return found

    def on_posted(
        self, incident_id: str, *, department: str, priority: int, type: str, at_ms: int
    ) -> None:
        o = self._get(incident_id)
        o.department, o.priority, o.type, o.posted_ms = department, priority, type, at_ms
        o.posted_here = True

    def on_decision(self, decision: dispatch_pb2.DispatchDecision) -> None:
        o = self._get(decision.incident_id)
        o.accepted_ms = o.accepted_ms or decision.incident_accepted_time_ms
        if not o.first_decision_ms:
            o.first_decision_ms = decision.decided_time_ms
        if decision.kind == dispatch_pb2.DECISION_KIND_ASSIGNED:
            o.assigned_ms = o.assigned_ms or decision.decided_time_ms
            o.queued = False
            if decision.assignments:
                eta_s = min(a.eta_seconds for a in decision.assignments)
                o.expected_on_scene_ms = decision.decided_time_ms + round(eta_s * 1000)
            for broken in o.breaks:
                if not broken.reassigned_ms:
                    broken.reassigned_ms = decision.decided_time_ms
        elif decision.kind == dispatch_pb2.DECISION_KIND_REDISPATCHED:
            o.expected_on_scene_ms = 0
            o.breaks.append(MissionBreak(decision.decided_time_ms, _break_reason(decision.reason)))
        elif decision.kind in (
            dispatch_pb2.DECISION_KIND_PREEMPTED,
            dispatch_pb2.DECISION_KIND_CANCELLED,
        ):
            o.expected_on_scene_ms = 0  # its drone was taken or failed: no ETA until re-assigned
        elif decision.kind == dispatch_pb2.DECISION_KIND_QUEUED:
            o.queued = not o.on_scene_ms
        elif decision.kind == dispatch_pb2.DECISION_KIND_LINKED:
            o.linked_to = decision.reason.split(":", 1)[0].strip()

    def on_mission(self, event: mission_pb2.MissionEvent) -> None:
        o = self._get(event.incident_id)
        if event.stage == mission_pb2.MISSION_STAGE_LAUNCHED and not o.launched_ms:
            o.launched_ms = event.event_time_ms
        elif event.stage == mission_pb2.MISSION_STAGE_ON_SCENE and not o.on_scene_ms:
            o.on_scene_ms = event.event_time_ms
            o.eta_at_arrival_ms = o.expected_on_scene_ms
            o.queued = False
        elif event.stage == mission_pb2.MISSION_STAGE_COMPLETED:
            o.completed_ms = o.completed_ms or event.event_time_ms

    # -- queries ---------------------------------------------------------------------------------

    def posted(self) -> list[IncidentOutcome]:
        return [o for o in self.incidents.values() if o.posted_here]

    def on_scene_at(self, o: IncidentOutcome) -> int:
        """When a drone was on scene for it: its own mission, or its primary's if linked."""
        if o.on_scene_ms:
            return o.on_scene_ms
        if o.linked_to:
            primary = self.incidents.get(o.linked_to)
            if primary is not None and primary.on_scene_ms:
                return max(primary.on_scene_ms, o.accepted_ms)
        return 0

    def time_to_scene_s(self, o: IncidentOutcome) -> float | None:
        at = self.on_scene_at(o)
        if not at or not o.accepted_ms:
            return None
        return max(0.0, (at - o.accepted_ms) / 1000.0)

    def stage(self, o: IncidentOutcome) -> str:
        if o.completed_ms:
            return "completed"
        if self.on_scene_at(o):
            return "on scene"
        if o.linked_to:
            return "linked"
        if o.assigned_ms:
            return "assigned"
        if o.queued:
            return "queued"
        return "accepted" if o.accepted_ms else "posted"

    def stages_by_department(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for o in self.posted():
            out.setdefault(o.department, Counter())[self.stage(o)] += 1
        return out

    def times(self, incidents: Iterable[IncidentOutcome]) -> list[float]:
        return [t for o in incidents if (t := self.time_to_scene_s(o)) is not None]

    def missed(self, now_ms: int, sla: float) -> list[IncidentOutcome]:
        """Accepted incidents past the SLA with no drone on scene yet: they count as misses."""
        return [
            o
            for o in self.posted()
            if o.accepted_ms and not self.on_scene_at(o) and now_ms - o.accepted_ms > sla * 1000
        ]

    def sla_share(self, now_ms: int, sla: float) -> float | None:
        """Share of the decided incidents (on scene, or overdue) that were on scene in time."""
        times = self.times(self.posted())
        misses = len(self.missed(now_ms, sla))
        total = len(times) + misses
        if not total:
            return None
        return sum(1 for t in times if t <= sla) / total

    def on_track(self, now_ms: int, sla: float) -> tuple[int, int]:
        """(on track, open): open incidents are accepted, not on scene, not linked and still
        within the SLA; on track are those whose assigned drone's ETA (from the decision) is
        within the SLA. A forecast from the decisions, not an arrival."""
        open_ = [
            o
            for o in self.posted()
            if o.accepted_ms
            and not o.linked_to
            and not self.on_scene_at(o)
            and now_ms - o.accepted_ms <= sla * 1000
        ]
        good = sum(
            1
            for o in open_
            if o.expected_on_scene_ms and o.expected_on_scene_ms - o.accepted_ms <= sla * 1000
        )
        return good, len(open_)

    def next_arrival_ms(self, now_ms: int, sla: float) -> int:
        """When the first drone now on its way is due on scene (its decision's ETA), of the
        open incidents (see on_track); 0 when none is on its way."""
        due = [
            o.expected_on_scene_ms
            for o in self.posted()
            if o.accepted_ms
            and o.expected_on_scene_ms
            and not o.linked_to
            and not self.on_scene_at(o)
            and now_ms - o.accepted_ms <= sla * 1000
        ]
        return min(due, default=0)

    def decision_latencies_s(self) -> list[float]:
        return [
            (o.first_decision_ms - o.accepted_ms) / 1000.0
            for o in self.posted()
            if o.first_decision_ms and o.accepted_ms
        ]

    def launch_times_s(self) -> list[float]:
        """Accepted to the first drone's launch, for the incidents a drone launched for; the
        drone is off the dock its model's launch delay later."""
        return [
            max(0.0, (o.launched_ms - o.accepted_ms) / 1000.0)
            for o in self.posted()
            if o.launched_ms and o.accepted_ms
        ]

    def eta_errors_s(self) -> list[float]:
        """Arrival minus the ETA the assignment promised (positive: late), for incidents
        reached by their own mission with an ETA standing at arrival."""
        return [
            (o.on_scene_ms - o.eta_at_arrival_ms) / 1000.0
            for o in self.posted()
            if o.on_scene_ms and o.eta_at_arrival_ms
        ]

    def broken_missions(self, sla: float) -> dict[str, Any]:
        """Missions broken by a failed drone, by reason, and how fast each incident got a
        drone again (break to the next assignment); a break never re-assigned counts apart."""
        breaks = [b for o in self.posted() for b in o.breaks]
        waits = [(b.reassigned_ms - b.at_ms) / 1000.0 for b in breaks if b.reassigned_ms]
        broken = [o for o in self.posted() if o.breaks]
        return {
            "missions_broken": len(breaks),
            "incidents_affected": len(broken),
            "by_reason": dict(sorted(Counter(b.reason for b in breaks).items())),
            "not_redispatched": sum(1 for b in breaks if not b.reassigned_ms),
            "time_to_redispatch": distribution(waits, sla),
            "time_to_scene_of_affected": distribution(self.times(broken), sla),
        }

    def summary(self, now_ms: int, sla: float) -> dict[str, Any]:
        posted = self.posted()
        times = self.times(posted)
        missed = self.missed(now_ms, sla)
        by_department: dict[str, Any] = {}
        for code in sorted({o.department for o in posted}):
            group = [o for o in posted if o.department == code]
            by_department[code] = self._group(group, now_ms, sla)
        by_priority: dict[str, Any] = {}
        for priority in sorted({o.priority for o in posted}):
            group = [o for o in posted if o.priority == priority]
            by_priority[str(priority)] = self._group(group, now_ms, sla)
        return {
            "incidents_posted": len(posted),
            "incidents_accepted": sum(1 for o in posted if o.accepted_ms),
            "linked_duplicates": sum(1 for o in posted if o.linked_to),
            "on_scene": len(times),
            "missed_sla_without_drone": len(missed),
            "sla_seconds": sla,
            "within_sla_share": _round(self.sla_share(now_ms, sla)),
            "time_to_scene": distribution(times, sla),
            "time_to_scene_by_department": by_department,
            "time_to_scene_by_priority": by_priority,
            "decision_latency": distribution(self.decision_latencies_s(), sla),
            "time_to_launch": distribution(self.launch_times_s(), sla),
            "eta_error": _signed(self.eta_errors_s()),
            "fault_impact": self.broken_missions(sla),
        }

    def _group(self, group: list[IncidentOutcome], now_ms: int, sla: float) -> dict[str, Any]:
        times = self.times(group)
        misses = sum(
            1
            for o in group
            if o.accepted_ms and not self.on_scene_at(o) and now_ms - o.accepted_ms > sla * 1000
        )
        total = len(times) + misses
        out = distribution(times, sla)
        out["missed_without_drone"] = misses
        out["within_sla_share"] = (
            round(sum(1 for t in times if t <= sla) / total, 4) if total else None
        )
        return out


def _signed(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean and percentiles of signed seconds (no SLA share: not a time to scene)."""
    out: dict[str, Any] = {"count": len(values)}
    if not values:
        return out
    out["mean_s"] = round(sum(values) / len(values), 2)
    for q in (5, 50, 95):
        out[f"p{q}_s"] = round(percentile(values, q) or 0.0, 2)
    return out


def _break_reason(reason: str) -> str:
    """The failure without the drone: the worker publishes 'drone <id>: <failure>'."""
    return reason.split(": ", 1)[1] if reason.startswith("drone ") and ": " in reason else reason


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


async def follow_outcomes(settings: Settings, outcomes: Outcomes) -> None:
    """Read decisions and mission events from the beginning into outcomes, until cancelled."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        names = [topic_name(settings, DISPATCH_DECISIONS), topic_name(settings, MISSION_EVENTS)]
        tps = [tp for name in names for tp in await topic_partitions(consumer, name)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batches.items():
                for record in records:
                    try:
                        if tp.topic == names[0]:
                            outcomes.on_decision(
                                dispatch_pb2.DispatchDecision.FromString(record.value or b"")
                            )
                        else:
                            outcomes.on_mission(
                                mission_pb2.MissionEvent.FromString(record.value or b"")
                            )
                    except Exception:
                        continue  # a record this reader cannot decode is not an outcome
    finally:
        await consumer.stop()
