"""`airgrid up` as `make run` runs it, for e2e tests: on free ports, its state in a temporary
directory, nothing of the caller's AIRGRID_ settings; stopped with Ctrl-C (SIGINT) at the
end, killed only when it does not stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from airgrid.servers.ports import free_port
from tests.eventually import eventually


@dataclass
class AirgridUp:
    process: subprocess.Popen[bytes]
    log: Path
    ports: dict[str, int]
    credentials: Path

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def alive(self) -> None:
        assert self.process.poll() is None, f"airgrid up exited:\n{self.log.read_text()[-3000:]}"

    async def ready(self, service: str, timeout: float = 120) -> None:
        """Until the service answers /readyz and the demo credentials are written."""
        async with httpx.AsyncClient(base_url=self.url(service), timeout=5.0) as client:

            async def ready() -> bool | None:
                self.alive()
                if not self.credentials.exists():
                    return None
                try:
                    return True if (await client.get("/readyz")).status_code == 200 else None
                except httpx.HTTPError:
                    return None

            await eventually(ready, timeout, "airgrid up ready with its demo credentials")

    def stop(self) -> int:
        """Ctrl-C, and the exit code once everything has stopped."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


@contextlib.contextmanager
def airgrid_up(tmp_path: Path, *args: str) -> Iterator[AirgridUp]:
    ports = {name: free_port() for name in ("registry", "telemetry", "dispatch", "broker")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGRID_")}
    env.update(
        {
            "AIRGRID_STATE_DIR": str(tmp_path / "state"),
            "AIRGRID_REGISTRY_PORT": str(ports["registry"]),
            "AIRGRID_TELEMETRY_PORT": str(ports["telemetry"]),
            "AIRGRID_DISPATCH_PORT": str(ports["dispatch"]),
            "AIRGRID_EMBEDDED_KAFKA_PORT": str(ports["broker"]),
        }
    )
    log = tmp_path / "up.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", "up", *args],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield AirgridUp(process, log, ports, tmp_path / "state" / "credentials.json")
    finally:
        if process.poll() is None:  # a failed test still lets `up` stop what it started
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
