"""A service whose database or broker is unreachable says what to do and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from airgrid.config import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.e2e


def serve(env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRGRID_DISPATCH_PORT": str(free_port()), **env_overrides}
    return subprocess.run(
        [sys.executable, "-m", "entrypoints", "serve", "dispatch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreachable_database_is_one_clear_sentence(settings: Settings) -> None:
    result = serve(
        {
            "AIRGRID_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/x",
            "AIRGRID_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
        }
    )
    assert result.returncode == 2
    assert "is not reachable" in result.stderr and "AIRGRID_DATABASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_broker_is_one_clear_sentence(settings: Settings) -> None:
    result = serve(
        {
            "AIRGRID_DATABASE_URL": settings.sqlalchemy_url,
            "AIRGRID_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        }
    )
    assert result.returncode == 2
    assert "Kafka broker" in result.stderr and "AIRGRID_KAFKA_BOOTSTRAP" in result.stderr
    assert "Traceback" not in result.stderr


def test_schema_behind_says_run_db_upgrade(settings: Settings, tmp_path: object) -> None:
    result = serve(
        {
            "AIRGRID_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/empty.db",
            "AIRGRID_KAFKA_BOOTSTRAP": settings.bootstrap_servers,
        }
    )
    assert result.returncode == 2
    assert "airgrid db upgrade" in result.stderr
