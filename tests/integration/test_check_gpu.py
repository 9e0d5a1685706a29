"""scripts/check-gpu with a stand-in `docker` on PATH that prints a real doctor report.

No Docker engine runs here. The stand-in answers `docker run ... doctor` with what the doctor
renders for a fabricated machine, so the script's verdict (exit 0 only when the GPU works, 4 when
only the CPU does) is checked against the doctor's own output format.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from transcribed import doctor
from transcribed.engine.base import EngineSettings

ROOT = Path(__file__).resolve().parents[2]
GPU = EngineSettings("tiny.en", "/m", "bundled", "cuda", 0, "float16", 16, 8, {"device": "CUDA device 0"})
CPU = EngineSettings("tiny.en", "/m", "bundled", "cpu", 0, "int8", 4, 2,
                     {"device": "no usable GPU: CTranslate2 and torch see no CUDA device"})


def report(settings: EngineSettings | None, failed: bool = False) -> doctor.Report:
    result = doctor.Report(settings=settings)
    result.add("driver", "NVIDIA driver", doctor.OK if settings is GPU else doctor.WARN, "driver 570.1")
    if failed:
        result.add("folders", "Folders", doctor.FAIL, "folders.inbox: not writable", "fix it")
    if settings is not None:
        result.add("device", "Will run on", doctor.OK, f"the {settings.device}")
    return result


def run_check_gpu(tmp_path: Path, output: str, rc: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run scripts/check-gpu with a `docker` that prints `output` and exits `rc`."""
    (tmp_path / "output").write_text(output)
    docker = tmp_path / "bin" / "docker"
    docker.parent.mkdir(exist_ok=True)
    docker.write_text(f'#!/bin/sh\necho "$@" > "{tmp_path}/args"\ncat "{tmp_path}/output"\nexit {rc}\n')
    docker.chmod(0o755)
    env = {**os.environ, "PATH": f"{docker.parent}:{os.environ['PATH']}"}
    return subprocess.run([str(ROOT / "scripts" / "check-gpu"), *args], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


@pytest.fixture(autouse=True)
def needs_bash():
    if shutil.which("bash") is None:
        pytest.fail("bash is needed to run scripts/check-gpu")


def test_a_working_gpu_exits_0_and_passes_the_report_through(tmp_path):
    text = doctor.render(report(GPU))
    result = run_check_gpu(tmp_path, text + "\n", 0)
    assert result.returncode == 0, result.stderr
    assert result.stdout == text + "\n"
    assert (tmp_path / "args").read_text().split() == ["run", "--rm", "--gpus", "all",
                                                      "transcribed:latest", "doctor"]


def test_the_cpu_only_is_exit_4_with_a_plain_reason(tmp_path):
    result = run_check_gpu(tmp_path, doctor.render(report(CPU)) + "\n", 0)
    assert result.returncode == 4
    assert "on the CPU, not the GPU" in result.stderr


def test_json_with_cuda_counts_as_a_working_gpu(tmp_path):
    result = run_check_gpu(tmp_path, json.dumps(doctor.as_dict(report(GPU)), indent=2) + "\n", 0, "--json")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "args").read_text().split()[-1] == "--json"
    assert json.loads(result.stdout)["device"] == "cuda"


def test_a_setup_that_cannot_work_keeps_doctors_exit_code(tmp_path):
    result = run_check_gpu(tmp_path, doctor.render(report(None, failed=True)) + "\n", 1)
    assert result.returncode == 1
    assert "NOT READY" in result.stdout


def test_a_container_that_cannot_start_explains_the_toolkit(tmp_path):
    result = run_check_gpu(tmp_path, "could not select device driver \"\" with capabilities: [[gpu]]\n", 125)
    assert result.returncode == 125
    assert "nvidia-ctk runtime configure" in result.stderr
