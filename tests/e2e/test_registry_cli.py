"""The registry commands as a user runs them: `airgrid registry seed` (idempotent), `export`,
`import FILE`, on the real PostgreSQL and on embedded SQLite (migrations run on both)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from services.registry.service import Actor, delete

pytestmark = pytest.mark.e2e


def airgrid(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "entrypoints", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def environment(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRGRID_")}
    env.update(overrides)
    return env


def test_seed_is_idempotent_and_export_import_round_trip_on_postgresql(
    settings: Settings, tmp_path: Path
) -> None:
    env = environment(AIRGRID_DATABASE_URL=settings.sqlalchemy_url, AIRGRID_LOG_FORMAT="console")
    first = airgrid(env, "registry", "seed")
    assert first.returncode == 0, first.stderr
    second = airgrid(env, "registry", "seed")
    assert second.returncode == 0, second.stderr
    assert (
        "0 departments, 0 nests, 0 drones, 0 geofences, 0 inspection plans, 0 scenarios added"
        in second.stdout
    )

    exported = tmp_path / "registry.json"
    r = airgrid(env, "registry", "export", "--output", str(exported))
    assert r.returncode == 0, r.stderr
    document = json.loads(exported.read_text(encoding="utf-8"))
    assert len(document["departments"]) >= 11 and len(document["drones"]) >= 186

    nest_id = f"tn-{uuid.uuid4().hex[:8]}"
    document["nests"].append(
        {
            "id": nest_id,
            "name": "another city's nest",
            "location": {"type": "Point", "coordinates": [114.35, 30.45]},
            "charging_slots": 4,
            "status": "offline",
        }
    )
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    r = airgrid(env, "registry", "import", str(changed))
    assert r.returncode == 0, r.stderr
    assert "nests: 1 created, 0 updated" in r.stdout

    document["drones"][0]["home_nest"] = "nest-that-does-not-exist"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    r = airgrid(env, "registry", "import", str(broken))
    assert r.returncode != 0
    assert "nothing changed" in r.stderr and "Unknown nest" in r.stderr
    asyncio.run(_delete_nest(settings, nest_id))


async def _delete_nest(settings: Settings, nest_id: str) -> None:
    """Leave the shared test database as the reference zone was."""
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            await delete(
                session, kind="nest", key=nest_id, if_match="*", actor=Actor("test", "admin")
            )
    finally:
        await engine.dispose()


def test_migrations_seed_and_export_on_embedded_sqlite(tmp_path: Path) -> None:
    env = environment(AIRGRID_STATE_DIR=str(tmp_path / "state"), AIRGRID_LOG_FORMAT="console")
    r = airgrid(env, "db", "upgrade")
    assert r.returncode == 0, r.stderr
    r = airgrid(env, "registry", "seed")
    assert r.returncode == 0, r.stderr
    assert "11 departments, 54 nests, 186 drones" in r.stdout
    r = airgrid(env, "registry", "export")
    assert r.returncode == 0, r.stderr
    document = json.loads(r.stdout)
    assert len(document["drones"]) == 186
