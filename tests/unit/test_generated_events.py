"""The event classes in airgrid/v1 are exactly what protoc makes of proto/ (never hand-edited)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_not_stale(tmp_path: Path) -> None:
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "proto").rglob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            *protos,
        ],
        cwd=ROOT,
        check=True,
    )
    fresh = {p.relative_to(tmp_path): p.read_text() for p in tmp_path.rglob("*_pb2.py*")}
    committed = {
        p.relative_to(ROOT): p.read_text() for p in (ROOT / "airgrid" / "v1").glob("*_pb2.py*")
    }
    assert set(fresh) == set(committed), "run `make proto`: generated files differ in number"
    stale = [str(name) for name, text in fresh.items() if committed[name] != text]
    assert not stale, f"run `make proto`: stale generated code in {stale}"
