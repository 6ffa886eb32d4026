"""The one launcher of the three services: a service that exits while starting is reported
with its exit code and the tail of its log, not as a service that is merely slow to be ready."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airgrid.servers.ports import free_port
from airgrid.service_processes import SERVICES, ServiceFailed, ServiceProcesses

pytestmark = pytest.mark.integration


async def test_a_service_that_exits_is_reported_with_its_code_and_log(tmp_path: Path) -> None:
    processes = ServiceProcesses(
        env=dict(os.environ), ports={name: free_port() for name in SERVICES}, logs=tmp_path
    )
    try:
        for name in SERVICES:
            processes.spawn(name, ["serve", f"no-such-{name}"])
        with pytest.raises(ServiceFailed) as failed:
            await processes.wait_ready(timeout=120)
        assert "the registry service exited with code 2" in str(failed.value)
        assert "unknown service 'no-such-registry'" in str(failed.value)
    finally:
        processes.stop(grace_s=5)
    assert not processes.children
