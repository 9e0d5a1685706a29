"""/metrics and /healthz over loopback, as Prometheus and Kubernetes' probes see them.

The counter tests run the daemon (fake engine) as a child process with `metrics.listen` on a
free loopback port, drop real audio files into its inbox and scrape with urllib; the text is
parsed with prometheus_client's own parser. A stuck consumer is a real daemon whose fake engine
hangs on one file (`hang_on`); the exact 503 body is also checked on a `Stats` served alone.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_random_bytes, write_tone_wav
from tests.support.net import free_port
from transcribed.errors import TranscribedError
from transcribed.operations.listener import Listener
from transcribed.operations.stats import Stats


def get(url: str) -> tuple[int, str, str]:
    """GET `url`: status, content type and body, for 2xx and error replies alike."""
    try:
        with urllib.request.urlopen(url, timeout=10) as reply:
            return reply.status, reply.headers["Content-Type"], reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def scrape(base: str) -> dict[str, float]:
    """Every sample of /metrics as {"name{label=value,...}": value}."""
    status, content_type, text = get(f"{base}/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


def serve(folders: Folders, fake: dict | None = None, **metrics: object) -> tuple[DaemonProcess, str]:
    port = free_port()
    folders.write_config(metrics={"listen": f"127.0.0.1:{port}", **metrics})
    daemon = DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(fake or {})})
    return daemon, f"http://127.0.0.1:{port}"


def drop(folders: Folders, name: str, seconds: float) -> None:
    """Write a tone next to the inbox, then move it in whole (as a user's `mv` would)."""
    write_tone_wav(folders.root / name, seconds)
    shutil.move(folders.root / name, folders.inbox / name)


def test_counters_move_after_real_jobs(folders: Folders) -> None:
    """Two good files and one bad: jobs by outcome, audio and processing seconds, the histogram,
    realtime factor, OOM back-offs and the batch size all show it."""
    daemon, base = serve(folders, fake={"oom_above_batch": 2, "delay": 0.2})
    with daemon:
        before = scrape(base)
        assert before['transcribed_jobs_total{outcome=done}'] == 0
        assert before["transcribed_healthy"] == 1 and before["transcribed_model_load_seconds"] >= 0
        assert before["transcribed_batch_size"] == 4

        drop(folders, "a.wav", 2.0)
        drop(folders, "b.wav", 3.0)
        write_random_bytes(folders.inbox / "noise.wav", 4096)
        wait_until(lambda: daemon.count("job.moved") == 3, 60, "three jobs finished")
        after = scrape(base)
        assert daemon.stop() == 0

    assert after["transcribed_jobs_total{outcome=done}"] == 2
    assert after["transcribed_jobs_total{outcome=failed}"] == 1
    assert after["transcribed_audio_seconds_total"] == pytest.approx(5.0, abs=0.01)
    processing = after["transcribed_processing_seconds_total"]
    assert processing >= 0.4  # two jobs of at least 0.2 s each
    assert after["transcribed_job_processing_seconds_count"] == 2
    assert after["transcribed_job_processing_seconds_sum"] == pytest.approx(processing)
    assert after["transcribed_job_processing_seconds_bucket{le=+Inf}"] == 2
    assert after["transcribed_realtime_factor"] > 0
    # The fake engine runs out of memory above batch 2: halved once, from 4 to 2, and kept.
    assert after["transcribed_oom_backoffs_total"] == 1
    assert after["transcribed_batch_size"] == 2
    assert after["transcribed_queue_length"] == 0 and after["transcribed_busy"] == 0
    assert after["transcribed_heartbeat_age_seconds"] < 10
    assert after["process_resident_memory_bytes"] > 0
    info = next(k for k in after if k.startswith("transcribed_info{"))
    assert "model=fake" in info and "device=cpu" in info


def test_healthz_is_200_with_json_while_running(folders: Folders) -> None:
    """A running daemon answers /healthz 200 with a JSON body; unknown paths are 404."""
    daemon, base = serve(folders)
    with daemon:
        status, content_type, body = get(f"{base}/healthz")
        missing, _, _ = get(f"{base}/nothing-here")
        assert daemon.stop() == 0
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body)["status"] == "ok" and json.loads(body)["state"] == "running"
    assert missing == 404


