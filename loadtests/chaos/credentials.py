"""The API keys a fault run or a soak uses: one per department, an operator, an admin, and a
gateway key per nest of the flying fleet."""

from __future__ import annotations

from airgrid.auth import Role, issue_credential
from airgrid.config import Settings
from airgrid.db import create_engine, session_factory
from loadtests.chaos.incident_load import DEPARTMENTS


async def issue_keys(settings: Settings) -> dict[str, str]:
    engine = create_engine(settings)
    keys: dict[str, str] = {}
    try:
        async with session_factory(engine)() as session, session.begin():
            for department in DEPARTMENTS:
                _, keys[department] = issue_credential(
                    session, role=Role.DEPARTMENT, department=department
                )
            _, keys["operator"] = issue_credential(session, role=Role.OPERATOR)
            _, keys["admin"] = issue_credential(session, role=Role.ADMIN, label="chaos")
    finally:
        await engine.dispose()
    return keys


async def gateway_keys(settings: Settings, nests: list[str]) -> dict[str, str]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            return {
                nest: issue_credential(session, role=Role.GATEWAY, nest_id=nest)[1]
                for nest in nests
            }
    finally:
        await engine.dispose()
