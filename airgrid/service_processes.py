"""The three services as child processes: start, readiness, log tails, kill and stop.

`airgrid up`, the fault runs in loadtests/chaos and the end-to-end tests all launch the services
through this one launcher, so they start, wait and stop them the same way. Each child runs
`python -m entrypoints serve NAME` with the environment it is given, and logs to
`<logs>/<name>.log`. The kernel names the entry point only as a command line, never imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SERVICES = ("registry", "telemetry", "dispatch")


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready; the message has the tail of its log."""


@dataclass
class Readiness:
    """Seconds until /readyz answered 200, or None with the last answer seen."""

    service: str
    seconds: float | None
    last: str = ""

    def describe(self) -> str:
        if self.seconds is not None:
            return f"{self.service} {self.seconds:.1f} s"
        return f"{self.service} NOT RECOVERED"


def _die_with_parent() -> None:
    """The child gets SIGTERM when its parent dies, so nothing is left behind."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ServiceProcesses:
    """Child processes on the given ports, sharing one environment and one log directory.

    detached: each child runs in a session of its own and gets SIGTERM when the parent dies;
    a terminal's Ctrl-C then reaches only the parent, which stops the children in order.
    """

    env: dict[str, str]
    ports: dict[str, int]
    logs: Path
    detached: bool = False
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """`python -m entrypoints ARGS` as the child `name`, appending to `<logs>/<name>.log`."""
        self.logs.mkdir(parents=True, exist_ok=True)
        child = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", *args],
            env=self.env,
            stdout=(self.logs / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if self.detached else None,
            start_new_session=self.detached,
        )
        self.children[name] = child
        return child

    def start(self, service: str) -> subprocess.Popen[bytes]:
        return self.spawn(service, ["serve", service])

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.logs / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check(self, name: str | None = None) -> None:
        """ServiceFailed, with the log tail, when the child `name` (or any) has exited."""
        names = [name] if name is not None else list(self.children)
        for each in names:
            child = self.children[each]
            if child.poll() is not None:
                raise ServiceFailed(
                    f"the {each} service stopped (code {child.returncode}):\n" + self.tail(each)
                )

    async def ready(self, service: str, timeout: float) -> Readiness:
        """Polls /readyz until 200 or `timeout`; never raises."""
        started = time.monotonic()
        last = "no answer"
        async with httpx.AsyncClient(timeout=5) as client:
            while time.monotonic() - started < timeout:
                child = self.children.get(service)
                if child is not None and child.poll() is not None:
                    last = f"process exited with {child.returncode}"
                    break
                try:
                    r = await client.get(f"{self.url(service)}/readyz")
                    if r.status_code == 200:
                        return Readiness(service, time.monotonic() - started)
                    last = r.text[:300]
                except httpx.HTTPError as error:
                    last = repr(error)
                await asyncio.sleep(0.1)
        return Readiness(service, None, last)

    async def all_ready(self, timeout: float) -> list[Readiness]:
        """Every service's time to be ready, measured together from now."""
        return list(await asyncio.gather(*(self.ready(s, timeout) for s in SERVICES)))

    async def wait_ready(self, timeout: float = 90.0) -> None:
        """Every service ready within `timeout`, else ServiceFailed with the first failure."""
        for result in await self.all_ready(timeout):
            child = self.children.get(result.service)
            if child is not None and child.poll() is not None:
                raise ServiceFailed(
                    f"the {result.service} service exited with code {child.returncode}:\n"
                    + self.tail(result.service)
                )
            if result.seconds is None:
                raise ServiceFailed(
                    f"the {result.service} service is not ready after {timeout:.0f} s "
                    f"(last /readyz: {result.last}):\n" + self.tail(result.service)
                )

    def kill(self, service: str) -> None:
        """SIGKILL, as a crash would: no shutdown hooks run."""
        child = self.children[service]
        child.send_signal(signal.SIGKILL)
        child.wait()

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM to every child; one that has not exited after `grace_s` is killed."""
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children.values():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(timeout=5)
        self.children.clear()
