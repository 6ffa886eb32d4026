"""Cases: how detections of one scenario become one thing a department acts on.

- Merge: a detection joins a joinable case (open, acknowledged or escalated) of its scenario
  when it lies within the scenario's merge radius of the case's anchor (its first detection's
  location) and its observed time is within the merge window of the case's seen span
  [first_seen - window, last_seen + window]. Among several such cases it joins the one with
  the nearest anchor, ties broken by case id. Otherwise it opens a new case anchored at
  itself, whose id derives from the detection's id (a replay opens the same case).
- Order: detections that all lie within one disc of the merge radius's diameter and within
  one merge window of each other form exactly one case in any arrival order. Beyond that
  the rule is greedy, so arrival order can decide whether a chain of sightings is one case
  or two; docs/inspection.md says why that is accepted.
- Status: open → acknowledged → resolved, open or acknowledged → dismissed, open or
  acknowledged → escalated (with an incident id) → resolved. Repeating the transition that
  led to the current status is a no-op; any other is not allowed (the API answers 409).
- Escalation: a joinable, not yet escalated case whose best confidence reaches the
  scenario's threshold asks for one incident, with the case id as the idempotency key.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from airgrid.geo import haversine_m
from airgrid.reference import ScenarioSpec

_CASE_NAMESPACE = uuid.UUID("6f1b8c8e-3f7e-4f43-9d1c-0a1c5e2b7a10")


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"
    DISMISSED = "dismissed"
    ESCALATED = "escalated"


JOINABLE = frozenset({CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED, CaseStatus.ESCALATED})


class Action(enum.StrEnum):
    ACKNOWLEDGE = "acknowledge"
    DISMISS = "dismiss"
    RESOLVE = "resolve"
    ESCALATE = "escalate"


# What each action leads to, and from which statuses it may be taken.
_TARGET = {
    Action.ACKNOWLEDGE: CaseStatus.ACKNOWLEDGED,
    Action.DISMISS: CaseStatus.DISMISSED,
    Action.RESOLVE: CaseStatus.RESOLVED,
    Action.ESCALATE: CaseStatus.ESCALATED,
}
_FROM = {
    Action.ACKNOWLEDGE: frozenset({CaseStatus.OPEN}),
    Action.DISMISS: frozenset({CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED}),
    Action.RESOLVE: frozenset({CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED, CaseStatus.ESCALATED}),
    Action.ESCALATE: frozenset({CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED}),
}


@dataclass(frozen=True)
class Sighting:
    """The facts of a validated detection that cases need."""

    detection_id: str
    scenario: str
    confidence: float
    lon: float
    lat: float
    observed_ms: int
    media_uri: str
    media_sha256: str


@dataclass(frozen=True)
class Case:
    id: str
    scenario: str
    departments: tuple[str, ...]
    status: CaseStatus
    lon: float
    lat: float
    """The anchor: the first detection's location."""
    first_seen_ms: int
    last_seen_ms: int
    count: int
    best_detection_id: str
    best_confidence: float
    best_media_uri: str
    best_media_sha256: str
    incident_id: str = ""
    version: int = 1

    @property
    def joinable(self) -> bool:
        return self.status in JOINABLE


def case_id_for(detection_id: str) -> str:
    """The id of the case a detection opens: the same for every replay of that detection."""
    return f"case-{uuid.uuid5(_CASE_NAMESPACE, detection_id)}"


def open_case(sighting: Sighting, scenario: ScenarioSpec) -> Case:
    return Case(
        id=case_id_for(sighting.detection_id),
        scenario=sighting.scenario,
        departments=scenario.departments,
        status=CaseStatus.OPEN,
        lon=sighting.lon,
        lat=sighting.lat,
        first_seen_ms=sighting.observed_ms,
        last_seen_ms=sighting.observed_ms,
        count=1,
        best_detection_id=sighting.detection_id,
        best_confidence=sighting.confidence,
        best_media_uri=sighting.media_uri,
        best_media_sha256=sighting.media_sha256,
    )