def test_healthz_is_503_with_a_reason_when_the_heartbeat_is_stale() -> None:
    """Before the model loads, and once the consumer stops beating: 503 and a JSON reason."""
    stats = Stats()
    server = Listener(f"127.0.0.1:{free_port()}", stats, stale_after=0.3, worker="test").start()
    base = f"http://{server.address}"
    try:
        loading = get(f"{base}/healthz")
        stats.model_loaded("tiny.en", "cpu", 1.5, 4)
        stats.running()
        fresh = get(f"{base}/healthz")
        time.sleep(0.5)  # no beat for longer than stale_after
        stale = get(f"{base}/healthz")
        metrics = scrape(base)
        stats.beat()
        again = get(f"{base}/healthz")
    finally:
        server.close()

    assert loading[0] == 503 and "model not loaded" in json.loads(loading[2])["reason"]
    assert fresh[0] == 200
    assert stale[0] == 503 and stale[1] == "application/json"
    reason = json.loads(stale[2])["reason"]
    assert "heartbeat" in reason and "stuck" in reason, reason
    assert metrics["transcribed_healthy"] == 0 and metrics["transcribed_heartbeat_age_seconds"] >= 0.3
    assert again[0] == 200


def test_a_stuck_consumer_turns_healthz_503_and_its_file_survives_the_stop(folders: Folders) -> None:
    """The engine never returns on stuck.wav: /healthz goes 503 once the heartbeat is older than
    metrics.stale_after_seconds; SIGTERM then gives the file back to the inbox, untouched, after
    the grace period, and the process exits although the consumer thread is still stuck."""
    daemon, base = serve(folders, fake={"hang_on": ["stuck.wav"]}, stale_after_seconds=11)
    with daemon:
        assert get(f"{base}/healthz")[0] == 200
        write_tone_wav(folders.root / "stuck.wav", 1.0)
        original = (folders.root / "stuck.wav").read_bytes()
        shutil.copy(folders.root / "stuck.wav", folders.inbox / "stuck.wav")
        daemon.wait_for("job.decoded", file="stuck.wav", timeout=30)
        status, _, body = wait_until(lambda: (r := get(f"{base}/healthz"))[0] == 503 and r, 30,
                                     "/healthz 503")
        assert daemon.stop(timeout=60) == 0
    assert "stuck" in json.loads(body)["reason"], body
    assert (folders.inbox / "stuck.wav").read_bytes() == original
    assert daemon.count("job.requeued") == 1 and daemon.count("job.done") == 0


def test_a_port_in_use_stops_start_up_with_exit_1_naming_the_key(folders: Folders) -> None:
    """metrics.listen on a taken port: exit 1 (worth a restart), and the message says why."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        folders.write_config(metrics={"listen": f"127.0.0.1:{port}"})
        daemon = DaemonProcess(folders.config, engine="fake")
        with pytest.raises(AssertionError, match=r"daemon exited \(1\)"):
            daemon.start(ready_timeout=30)
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}" in daemon.stderr()
    assert list((folders.state / "status").glob("*.json")) == [], "status file left behind"


def test_server_refuses_a_taken_port_in_process() -> None:
    """Listener.start raises TranscribedError (not a bare OSError) for a taken port."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(TranscribedError, match="metrics.listen"):
            Listener(f"127.0.0.1:{taken.getsockname()[1]}", Stats(), 1.0, "w").start()


@pytest.mark.e2e
@pytest.mark.usefixtures("corpus")
def test_real_engine_counters_after_a_real_recording(folders: Folders) -> None:
    """WhisperX (tiny.en on the CPU): model load time, audio seconds and speed are real numbers."""
    from tests.support.corpus import corpus_dir

    port = free_port()
    folders.write_config(metrics={"listen": f"127.0.0.1:{port}"}, model={"device": "cpu"})
    base = f"http://127.0.0.1:{port}"
    clip = corpus_dir() / "cmu_sphinx" / "goforward.wav"  # 2.79 s
    with DaemonProcess(folders.config) as daemon:
        shutil.copy(clip, folders.inbox / "goforward.wav")
        daemon.wait_for("job.moved", timeout=180)
        after = scrape(base)
        assert daemon.stop() == 0
    assert after["transcribed_jobs_total{outcome=done}"] == 1
    assert after["transcribed_audio_seconds_total"] == pytest.approx(2.79, abs=0.05)
    assert after["transcribed_model_load_seconds"] > 0
    assert after["transcribed_processing_seconds_total"] > 0
    assert after["transcribed_realtime_factor"] > 0
    info = next(k for k in after if k.startswith("transcribed_info{"))
    assert "model=tiny.en" in info and "device=cpu" in info
    assert "transcribed_gpu_memory_used_bytes" not in after  # on the CPU there is none

