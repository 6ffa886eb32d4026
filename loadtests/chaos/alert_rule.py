"""The "no alert lost" rule of the fault suite, pure: injected conditions and observed alerts in,
a verdict out.

A condition is injected on one chaos drone at one moment (its event time): the drone goes
silent (link lost), its battery drops below the threshold (low battery) or it flies into a
no-fly zone (geofence breach), and stays so. It is *alerted* when an active alert of its kind
for its drone, with an event time at or after the injection, was observed on
`airgrid.alerts`. Every condition must be alerted at least once; more than once (a restart
raising it again) is allowed and counted. Active alerts matching no condition are counted as
well (the whole stream going silent during the broker outage raises link lost for every
drone, which is right for the worker, if not for the drone).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

KINDS = ("link_lost", "low_battery", "geofence_breach")


@dataclass(frozen=True)
class Condition:
    drone_id: str
    kind: str
    phase: str
    event_ms: int


@dataclass(frozen=True)
class ObservedAlert:
    alert_id: str
    drone_id: str
    kind: str
    active: bool
    event_time_ms: int


@dataclass
class AlertVerdict:
    alerted: dict[Condition, int] = field(default_factory=dict)
    lost: list[Condition] = field(default_factory=list)
    # Active alerts that match no injected condition, by kind.
    unmatched: Counter[str] = field(default_factory=Counter)

    @property
    def duplicates(self) -> int:
        """Alerts beyond the first one per condition."""
        return sum(count - 1 for count in self.alerted.values() if count > 1)

    @property
    def ok(self) -> bool:
        return not self.lost


def matches(condition: Condition, alert: ObservedAlert) -> bool:
    return (
        alert.active
        and alert.drone_id == condition.drone_id
        and alert.kind == condition.kind
        and alert.event_time_ms >= condition.event_ms
    )


def judge(conditions: list[Condition], alerts: list[ObservedAlert]) -> AlertVerdict:
    """Every condition alerted at least once; alerts are unique by alert_id."""
    unique = list({alert.alert_id: alert for alert in alerts}.values())
    verdict = AlertVerdict()
    used: set[str] = set()
    for condition in conditions:
        found = [alert for alert in unique if matches(condition, alert)]
        used.update(alert.alert_id for alert in found)
        if found:
            verdict.alerted[condition] = len(found)
        else:
            verdict.lost.append(condition)
    for alert in unique:
        if alert.active and alert.alert_id not in used:
            verdict.unmatched[alert.kind] += 1
    return verdict


def by_phase(verdict: AlertVerdict, conditions: list[Condition]) -> dict[str, tuple[int, int]]:
    """Per phase, in injection order: (conditions alerted, conditions injected)."""
    out: dict[str, tuple[int, int]] = {}
    for condition in conditions:
        alerted, injected = out.get(condition.phase, (0, 0))
        out[condition.phase] = (alerted + (condition in verdict.alerted), injected + 1)
    return out
