"""The object-store bench scripts run: a short soak (two daemons, random SIGKILLs) ends with every
object committed once, and the throughput bench explains itself (its figures are in
docs/scale.md, measured by running it, never asserted here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench(script: str, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "bench" / f"{script}.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("script", ["objectstore_soak", "objectstore_throughput"])
def test_help_describes_the_script(script: str) -> None:
    result = _bench(script, "--help", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage:" in result.stdout


def test_a_short_soak_with_sigkills_loses_and_doubles_nothing(tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    result = _bench("objectstore_soak", "--objects", "24", "--daemons", "2", "--kill-every", "1.5",
                    "--burst", "8", "--burst-every", "1", "--timeout", "240", "--json", str(report_path),
                    timeout=400)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["objects"] == report["manifests"] == 24
    assert report["lost"] == report["doubled"] == report["unexpected"] == report["wrong_results"] == 0
