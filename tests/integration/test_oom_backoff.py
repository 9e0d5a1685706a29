"""CUDA out-of-memory back-off through the real Pipeline and Consumer, with faults injected at the
engine seam: each real exception type, at chosen batch sizes. The engine is the FakeEngine (same
Protocol, real decoding, deterministic text); the halving, retry, recovery, fallback and the
file's fate are the daemon's own code. A lost GPU is checked in a real daemon process too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace

import pytest
import torch
from structlog.testing import capture_logs

from tests.support.consumer import drop, make_config, make_consumer, process_next
from tests.support.media import write_tone_wav
from transcribed.config import Config
from transcribed.engine.base import EngineSettings, Progress, Request
from transcribed.engine.fake import FakeEngine
from transcribed.errors import GpuLost

PYANNOTE_OOM = "batch_size ( 32) is probably too large. Try with a smaller value until memory error disappears."
#: Each form an out-of-memory error takes, as the libraries raise it.
OOM_FORMS = {
    "ctranslate2": lambda: RuntimeError("CUDA failed with error out of memory"),
    "torch": lambda: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    "pyannote": lambda: MemoryError(PYANNOTE_OOM),
    "cublas": lambda: RuntimeError("cuBLAS failed with status CUBLAS_STATUS_ALLOC_FAILED"),
    "accelerator": lambda: torch.AcceleratorError("CUDA error: out of memory"),
}
GPU_SETTINGS = EngineSettings("fake", "", "fake", "cuda", 0, "float16", 16, 1, {"engine": "fake"})


@dataclass
class TightGpuEngine(FakeEngine):
    """A FakeEngine on a 'GPU' where a file only fits up to a batch size; above it, `oom` is raised."""

    settings: EngineSettings = field(default_factory=lambda: GPU_SETTINGS)
    #: File name -> the largest batch size that fits (missing: any size fits; 0: none does).
    fits: dict[str, int] = field(default_factory=dict)
    oom: object = OOM_FORMS["ctranslate2"]
    freed: int = 0

    def transcribe(self, samples, request: Request, batch_size: int, progress: Progress, speech=None):
        limit = self.fits.get(request.file)
        if limit is not None and batch_size > limit:
            self.calls.append((request.file, batch_size))
            raise self.oom()
        return super().transcribe(samples, request, batch_size, progress, speech)

    def free_memory(self) -> int | None:
        self.freed += 1
        return 3 * 1024**3


def metadata(config: Config, stem: str) -> dict:
    return json.loads((config.folders.outbox / f"{stem}.json").read_text())["transcribed"]


def transcript(config: Config, stem: str) -> str:
    return (config.folders.outbox / f"{stem}.txt").read_text()


@pytest.fixture
def reference_text(tmp_path) -> str:
    """x.txt as a run without any fault writes it."""
    config = make_config(tmp_path / "reference")
    consumer = make_consumer(config, TightGpuEngine())
    drop(config, "x.wav")
    process_next(consumer)
    return transcript(config, "x")


class TestHalving:
    """An OOM halves the batch size and retries the same job, whatever form the OOM takes."""

    @pytest.mark.parametrize("form", OOM_FORMS)
    def test_halves_retries_and_gives_the_unfaulted_result(self, tmp_path, form, reference_text):
        config = make_config(tmp_path)
        engine = TightGpuEngine(fits={"x.wav": 4}, oom=OOM_FORMS[form])
        consumer = make_consumer(config, engine)
        drop(config, "x.wav")
        with capture_logs() as events:
            process_next(consumer)

        assert engine.calls == [("x.wav", 16), ("x.wav", 8), ("x.wav", 4)]
        assert engine.freed == 2
        assert (config.folders.done / "x.wav").is_file()
        assert transcript(config, "x") == reference_text
        stage = "vad" if form == "pyannote" else "transcribe"
        backoffs = [e for e in events if e["event"] == "engine.oom_backoff"]
        assert [(e["stage"], e["old_batch_size"], e["new_batch_size"], e["free_memory_bytes"])
                for e in backoffs] == [(stage, 16, 8, 3 * 1024**3), (stage, 8, 4, 3 * 1024**3)]
        meta = metadata(config, "x")
        assert meta["batch_size"] == 4 and meta["device"] == "cuda"
        assert [(s["stage"], s["old_batch_size"], s["new_batch_size"]) for s in meta["oom_backoffs"]] \
            == [(stage, 16, 8), (stage, 8, 4)]
        assert consumer.stats.oom_backoffs == 2

    def test_a_non_oom_error_is_not_backed_off(self, tmp_path):
        config = make_config(tmp_path)
        engine = TightGpuEngine(fits={"x.wav": 0},
                                oom=lambda: RuntimeError("No model replica is available in this thread"))
        consumer = make_consumer(config, engine)
        drop(config, "x.wav")
        process_next(consumer)
        assert engine.calls == [("x.wav", 16)]
        assert consumer.pipeline.governor.current == 16 and consumer.stats.oom_backoffs == 0


class TestRecovery:
    """The lowered size stays for the next jobs, then is probed back up after a run of successes."""

    def test_one_long_file_does_not_slow_the_rest_of_the_day(self, tmp_path):
        config = make_config(tmp_path, oom={"probe_after_jobs": 2})
        engine = TightGpuEngine(fits={"long.wav": 4})
        consumer = make_consumer(config, engine)
        for name in ("long.wav", "a.wav", "b.wav", "c.wav", "d.wav", "e.wav"):
            drop(config, name)
            process_next(consumer)
        assert engine.calls == [("long.wav", 16), ("long.wav", 8), ("long.wav", 4),
                                ("a.wav", 4), ("b.wav", 4), ("c.wav", 8), ("d.wav", 8), ("e.wav", 16)]
        assert [metadata(config, n)["batch_size"] for n in "abcde"] == [4, 4, 8, 8, 16]
        assert all(metadata(config, n)["oom_backoffs"] == [] for n in "abcde")


class TestAtBatchSizeOne:
    """Still out of memory at batch size 1: oom.fallback decides."""

    def test_cpu_fallback_transcribes_this_job_on_the_cpu(self, tmp_path, reference_text):
        config = make_config(tmp_path, oom={"fallback": "cpu"})
        engine = TightGpuEngine(fits={"x.wav": 0}, settings=replace(GPU_SETTINGS, batch_size=4))
        consumer = make_consumer(config, engine)
        drop(config, "x.wav")
        with capture_logs() as events:
            process_next(consumer)

        assert engine.calls == [("x.wav", 4), ("x.wav", 2), ("x.wav", 1), ("x.wav", 1)]
        assert (config.folders.done / "x.wav").is_file()
        assert transcript(config, "x") == reference_text
        meta = metadata(config, "x")
        assert meta["device"] == "cpu" and meta["compute_type"] == "int8"
        assert [s.get("new_batch_size", s.get("fallback")) for s in meta["oom_backoffs"]] == [2, 1, None, "cpu"]
        assert [e["event"] for e in events if e["event"].startswith("engine.")] == [
            "engine.oom_backoff", "engine.oom_backoff", "engine.oom_backoff", "engine.cpu_fallback"]

    def test_fail_fallback_sends_the_file_to_failed_with_the_reason(self, tmp_path):
        config = make_config(tmp_path, oom={"fallback": "fail"})
        engine = TightGpuEngine(fits={"x.wav": 0}, oom=OOM_FORMS["torch"])
        consumer = make_consumer(config, engine)
        source = drop(config, "x.wav")
        original = source.read_bytes()
        process_next(consumer)

        assert [size for _, size in engine.calls] == [16, 8, 4, 2, 1]
        assert (config.folders.failed / "x.wav").read_bytes() == original
        report = json.loads((config.folders.failed / "x.wav.error.json").read_text())
        assert report["error_kind"] == "out_of_memory"
        assert "batch size 1" in report["error"] and "OutOfMemoryError" in report["error"]
        assert not (config.folders.outbox / "x.json").exists()
        assert consumer.stats.oom_backoffs == 5


class TestLostGpu:
    """A GPU that is gone is not an OOM: the file goes back untouched and the daemon exits 3."""

    def test_the_file_goes_back_to_the_inbox_untouched(self, tmp_path):
        config = make_config(tmp_path)
        engine = TightGpuEngine(lose_gpu_on=("x.wav",))
        consumer = make_consumer(config, engine)
        source = drop(config, "x.wav")
        original = source.read_bytes()
        with pytest.raises(GpuLost):
            process_next(consumer)
        assert source.read_bytes() == original
        assert engine.calls == [("x.wav", 16)] and engine.freed == 0
        assert not any(config.folders.failed.iterdir()) and not any(config.folders.done.iterdir())

    def test_the_daemon_exits_3_and_leaves_the_file_in_the_inbox(self, tmp_path):
        config_file = tmp_path / "transcribed.yaml"
        config_file.write_text("watch: {settle_seconds: 0.2, rescan_seconds: 0.5}\n"
                               "daemon: {shutdown_grace_seconds: 5}\n"
                               + "folders: {" + ", ".join(f"{n}: {n}" for n in
                                  ("inbox", "outbox", "done", "failed", "state")) + "}\n")
        (tmp_path / "inbox").mkdir()
        source = write_tone_wav(tmp_path / "inbox" / "x.wav", 1.0)
        original = source.read_bytes()
        env = {**os.environ, "TRANSCRIBED_FAKE": json.dumps({"lose_gpu_on": ["x.wav"]})}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "transcribed", "run", "--engine", "fake", "--config", str(config_file)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            output, _ = daemon.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.send_signal(signal.SIGKILL)
            output, _ = daemon.communicate()
            pytest.fail(f"the daemon did not exit on a lost GPU:\n{output}")
        events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert daemon.returncode == 3, output
        assert source.read_bytes() == original
        lost = [e for e in events if e["event"] == "engine.gpu_lost"]
        assert len(lost) == 1 and lost[0]["level"] == "critical", output
        assert "unknown error" in lost[0]["error"]
        assert any(e["event"] == "job.requeued" for e in events)
        assert events[-1]["event"] == "daemon.stopped" and events[-1]["exit_code"] == 3
