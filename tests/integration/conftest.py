"""Fixtures of the integration tests beyond the suite-wide ones in tests/conftest.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airgrid.broker import EmbeddedBroker
from tests.conftest import free_port


class ReplaceableBroker:
    """An embedded broker of one test's own that can be replaced by an EMPTY one on the same
    port (Tansu keeps its data in memory), as `make chaos` does; stopping it disturbs no
    other test."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.broker = self._new()
        self.broker.start()

    def _new(self) -> EmbeddedBroker:
        return EmbeddedBroker(port=self.port, log_file=self.log_dir / f"broker-{time.time()}.log")

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def stop(self) -> None:
        self.broker.stop()

    def start_empty(self) -> None:
        self.broker = self._new()
        self.broker.start()


@pytest.fixture
def replaceable_broker(tmp_path: Path) -> Iterator[ReplaceableBroker]:
    replaceable = ReplaceableBroker(tmp_path)
    try:
        yield replaceable
    finally:
        replaceable.stop()
