"""The Apache Kafka jars: the one version pinned in `deploy/kafka/pom.xml`, fetched through Maven
into `.airgrid/cache/kafka-<version>/` once, then used offline.

A marker file names the pom it was fetched for and every jar, so a changed pom or a missing jar
fetches again; parallel sessions of one checkout share the cache under a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
COMPLETE_MARKER = ".complete"


class KafkaClusterError(RuntimeError):
    """The Kafka cluster could not be fetched or started; the message says what to do."""


def kafka_version(pom: Path = POM) -> str:
    """The one pinned Kafka version: the `kafka.version` property of the pom."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not node.text:
        raise KafkaClusterError(f"{pom} declares no <kafka.version> property")
    return node.text.strip()


def default_cache_dir() -> Path:
    return REPO_ROOT / ".airgrid" / "cache" / f"kafka-{kafka_version()}"


def say_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def _jars_complete(cache: Path, pom: Path) -> bool:
    """The marker names the pom it was fetched for and every jar; all must still be there."""
    marker = cache / COMPLETE_MARKER
    if not marker.exists():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except ValueError:
        return False
    if recorded.get("pom_sha256") != _pom_digest(pom):
        return False
    return all((cache / jar).is_file() for jar in recorded.get("jars", []))


def fetch_jars(
    cache: Path | None = None, *, pom: Path = POM, say: Callable[[str], None] = say_on_stderr
) -> Path:
    """The folder of broker jars; fetched with Maven on first use, offline afterwards."""
    cache = cache or default_cache_dir()
    if _jars_complete(cache, pom):
        return cache
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaClusterError(
            "mvn not found: apt-get install maven (Apache Kafka's jars come from Maven Central)"
        )
    cache.mkdir(parents=True, exist_ok=True)
    # Parallel test sessions of one checkout share the cache: one fetches, the others wait.
    with (cache.parent / f"{cache.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_complete(cache, pom):
            return cache
        say(
            f"fetching Apache Kafka {kafka_version(pom)} and its logging jars from Maven "
            f"Central into {_shown(cache)} (first run only; later runs start offline)"
        )
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={cache}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise KafkaClusterError(
                f"Maven could not fetch the Kafka jars (exit {result.returncode}); check that "
                f"Maven Central is reachable and that {_shown(pom)} is valid:\n{tail}"
            )
        jars = sorted(p.name for p in cache.glob("*.jar"))
        (cache / COMPLETE_MARKER).write_text(
            json.dumps({"pom_sha256": _pom_digest(pom), "jars": jars}, indent=1)
        )
    return cache


def _shown(path: Path) -> str:
    """A path relative to the checkout when it lies inside it, for messages."""
    with contextlib.suppress(ValueError):
        return str(path.resolve().relative_to(REPO_ROOT))
    return str(path)
