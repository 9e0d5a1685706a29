"""`transcribed doctor` (--json and text) run for real on this CPU-only machine, its sample
transcribed in a child process: what it says, its exit code. The checks and the text report
without the sample are unit tests (tests/unit/test_doctor.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from tests.support.doctor import write_config
from transcribed import doctor
from transcribed.config import load_config


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    """`transcribed doctor --json` as a user runs it: (exit code, parsed report, stderr)."""
    root = tmp_path_factory.mktemp("doctor")
    result = subprocess.run(
        [sys.executable, "-m", "transcribed", "doctor", "--json", "--config", str(write_config(root))],
        capture_output=True, text=True, timeout=600, check=False)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"--json printed something else than one JSON object:\n{result.stdout}\n{result.stderr}")
    return result.returncode, report, result.stderr


class TestOnThisCpuOnlyMachine:
    """The real doctor here: it works, on the CPU, and says why."""

    def test_json_run_exits_0_and_is_ready(self, json_run):
        code, report, stderr = json_run
        assert code == 0, stderr
        assert report["ready"] is True and report["exit_code"] == 0

    def test_json_says_cpu_and_why(self, json_run):
        _, report, _ = json_run
        assert report["device"] == "cpu"
        assert "CTranslate2 and torch see no CUDA device" in report["why"]
        if shutil.which("nvidia-smi") is None:
            assert report["why"].startswith("there is no NVIDIA driver (nvidia-smi not found)")
        assert report["settings"]["compute_type"] == "int8" and report["settings"]["batch_size"] == 4

    def test_json_has_one_entry_per_check_in_order(self, json_run):
        _, report, _ = json_run
        assert [c["name"] for c in report["checks"]] == list(doctor.ORDER)
        assert all(c["status"] in ("ok", "warn", "fail") for c in report["checks"])
        assert all(c["advice"] for c in report["checks"] if c["status"] == "warn")

    def test_the_sample_is_really_transcribed_with_a_realtime_factor(self, json_run):
        _, report, _ = json_run
        check = next(c for c in report["checks"] if c["name"] == "transcription")
        assert check["status"] == "ok", check
        assert "forward" in check["data"]["text"].lower()
        assert check["data"]["audio_seconds"] == pytest.approx(2.79, abs=0.01)
        assert check["data"]["transcribe_seconds"] > 0
        assert "x realtime" in check["detail"]

    def test_folders_that_do_not_exist_yet_are_fine(self, json_run):
        _, report, _ = json_run
        check = next(c for c in report["checks"] if c["name"] == "folders")
        assert check["status"] == "ok" and "the daemon creates them" in check["detail"]

    def test_text_report_with_the_sample_says_cpu_and_why_one_line_per_check(self, tmp_path, capsys):
        code = doctor.run_doctor(load_config(write_config(tmp_path)), as_json=False)
        out = capsys.readouterr().out
        assert code == 0
        lines = out.splitlines()
        device = next(line for line in lines if "Will run on" in line)
        assert device.split()[0] == "warn" and "the CPU: int8, batch size 4" in device
        sample = next(line for line in lines if "Transcription" in line)
        assert sample.split()[0] == "ok" and "x realtime" in sample, sample
        assert lines[-1].startswith("READY: transcribes on the CPU (int8), because ")
        assert sum(line.startswith(("  ok", "  warn", "  FAIL")) for line in lines) == len(doctor.ORDER)
