"""The Dockerfile is multi-stage, runs as the non-root uid the manifests expect, and its
entry point takes the arguments the Deployments and the migration Job pass."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_is_multi_stage_and_non_root() -> None:
    instructions = _instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert len(stages) >= 2
    assert any("--from=build" in args for op, args in instructions if op == "COPY")
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] == "10001"
    last_stage = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    assert not any(op == "RUN" and "pip install" in args for op, args in last_stage)


def test_image_runs_the_commands_the_manifests_give_it() -> None:
    entrypoint = next(args for op, args in _instructions() if op == "ENTRYPOINT")
    assert entrypoint == '["python", "-m", "entrypoints"]'
    workloads = yaml.safe_load_all((ROOT / "deploy/k8s/base/generated/workloads.yaml").read_text())
    for manifest in workloads:
        if manifest["kind"] != "Deployment":
            continue
        pod = manifest["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsUser"] == 10001
        args = pod["containers"][0]["args"]
        assert args[0] == "serve" and args[1] in ("registry", "telemetry", "dispatch")


def test_dockerignore_keeps_secrets_and_state_out_of_the_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".airgrid"):
        assert entry in ignored
    assert re.search(r"^tests$", "\n".join(ignored), re.MULTILINE)
