"""A private Mosquitto MQTT broker on a free loopback port, stopped and started at will."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from airgrid.servers.ports import free_port

INSTALL_HINT = "run `scripts/provision test` (or: apt-get install mosquitto)"


class MosquittoUnavailable(RuntimeError):
    """The binary is missing or the broker would not start; the message says why."""


def mosquitto_binary() -> str:
    """Debian installs the broker in sbin, which is not on every user's PATH."""
    found = shutil.which(
        "mosquitto", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/usr/local/sbin"
    )
    if found is None:
        raise MosquittoUnavailable(f"the mosquitto binary is missing; {INSTALL_HINT}")
    return found


class PrivateMosquitto:
    """One broker on 127.0.0.1 with a config of its own (anonymous, no persistence)."""

    def __init__(self) -> None:
        self.binary = mosquitto_binary()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="airgrid-mqtt-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def _write_config(self) -> Path:
        config = self.root / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest file {self.root / 'mosquitto.log'}\n"
        )
        if os.geteuid() == 0:  # mosquitto drops root privileges to its own user
            shutil.chown(self.root, "mosquitto")
        return config

    def start(self, timeout: float = 10.0) -> None:
        config = self._write_config()
        self.process = subprocess.Popen(
            [self.binary, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise MosquittoUnavailable(
                    f"mosquitto exited with {self.process.returncode}: {self.log_tail()}"
                )
            with socket.socket() as sock:
                sock.settimeout(0.2)
                if sock.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise MosquittoUnavailable(
            f"mosquitto did not listen within {timeout} s: {self.log_tail()}"
        )

    def log_tail(self, lines: int = 10) -> str:
        log = self.root / "mosquitto.log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> PrivateMosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
