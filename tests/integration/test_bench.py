"""The bench scripts still run: each answers --help, the daemon-driven ones finish a tiny run with
the fake engine, the harness refuses a switch the config does not know before starting anything,
and (e2e) the plain whisperx loop it compares against loads the pipeline the daemon loads.

Integration tier: these start real daemons and processes (see docs/performance.md for the
measurements themselves, which take minutes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ["compare", "plain", "accuracy", "latency", "memory", "soak", "gpu", "long_recording", "fw_batched",
           "ct2_cpu", "pyannote_cpu", "long_chunks"]


def _bench(script: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "bench" / f"{script}.py"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


class TestBenchScripts:
    """Every benchmark can be started and explains itself."""

    @pytest.mark.parametrize("script", SCRIPTS)
    def test_help_describes_the_script(self, script: str) -> None:
        result = _bench(script, "--help", timeout=30)
        assert result.returncode == 0, result.stderr
        assert "usage:" in result.stdout and "--" in result.stdout


@pytest.mark.usefixtures("corpus")
class TestTinyRunsWithTheFakeEngine:
    """The daemon-driving scripts get through a run of a file or two and print their tables."""

    def test_compare_runs_every_combination_of_two_switches_side_by_side(self) -> None:
        result = _bench("compare", "--engine", "fake", "--switch", "overlap", "--switch", "batching",
                        "--files", "3", "--runs", "1")
        assert result.returncode == 0, result.stdout + result.stderr
        table = result.stdout.split("way (least of 1 run per chunk)", 1)[1]
        for variant in ("overlap.enabled=false, batching.enabled=false",
                        "overlap.enabled=true, batching.enabled=true"):
            assert variant in table
        # The fake engine's text depends on the file only: every daemon must agree with the first.
        assert table.count("3/3") == 4, table

    def test_compare_refuses_a_key_the_config_lacks_before_starting_a_daemon(self) -> None:
        result = _bench("compare", "--engine", "fake", "--switch", "overlap.nonesuch=1,2", timeout=30)
        assert result.returncode != 0
        assert "config:" in result.stderr and "nonesuch" in result.stderr
        assert "chunk 1/" not in result.stdout

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


@pytest.mark.e2e
@pytest.mark.usefixtures("corpus")
def test_the_plain_loop_loads_the_pipeline_the_daemon_loads() -> None:
    """Built from the engine's settings (load_model_arguments), the plain loop gives the daemon's
    text for the same file: a hand copy that drifted (another beam, threshold or language) would not."""
    result = _bench("compare", "--plain", "--files", "2", "--chunks", "1", "--runs", "1",
                    "--max-seconds", "8", "--set", "packing.enabled=false", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("plain "))
    assert " 2/2 " in row, result.stdout
