"""The three services as child processes of the fault run, and how long each takes to be
ready again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from airgrid.config import Settings

SERVICES = ("registry", "telemetry", "dispatch")


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


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    ports: dict[str, int]
    logs: Path
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def start(self, service: str) -> None:
        self.children[service] = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", "serve", service],
            env=self.env,
            stdout=(self.logs / f"{service}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self, service: str) -> None:
        child = self.children[service]
        child.send_signal(signal.SIGKILL)
        child.wait()

    def stop_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.terminate()
        for child in self.children.values():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

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
                await asyncio.sleep(0.25)
        return Readiness(service, None, last)

    async def all_ready(self, timeout: float) -> list[Readiness]:
        """Every service's time to be ready, measured together from now."""
        return list(await asyncio.gather(*(self.ready(s, timeout) for s in SERVICES)))
