"""What a fault run records as it goes (its phases, their recovery times, the failures) and the
report printed at the end: the answers and outcomes per phase, what was read back from Kafka,
the alerts, and PASS or FAIL."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from airgrid.service_processes import Readiness
from loadtests.chaos.alert_rule import AlertVerdict, by_phase
from loadtests.chaos.alert_watch import AlertWatch
from loadtests.chaos.checks import LogChecks
from loadtests.chaos.fleet import ChaosFleet
from loadtests.chaos.flying_fleet import FlyingFleet
from loadtests.chaos.incident_load import OUTCOMES, IncidentLoad


@dataclass
class Phase:
    name: str
    started: float
    seconds: float = 0.0
    recovery: list[Readiness] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Run:
    """Everything the report needs."""

    work: Path
    load: IncidentLoad
    phases: list[Phase] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def begin(self, name: str) -> Phase:
        if self.phases:
            self.phases[-1].seconds = time.monotonic() - self.phases[-1].started
        phase = Phase(name, time.monotonic())
        self.phases.append(phase)
        self.load.phase = name
        progress(f"phase {name}")
        return phase

    def recovered(self, phase: Phase, results: list[Readiness], what: str) -> None:
        phase.recovery.extend(results)
        progress(f"  {what}: ready after " + ", ".join(r.describe() for r in results))
        for result in results:
            if result.seconds is None:
                self.failures.append(
                    f"{result.service} did not recover after {what} (last seen: "
                    f"{result.last}); see {self.work}/{result.service.split()[0]}.log"
                )


def progress(line: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {line}", flush=True)


def report(
    run: Run,
    load: IncidentLoad,
    statuses: dict[str, str],
    doubled: tuple[int, int],
    fleet: ChaosFleet | None,
    verdict: AlertVerdict | None,
    watch: AlertWatch,
    flying: FlyingFleet | None = None,
    logged: LogChecks | None = None,
) -> int:
    accepted_ids = list(load.accepted)
    missing = [i for i in accepted_ids if statuses.get(i) not in OUTCOMES]
    other_5xx = sum(n for (_, code), n in load.answers.items() if code >= 500 and code != 503)
    print("\nairgrid fault suite")
    print(
        f"  {'phase':15} {'s':>5} {'posted':>6} {'201':>4} {'503':>4} {'429':>4} {'other':>5}  "
        "outcomes of the incidents accepted in the phase"
    )
    for phase in run.phases:
        codes = load.codes(phase.name)
        ids = [i for i in accepted_ids if load.phase_of[i] == phase.name]
        phase_outcomes = dict(sorted(Counter(statuses.get(i, "NONE") for i in ids).items()))
        other = sum(n for code, n in codes.items() if code not in (201, 503, 429))
        print(
            f"  {phase.name:15} {phase.seconds:5.0f} {sum(codes.values()):6} {codes[201]:4} "
            f"{codes[503]:4} {codes[429]:4} {other:5}  {phase_outcomes or ''}"
        )
        if phase.recovery:
            print(f"  {'':15} ready again: " + ", ".join(r.describe() for r in phase.recovery))
        for note in phase.notes:
            print(f"  {'':15} {note}")
    other_codes: Counter[int] = Counter()
    for (_, code), n in load.answers.items():
        if code not in (201, 503, 429):
            other_codes[code] += n
    if other_codes:
        print(f"  other answers (0 = no answer): {dict(sorted(other_codes.items()))}")
    print(f"  accepted incidents: {len(accepted_ids)} (ids unique: {len(set(accepted_ids))})")
    print(f"  outcomes: {dict(sorted(Counter(statuses.values()).items()))}")
    print(
        f"  without an outcome: {len(missing)}; drones holding two missions: {doubled[0]}; "
        f"incident slots with two missions: {doubled[1]}"
    )
    if flying is not None:
        c = flying.counters
        print(
            f"  flying fleet: {len(flying.drone_ids)} drones, launches {c.launches}, commands "
            f"applied {c.commands_applied} (ignored {c.commands_ignored}), telemetry records "
            f"acknowledged {c.records_acked} in {c.batches_acked} batches (not acknowledged: "
            f"{c.batches_failed} batches)"
        )
    if logged is not None:
        print(
            f"  read back from Kafka: {logged.decisions} decisions (distinct ce_id); mission "
            f"events by stage {dict(sorted(logged.stages.items()))}; slots given twice: "
            f"{len(logged.slots_twice)}; drones on two missions at once: "
            f"{len(logged.drones_twice)}"
        )
        for finding in [*logged.slots_twice, *logged.drones_twice][:10]:
            run.failures.append(finding)
    elif fleet is not None:
        run.failures.append("the decisions were not read back from Kafka")
    if fleet is not None and verdict is not None:
        alerted = len(verdict.alerted)
        print(
            f"  alert conditions injected: {len(fleet.conditions)}, alerted: {alerted}, "
            f"lost: {len(verdict.lost)}, duplicate alerts: {verdict.duplicates}"
        )
        for phase_name, (got, injected) in by_phase(verdict, fleet.conditions).items():
            print(f"    {phase_name:15} {got}/{injected}")
        print(
            f"  other active alerts (no condition injected): {dict(verdict.unmatched)}; "
            f"alerts observed: {len(watch.alerts)} (per broker: {watch.per_broker}); "
            f"chaos telemetry records acknowledged: {fleet.sent} "
            f"(send attempts failed: {fleet.failed_sends})"
        )
        for condition in verdict.lost:
            run.failures.append(
                f"alert lost: {condition.kind} of {condition.drone_id}, injected in "
                f"{condition.phase}"
            )
    elif fleet is not None:
        run.failures.append("the alert check did not run")
    ok = (
        not missing
        and doubled == (0, 0)
        and len(set(accepted_ids)) == len(accepted_ids)
        and other_5xx == 0
        and not run.failures
        and verdict is not None
    )
    print(f"  total {time.monotonic() - run.began:.0f} s; logs: {run.work}")
    for failure in run.failures:
        print("  FAILURE: " + failure)
    if missing:
        print(f"  FAILURE: {len(missing)} accepted incidents without an outcome")
        for incident_id in missing[:10]:
            status = statuses.get(incident_id, "not read")
            print(f"    {incident_id} ({load.phase_of[incident_id]}): {status}")
    if other_5xx:
        print(f"  FAILURE: {other_5xx} answers 5xx other than 503")
    print("  PASS" if ok else "  FAIL")
    return 0 if ok else 1