def accepts(case: Case, sighting: Sighting, scenario: ScenarioSpec) -> bool:
    """Whether the sighting may join the case under the merge rule."""
    if not case.joinable or case.scenario != sighting.scenario:
        return False
    window = scenario.merge_window_s * 1000
    if not case.first_seen_ms - window <= sighting.observed_ms <= case.last_seen_ms + window:
        return False
    return distance_m(case, sighting) <= scenario.merge_radius_m


def distance_m(case: Case, sighting: Sighting) -> float:
    return haversine_m(case.lon, case.lat, sighting.lon, sighting.lat)


def join(case: Case, sighting: Sighting) -> Case:
    """The case with the sighting counted in: seen span, count, best media (highest
    confidence; on a tie the lower detection id, so the result does not depend on order)."""
    better = (sighting.confidence, _desc(sighting.detection_id)) > (
        case.best_confidence,
        _desc(case.best_detection_id),
    )
    return replace(
        case,
        first_seen_ms=min(case.first_seen_ms, sighting.observed_ms),
        last_seen_ms=max(case.last_seen_ms, sighting.observed_ms),
        count=case.count + 1,
        best_detection_id=sighting.detection_id if better else case.best_detection_id,
        best_confidence=sighting.confidence if better else case.best_confidence,
        best_media_uri=sighting.media_uri if better else case.best_media_uri,
        best_media_sha256=sighting.media_sha256 if better else case.best_media_sha256,
        version=case.version + 1,
    )


def _desc(text: str) -> tuple[int, ...]:
    """A key that orders strings in reverse, so max() prefers the lower one."""
    return (*(-ord(c) for c in text), 0)


@dataclass(frozen=True)
class Merge:
    case: Case
    opened: bool
    """True when the sighting opened a new case."""


def merge(candidates: Iterable[Case], sighting: Sighting, scenario: ScenarioSpec) -> Merge:
    """Apply the merge rule: join the nearest accepting candidate, or open a new case."""
    accepting = [c for c in candidates if accepts(c, sighting, scenario)]
    if not accepting:
        return Merge(open_case(sighting, scenario), opened=True)
    nearest = min(accepting, key=lambda c: (distance_m(c, sighting), c.id))
    return Merge(join(nearest, sighting), opened=False)


# --- status --------------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    APPLIED = "applied"
    UNCHANGED = "unchanged"
    """A repeat of the transition that led to the current status."""
    NOT_ALLOWED = "not_allowed"


@dataclass(frozen=True)
class Transition:
    outcome: Outcome
    case: Case
    detail: str = ""


def transition(case: Case, action: Action, *, incident_id: str = "") -> Transition:
    """Take an action on a case; escalation needs the incident's id."""
    target = _TARGET[action]
    if action is Action.ESCALATE and not incident_id:
        return Transition(Outcome.NOT_ALLOWED, case, "escalation needs the incident's id")
    if case.status is target:
        if action is Action.ESCALATE and incident_id != case.incident_id:
            return Transition(
                Outcome.NOT_ALLOWED,
                case,
                f"case {case.id} is already escalated to incident {case.incident_id}",
            )
        return Transition(Outcome.UNCHANGED, case)
    if case.status not in _FROM[action]:
        return Transition(
            Outcome.NOT_ALLOWED,
            case,
            f"a {case.status} case cannot be {target}; allowed from: "
            + ", ".join(sorted(_FROM[action])),
        )
    changed = replace(
        case,
        status=target,
        incident_id=incident_id if action is Action.ESCALATE else case.incident_id,
        version=case.version + 1,
    )
    return Transition(Outcome.APPLIED, changed)


# --- escalation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EscalationRequest:
    """An incident to post through the dispatch API for a case."""

    idempotency_key: str
    """The case id: a retried post finds the incident the first one made."""
    case_id: str
    incident_type: str
    priority: int
    lon: float
    lat: float


