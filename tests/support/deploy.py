"""The repository's deployment files and readers for them (systemd units, durations, the daemon's
grace, the Kubernetes objects), shared by the text checks (tests/unit/test_deploy_files.py)
and the real tools (tests/integration/test_packaging.py)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
UNITS = ROOT / "systemd"
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASH_SCRIPTS = ["docker-build", "docker-run", "check-gpu"]
POWERSHELL_SCRIPTS = [f"{name}.ps1" for name in BASH_SCRIPTS]


def seconds(duration: str) -> float:
    """Seconds in a duration written like systemd's or Compose's: 45, 45s, 1m30s, 2min."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|m|s)?", str(duration).strip())
    scale = {"h": 3600, "min": 60, "m": 60, "s": 1, "": 1}
    return sum(float(number) * scale[unit] for number, unit in parts)


def unit_directives(path: Path) -> list[tuple[str, str, str]]:
    """The (section, key, value) lines of a systemd unit, comments left out, in order."""
    section, lines = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        lines.append((section, key.strip(), value.strip()))
    return lines


def unit_value(path: Path, key: str) -> str:
    """The value of the one `key=` line of a unit."""
    values = [value for _, k, value in unit_directives(path) if k == key]
    assert len(values) == 1, f"{path.name}: expected one {key}= line, got {values}"
    return values[0]


def grace_seconds(config_text: str) -> float:
    """daemon.shutdown_grace_seconds from a config file's text."""
    return float(yaml.safe_load(config_text)["daemon"]["shutdown_grace_seconds"])


def kubernetes_documents() -> list[tuple[str, dict]]:
    """Every Kubernetes object in deploy/kubernetes, with its file name (kustomization aside)."""
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue  # kustomize's own file, not an API object: checked separately below
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents
