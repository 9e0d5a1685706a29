"""The bench scripts still run: each answers --help, and the daemon-driven ones finish a tiny run
with the fake engine (the real engine's runs take minutes; see .helper-notes/performance.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["throughput", "accuracy", "latency", "memory", "knobs", "overlap", "batching", "soak", "gpu",
           "long_recording"]


def _bench(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "bench" / f"{script}.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


class TestBenchScripts:
    """Every benchmark of issue 6 can be started and explains itself."""

    @pytest.mark.parametrize("script", SCRIPTS)
    def test_help_describes_the_script(self, script: str) -> None:
        result = _bench(script, "--help", timeout=30)
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout and "--" in result.stdout


@pytest.mark.usefixtures("corpus")
class TestTinyRunsWithTheFakeEngine:
    """The daemon-driving scripts get through a run of a file or two and print their tables."""

    def test_accuracy_scores_the_daemon_outputs(self) -> None:
        result = _bench("accuracy", "--engine", "fake", "--limit", "2", "--strict")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "daemon WER %" in result.stdout and "daemon - plain loop" in result.stdout

    def test_latency_measures_both_watchers(self) -> None:
        result = _bench("latency", "--engine", "fake", "--trials", "1")
        assert result.returncode == 0, result.stdout + result.stderr
        table = result.stdout.split("watcher", 1)[1]
        assert "inotify" in table and "polling" in table

    def test_memory_samples_every_job(self) -> None:
        result = _bench("memory", "--engine", "fake", "--jobs", "4", "--overlap")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "4 jobs (0 failed)" in result.stdout and "growth %" in result.stdout
