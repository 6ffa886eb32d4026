"""A private, throw-away PostgreSQL cluster: initdb into a temp dir, a free port, trust auth on
loopback only. Faults restart this one, never the machine's shared server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from airgrid.servers.ports import free_port

INSTALL_HINT = "run `scripts/provision test` (or: apt-get install postgresql)"


class PostgresUnavailable(RuntimeError):
    """The server binaries are missing or the cluster would not start; the message says why."""


def pg_bin() -> Path:
    """The directory of initdb and pg_ctl: AIRGRID_PG_BIN, else the newest Debian install."""
    explicit = os.environ.get("AIRGRID_PG_BIN")
    if explicit:
        if not (Path(explicit) / "initdb").exists():
            raise PostgresUnavailable(f"AIRGRID_PG_BIN={explicit} has no initdb")
        return Path(explicit)
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(f"PostgreSQL server binaries (initdb) not found; {INSTALL_HINT}")


class PrivatePostgres:
    """initdb once, then start and stop at will; `url` is an asyncpg SQLAlchemy URL.

    PostgreSQL refuses to run as root, so under root the cluster runs as the `postgres` user
    that the Debian package creates."""

    def __init__(self, database: str = "airgrid") -> None:
        self.bin = pg_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="airgrid-pg-"))
        self.data = self.root / "data"
        self.database = database
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError as error:
                raise PostgresUnavailable(
                    f"no `postgres` user to run as; {INSTALL_HINT}"
                ) from error
            self._run_as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _cmd(self, *args: str) -> None:
        result = subprocess.run(
            [*self._run_as, *args],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.root,
            text=True,
        )
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, args, stderr=f"{result.stderr}\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "log"
        return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""

    def init(self) -> None:
        """Create the cluster, start it (on another free port if the first was taken in the
        meantime) and create the database."""
        self._cmd(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        for attempt in range(3):
            try:
                self.start()
                break
            except subprocess.CalledProcessError as error:
                if attempt == 2:
                    raise PostgresUnavailable(
                        f"the private PostgreSQL did not start: {error.stderr}"
                    ) from error
                self.port = free_port()
        self.create_database(self.database)

    def create_database(self, name: str) -> None:
        self._cmd(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            name,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=300"
        )
        self._cmd(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self, mode: str = "immediate") -> None:
        self._cmd(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        try:
            self.stop(mode="fast")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
        except BaseException:
            self.destroy()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.destroy()
