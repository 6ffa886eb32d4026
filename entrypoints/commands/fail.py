"""How a command fails: a red one-line message on stderr and a non-zero exit."""

from __future__ import annotations

import typer


def fail(message: str, code: int = 2) -> None:
    typer.secho(f"airgrid: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)
