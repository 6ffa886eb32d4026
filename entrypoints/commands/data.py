"""`airgrid db`, `airgrid registry` and `airgrid topics`: the schema, the registry's data and
the Kafka topics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from airgrid.config import get_settings
from entrypoints.commands.fail import fail

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
registry_app = typer.Typer(help="Registry data.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the Alembic migrations to AIRGRID_DATABASE_URL (or embedded SQLite)."""
    from airgrid.migrate import upgrade

    settings = get_settings()
    try:
        upgrade(settings)
    except Exception as error:
        fail(f"migration failed: {error}; check AIRGRID_DATABASE_URL")
    typer.echo(f"database at head ({settings.sqlalchemy_url.split('@')[-1]})")


@registry_app.command("seed")
def registry_seed(
    data: Annotated[Path | None, typer.Option(help="Zone data directory.")] = None,
) -> None:
    """Load the reference zone (or another city's data) into the registry, idempotently."""
    from airgrid.db import create_engine, session_factory
    from airgrid.reference import load_reference
    from services.registry.seed import seed_reference

    settings = get_settings()

    async def main() -> None:
        engine = create_engine(settings)
        try:
            result = await seed_reference(
                session_factory(engine),
                load_reference(data or settings.reference_data),
                timezone=settings.zone_timezone,
            )
        finally:
            await engine.dispose()
        typer.echo(
            f"seeded: {result.departments} departments, {result.nests} nests, "
            f"{result.drones} drones, {result.geofences} geofences, "
            f"{result.inspection_plans} inspection plans, {result.scenarios} scenarios added"
        )

    asyncio.run(main())


@registry_app.command("import")
def registry_import(
    file: Annotated[Path, typer.Argument(help="A registry document, as `export` writes it.")],
) -> None:
    """Load another city's registry (departments, nests, drones, geofences) in one transaction:
    new entries are created, changed ones updated, each published; a bad entry changes nothing."""
    import json

    from airgrid.db import create_engine, session_factory
    from airgrid.reference import load_reference
    from services.registry.service import Actor
    from services.registry.transfer import ImportRejected, import_registry

    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        fail(f"cannot read {file}: {error}")
    settings = get_settings()

    async def main() -> str:
        engine = create_engine(settings)
        try:
            result = await import_registry(
                session_factory(engine),
                document,
                actor=Actor(f"import:{file.name}", "admin"),
                zone=load_reference(settings.reference_data).zone,
            )
        finally:
            await engine.dispose()
        return result.summary()

    try:
        summary = asyncio.run(main())
    except ImportRejected as error:
        listing = "\n  ".join(error.problems[:50])
        fail(f"{file} was not imported; nothing changed. Fix these entries:\n  {listing}")
    typer.echo(f"imported {file}: {summary}")


@registry_app.command("export")
def registry_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write; stdout if omitted.")
    ] = None,
) -> None:
    """Write the registry (without credentials) as a document that `import` reads."""
    import json

    from airgrid.db import create_engine, session_factory
    from services.registry.transfer import export_registry

    settings = get_settings()

    async def main() -> dict[str, object]:
        engine = create_engine(settings)
        try:
            async with session_factory(engine)() as session:
                return await export_registry(session)
        finally:
            await engine.dispose()

    text = json.dumps(asyncio.run(main()), ensure_ascii=False, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"registry written to {output}", err=True)


@topics_app.command("create")
def topics_create() -> None:
    """Create every declared topic on the broker (start-up does this too)."""
    from airgrid.bus import BrokerUnavailable, ensure_topics

    try:
        created = asyncio.run(ensure_topics(get_settings()))
    except BrokerUnavailable as error:
        fail(str(error))
    typer.echo(f"{len(created)} topics created")
