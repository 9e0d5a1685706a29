"""`transcribed doctor`'s checks and its text report, without the sample transcription
(`sample=False`: no child process, no model loaded). The real run with its sample is
tests/integration/test_doctor.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.doctor import FOLDERS, write_config
from tests.support.smallfs import tmpfs
from transcribed import doctor
from transcribed.config import load_config


def test_text_report_says_cpu_and_why_one_line_per_check(tmp_path, capsys):
    code = doctor.run_doctor(load_config(write_config(tmp_path)), as_json=False, sample=False)
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    device = next(line for line in lines if "Will run on" in line)
    assert device.split()[0] == "warn" and "the CPU: int8, batch size 4" in device
    assert "because no usable GPU" in device
    assert lines[-1].startswith("READY: transcribes on the CPU (int8), because ")
    assert sum(line.startswith(("  ok", "  warn", "  FAIL")) for line in lines) == len(doctor.ORDER)


def test_without_the_sample_the_transcription_is_reported_skipped_not_missing(tmp_path):
    """Every check keeps its line; the skipped sample is a warning, so it cannot make a setup fail."""
    report = doctor.diagnose(load_config(write_config(tmp_path)), sample=False)
    assert [check.name for check in report.checks] == list(doctor.ORDER)
    sample = next(check for check in report.checks if check.name == "transcription")
    assert sample.status == doctor.WARN and sample.detail.startswith("skipped") and not sample.data
    assert report.ready


def test_a_share_below_the_floor_is_a_warning_saying_how_much_is_free(tmp_path):
    """Ready (the daemon would start and wait), but told: no file is taken until there is room."""
    with tmpfs(8 << 20, base=tmp_path) as fs:
        folders = {name: str(fs.root / name) for name in FOLDERS}
        folders["min_free_bytes"] = str(4 << 20)
        config = load_config(write_config(tmp_path, folders=folders))
        report = doctor.diagnose(config, sample=False)
        assert next(c for c in report.checks if c.name == "folders").status == doctor.OK
        fs.fill(leave_bytes=1 << 20)
        report = doctor.diagnose(config, sample=False)
        check = next(c for c in report.checks if c.name == "folders")
        assert check.status == doctor.WARN and report.ready
        assert "MB free, below folders.min_free_bytes (4.2 MB)" in check.detail


class TestSetupsThatCannotWork:
    """A setup that cannot work exits non-zero and names what to fix."""

    def test_a_file_where_a_folder_should_be_fails(self, tmp_path, capsys):
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "outbox").write_text("not a folder")
        code = doctor.run_doctor(load_config(write_config(tmp_path)), as_json=True, sample=False)
        report = json.loads(capsys.readouterr().out)
        assert code == 1 and report["ready"] is False and report["exit_code"] == 1
        folders = next(c for c in report["checks"] if c["name"] == "folders")
        assert folders["status"] == "fail" and "folders.outbox" in folders["detail"]

    def test_folders_on_two_filesystems_fail(self, tmp_path, capsys):
        shm = Path("/dev/shm")
        if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("no second filesystem to put a folder on")
        folders = {name: str(tmp_path / name) for name in FOLDERS}
        folders["failed"] = str(shm / f"transcribed-doctor-{tmp_path.name}")
        code = doctor.run_doctor(load_config(write_config(tmp_path, folders=folders)), as_json=False,
                                 sample=False)
        out = capsys.readouterr().out
        assert code == 1
        assert "folders.failed: on another filesystem" in out
        assert out.splitlines()[-1].startswith("NOT READY: 1 check(s) failed: Folders")

    def test_cuda_required_without_cuda_fails_naming_model_device(self, tmp_path, capsys):
        code = doctor.run_doctor(load_config(write_config(tmp_path, model="  device: cuda\n")),
                                 as_json=True, sample=False)
        report = json.loads(capsys.readouterr().out)
        assert code == 1 and report["device"] is None
        device = next(c for c in report["checks"] if c["name"] == "device")
        assert device["status"] == "fail" and device["detail"].startswith("model.device: cuda")
