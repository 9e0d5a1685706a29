"""`transcribed doctor` run for real on this CPU-only machine: what it says, its exit code, --json."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from transcribed import doctor
from transcribed.config import load_config

FOLDERS = ("inbox", "outbox", "done", "failed", "state")


@pytest.fixture(autouse=True)
def restore_logging():
    """run_doctor points the logs at this test's captured stderr; later tests must not write there."""
    yield
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = []


def write_config(root: Path, model: str = "", folders: dict[str, str] | None = None) -> Path:
    """A config file whose folders live under `root` (not created: the daemon creates them)."""
    folders = folders or {name: f"data/{name}" for name in FOLDERS}
    path = root / "transcribed.yaml"
    path.write_text("folders:\n" + "".join(f"  {k}: {v}\n" for k, v in folders.items())
                    + (f"model:\n{model}" if model else ""))
    return path


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

    def test_text_report_says_cpu_and_why_one_line_per_check(self, tmp_path, capsys):
        code = doctor.run_doctor(load_config(write_config(tmp_path)), as_json=False)
        out = capsys.readouterr().out
        assert code == 0
        lines = out.splitlines()
        device = next(line for line in lines if "Will run on" in line)
        assert device.split()[0] == "warn" and "the CPU: int8, batch size 4" in device
        assert "because no usable GPU" in device
        assert lines[-1].startswith("READY: transcribes on the CPU (int8), because ")
        assert sum(line.startswith(("  ok", "  warn", "  FAIL")) for line in lines) == len(doctor.ORDER)


class TestSetupsThatCannotWork:
    """A setup that cannot work exits non-zero and names what to fix."""

    @pytest.fixture
    def no_sample(self, monkeypatch):
        """These checks fail before the sample transcription matters; skip it to keep tests fast."""
        monkeypatch.setattr(doctor, "_check_transcription", lambda report, config, model: None)

    def test_a_file_where_a_folder_should_be_fails(self, tmp_path, capsys, no_sample):
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "outbox").write_text("not a folder")
        code = doctor.run_doctor(load_config(write_config(tmp_path)), as_json=True)
        report = json.loads(capsys.readouterr().out)
        assert code == 1 and report["ready"] is False and report["exit_code"] == 1
        folders = next(c for c in report["checks"] if c["name"] == "folders")
        assert folders["status"] == "fail" and "folders.outbox" in folders["detail"]

    def test_folders_on_two_filesystems_fail(self, tmp_path, capsys, no_sample):
        shm = Path("/dev/shm")
        if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("no second filesystem to put a folder on")
        folders = {name: str(tmp_path / name) for name in FOLDERS}
        folders["failed"] = str(shm / f"transcribed-doctor-{tmp_path.name}")
        code = doctor.run_doctor(load_config(write_config(tmp_path, folders=folders)), as_json=False)
        out = capsys.readouterr().out
        assert code == 1
        assert "folders.failed: on another filesystem" in out
        assert out.splitlines()[-1].startswith("NOT READY: 1 check(s) failed: Folders")

    def test_cuda_required_without_cuda_fails_naming_model_device(self, tmp_path, capsys, no_sample):
        code = doctor.run_doctor(load_config(write_config(tmp_path, model="  device: cuda\n")),
                                 as_json=True)
        report = json.loads(capsys.readouterr().out)
        assert code == 1 and report["device"] is None
        device = next(c for c in report["checks"] if c["name"] == "device")
        assert device["status"] == "fail" and device["detail"].startswith("model.device: cuda")