def escalation_for(case: Case, scenario: ScenarioSpec) -> EscalationRequest | None:
    """The incident a case asks for under its scenario's rule, or None: no rule, the best
    confidence under the threshold, or the case already escalated or closed."""
    rule = scenario.escalation
    if rule is None or case.status not in (CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED):
        return None
    if case.best_confidence < rule.min_confidence:
        return None
    return EscalationRequest(
        idempotency_key=case.id,
        case_id=case.id,
        incident_type=rule.incident_type,
        priority=rule.priority,
        lon=case.lon,
        lat=case.lat,
    )


# --- precision -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioPrecision:
    scenario: str
    cases: int
    dismissed: int

    @property
    def dismissed_share(self) -> float | None:
        """Dismissed / all cases: the false-alarm share. None before the first case."""
        return self.dismissed / self.cases if self.cases else None

    @property
    def precision(self) -> float | None:
        """1 - dismissed / all: the share of cases the departments did not reject."""
        share = self.dismissed_share
        return None if share is None else 1.0 - share


def precision_by_scenario(cases: Iterable[Case]) -> dict[str, ScenarioPrecision]:
    counts: dict[str, list[int]] = {}
    for case in cases:
        tally = counts.setdefault(case.scenario, [0, 0])
        tally[0] += 1
        tally[1] += case.status is CaseStatus.DISMISSED
    return {code: ScenarioPrecision(code, n, d) for code, (n, d) in sorted(counts.items())}


# --- the joinable cases --------------------------------------------------------------------


@dataclass
class CaseIndex:
    """The cases that can still take detections, with the detections each holds.

    Bounded: `expire` drops the cases whose window has closed before a watermark (the newest
    observed time, less the gateways' allowed lateness); a closed case leaves at once."""

    scenarios: dict[str, ScenarioSpec]
    cases: dict[str, Case] = field(default_factory=dict)
    members: dict[str, str] = field(default_factory=dict)
    """detection id → case id, for the detections of the cases held."""

    def add(self, sighting: Sighting) -> Merge | None:
        """Merge a sighting; None when its detection is already in a held case (a repeat)."""
        if sighting.detection_id in self.members:
            return None
        scenario = self.scenarios[sighting.scenario]
        candidates = [c for c in self.cases.values() if c.scenario == sighting.scenario]
        result = merge(candidates, sighting, scenario)
        self.cases[result.case.id] = result.case
        self.members[sighting.detection_id] = result.case.id
        return result

    def apply(self, case_id: str, action: Action, *, incident_id: str = "") -> Transition:
        result = transition(self.cases[case_id], action, incident_id=incident_id)
        if result.outcome is Outcome.APPLIED:
            self._keep(result.case)
        return result

    def update(self, case: Case) -> None:
        """Take a newer version of a held case, changed elsewhere (a transition over REST)."""
        held = self.cases.get(case.id)
        if held is not None and case.version > held.version:
            self._keep(case)

    def _keep(self, case: Case) -> None:
        if case.joinable:
            self.cases[case.id] = case
            return
        del self.cases[case.id]
        self.members = {d: c for d, c in self.members.items() if c != case.id}

    def expire(self, watermark_ms: int) -> list[str]:
        """Drop the cases no sighting at or after watermark_ms can join (also those of a
        scenario gone from the catalogue, which takes no sightings); returns their ids."""
        gone = [
            c.id
            for c in self.cases.values()
            if (scenario := self.scenarios.get(c.scenario)) is None
            or c.last_seen_ms + scenario.merge_window_s * 1000 < watermark_ms
        ]
        for case_id in gone:
            del self.cases[case_id]
        if gone:
            dropped = set(gone)
            self.members = {d: c for d, c in self.members.items() if c not in dropped}
        return gone

    def held(self) -> Sequence[Case]:
        return sorted(self.cases.values(), key=lambda c: c.id)
