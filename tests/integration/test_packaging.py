"""The deployment files (Docker, Compose, systemd, Kubernetes, scripts) checked by real tools.

No Docker engine, systemd or cluster runs here, so each file is checked by the strongest offline
tool there is: hadolint for the Dockerfile, `systemd-analyze verify` for the units,
kubernetes-validate's bundled OpenAPI schemas for the manifests, `bash -n` for the scripts.
What the tools cannot see (a base image tag, a stop timeout agreeing with the daemon's grace)
is checked on the text, in tests/unit/test_deploy_files.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest

from tests.support.deploy import BASH_SCRIPTS, DOCKERFILE, ROOT, UNITS, kubernetes_documents


def venv_tool(name: str) -> str:
    """The path of a tool installed next to this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable} nor on PATH; it is a declared "
                    "test dependency: run `make install` (or pip install -e '.[test]')")
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


# --- Docker --------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    """hadolint finds nothing in the Dockerfile (ignores carry a comment saying why)."""
    result = run(venv_tool("hadolint"), "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


# --- systemd -------------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", ["transcribed.service", "transcribed@.service"])
def test_systemd_unit_passes_systemd_analyze_verify(unit, tmp_path):
    """`systemd-analyze verify` accepts the unit without a single warning.

    verify parses every line (unknown keys and bad values are only warnings, hence the empty
    stderr), checks that ExecStart's binary exists and is executable, and loads the units it
    depends on. It does not check that User= exists, nor start anything. ExecStart is pointed
    at this venv's `transcribed`, since /opt/transcribed exists only on an installed host.
    """
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not found: apt-get install systemd")
    binary = venv_tool("transcribed")
    text = (UNITS / unit).read_text()
    assert "ExecStart=/opt/transcribed/bin/transcribed " in text
    (tmp_path / unit).write_text(text.replace("ExecStart=/opt/transcribed/bin/transcribed ",
                                              f"ExecStart={binary} "))
    target = tmp_path / unit
    if unit.endswith("@.service"):
        # A template is verified through an instance: GPU 0's.
        target = tmp_path / unit.replace("@.", "@0.")
        target.symlink_to(tmp_path / unit)
    result = run(analyze, "verify", str(target), cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr


# --- Kubernetes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [min(kubernetes_validate.utils.all_versions(),
                                         key=lambda v: tuple(map(int, v.split(".")))),
                                     kubernetes_validate.latest_version()])
def test_kubernetes_manifests_validate_strictly(version):
    """Every object validates against the Kubernetes schemas, unknown fields rejected."""
    documents = kubernetes_documents()
    assert {doc["kind"] for _, doc in documents} >= {"ConfigMap", "Deployment", "PersistentVolumeClaim"}
    for name, doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        assert "namespace" not in doc["metadata"], f"{name}: manifests stay namespace-agnostic"


# --- scripts -------------------------------------------------------------------------

@pytest.mark.parametrize("name", BASH_SCRIPTS)
def test_bash_script_parses_and_fails_fast(name):
    """`bash -n` parses each bash script, and each sets -euo pipefail."""
    path = ROOT / "scripts" / name
    result = run("bash", "-n", str(path))
    assert result.returncode == 0, result.stderr
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in path.read_text()


# --- health check -------------------------------------------------------------------

def test_healthcheck_command_is_a_real_subcommand():
    """The HEALTHCHECK's `transcribed status --check` exists in the installed CLI."""
    result = run(venv_tool("transcribed"), "status", "--help")
    assert result.returncode == 0, result.stderr
    assert "--check" in result.stdout and "--json" in result.stdout


