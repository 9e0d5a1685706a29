"""Giving the memory back when idle (`model.idle_unload_seconds`): a real daemon (fake engine whose
"weights" are `model_bytes` of real memory) unloads after the idle spell, stays healthy for
/healthz, `status --check` and systemd's watchdog, and loads again for the next file; the
residency logic itself runs in-process on the FakeEngine with a clock the test moves.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.consumer import make_config
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_tone_wav
from tests.support.net import free_port, http_get, metric_value
from tests.support.notify import NotifySocket
from transcribed.config import Config
from transcribed.consumer.residency import Residency
from transcribed.engine.fake import FakeEngine
from transcribed.operations.stats import Stats

#: The fake model's "weights": real pages the RSS shows, given back by the unload.
MODEL_BYTES = 150_000_000




def status(folders: Folders, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transcribed", "status", "--config",
                           str(folders.config), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def drop(folders: Folders, name: str, seconds: float = 1.0) -> None:
    write_tone_wav(folders.root / name, seconds)
    shutil.move(folders.root / name, folders.inbox / name)


def watchdog_pings(notify_socket: NotifySocket, seconds: float) -> int:
    deadline, pings = time.monotonic() + seconds, 0
    while (message := notify_socket.next(deadline)) is not None:
        pings += message.get("WATCHDOG") == "1"
    return pings


def test_an_idle_daemon_gives_its_memory_back_stays_healthy_and_reloads_for_the_next_file(
        folders: Folders, notify_socket: NotifySocket) -> None:
    """After 2.5 s idle: model.unloaded with the RSS it freed; /healthz 200 with state
    `unloaded`, `status --check` healthy and saying so, the watchdog still fed; the next file
    reloads first (model.loading, model.loaded) and its timings carry model_load."""
    address = f"127.0.0.1:{free_port()}"
    folders.write_config(model={"idle_unload_seconds": 2.5}, metrics={"listen": address})
    drop(folders, "first.wav")  # before the start: its job begins before any idle spell could end
    fake = {"delay": 0.2, "load_seconds": 0.5, "model_bytes": MODEL_BYTES}
    env = {"TRANSCRIBED_FAKE": json.dumps(fake), "NOTIFY_SOCKET": notify_socket.path,
           "WATCHDOG_USEC": "2000000"}
    with DaemonProcess(folders.config, engine="fake", env=env) as daemon:
        finished = daemon.wait_for("job.done", timeout=30)
        unloaded = daemon.wait_for("model.unloaded", timeout=30)
        wait_until(lambda: "idle, models unloaded" in status(folders).stdout, 30, "the status file to say so")
        health = http_get(address, "/healthz")
        resident = metric_value(address, "transcribed_model_resident")
        checked = status(folders, "--check")
        pings = watchdog_pings(notify_socket, 2.5)
        drop(folders, "second.wav")
        second = daemon.wait_for("job.done", timeout=30, file="second.wav")
        assert daemon.count("model.unloaded") == 1, "one idle spell, after the first job"
        resident_again = metric_value(address, "transcribed_model_resident")
        assert daemon.stop() == 0
    assert MODEL_BYTES * 0.8 <= unloaded["rss_freed_bytes"] <= MODEL_BYTES * 1.2, unloaded
    assert unloaded["rss_after_bytes"] < unloaded["rss_before_bytes"]
    assert unloaded["idle_s"] >= 2.5 and "gpu_used_freed_bytes" not in unloaded  # no GPU: not known
    assert health[0] == 200 and json.loads(health[1])["state"] == "unloaded", health
    assert resident == 0 and resident_again == 1
    assert checked.returncode == 0, checked.stdout
    assert pings >= 2, "the watchdog is fed while the models are unloaded"
    events = [e["event"] for e in daemon.events()]
    after_unload = events[events.index("model.unloaded"):]
    assert after_unload.index("model.loading") < after_unload.index("model.loaded") \
        < after_unload.index("job.started"), after_unload
    reload = [e for e in daemon.events() if e["event"] == "model.loaded"][-1]
    assert reload["seconds"] >= 0.5 and reload["reason"] == "reload after the idle unload"
    assert reload["file"] == "second.wav", "the reload is logged with the job that needed it"
    timings = [json.loads((folders.outbox / f"{n}.json").read_text())["transcribed"]["timings"]
               for n in ("first", "second")]
    assert "model_load" not in timings[0] and timings[1]["model_load"] == reload["seconds"]
    assert finished["file"] == "first.wav" and second["file"] == "second.wav"


# --- the residency logic, in-process ---------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def residency(tmp_path: Path, engine: FakeEngine, clock: Clock, **model: object) -> Residency:
    config: Config = make_config(tmp_path, model=model)
    stats = Stats()
    stats.model_loaded("fake", "cpu", 0.0, 4)
    stats.running()
    return Residency(config, engine, stats, clock=clock)


class TestResidency:
    """When the models go and come back."""

    def test_off_by_default_the_models_never_leave(self, tmp_path: Path) -> None:
        engine, clock = FakeEngine(loaded=True), Clock()
        kept = residency(tmp_path, engine, clock)
        assert Config().model.idle_unload_seconds is None
        for now in (0.0, 3600.0, 86400.0 * 30):
            clock.now = now
            assert kept.idle(nothing_waits=True) is None
        assert engine.unloads == 0 and kept.resident

    def test_the_idle_clock_counts_only_while_nothing_waits_and_restarts_after_a_job(
            self, tmp_path: Path) -> None:
        engine, clock = FakeEngine(loaded=True), Clock()
        idle = residency(tmp_path, engine, clock, idle_unload_seconds=60)
        assert idle.idle(nothing_waits=True) == 60
        clock.now = 50
        assert idle.idle(nothing_waits=False) is None, "a retry waits: not idle"
        clock.now = 80
        assert idle.idle(nothing_waits=True) == 60, "the clock started again"
        clock.now = 130
        idle.busy()
        assert idle.idle(nothing_waits=True) == 60
        clock.now = 190
        assert idle.idle(nothing_waits=True) == 0.0 and engine.unloads == 1 and not idle.resident
        assert idle.stats.state == "unloaded"
        assert idle.idle(nothing_waits=True) is None, "unloaded once"

    def test_a_reload_beats_while_the_models_load_and_a_hung_load_stops_the_beats(
            self, tmp_path: Path) -> None:
        engine = FakeEngine(loaded=True, load_seconds=0.6)
        slow = residency(tmp_path, engine, Clock(), idle_unload_seconds=1)
        slow.unload()
        beats: list[float] = []
        seconds = slow.ensure_loaded(lambda: beats.append(time.monotonic()), beat_every=0.1)
        assert engine.loaded and slow.resident and slow.stats.state == "running"
        assert len(beats) >= 3, beats
        assert slow.ensure_loaded(lambda: None, 0.1) is None, "resident: nothing to load"
        assert seconds is not None

        engine.load_seconds = 1.0
        slow.stale_after = 0.3
        slow.unload()
        late: list[float] = []
        began = time.monotonic()
        slow.ensure_loaded(lambda: late.append(time.monotonic() - began), beat_every=0.1)
        assert late and max(late) < 0.5, f"no beat after stale_after: {late}"

    def test_a_failed_reload_is_raised_to_the_consumer(self, tmp_path: Path) -> None:
        class Broken(FakeEngine):
            def load(self) -> None:
                raise RuntimeError("CUDA failed with error out of memory")

        broken = residency(tmp_path, Broken(loaded=True), Clock(), idle_unload_seconds=1)
        broken.unload()
        with pytest.raises(RuntimeError, match="out of memory"):
            broken.ensure_loaded(lambda: None, 0.1)
        assert not broken.resident, "still unloaded: the consumer gives its files back and exits"


def test_models_that_cannot_load_again_put_the_file_back_and_end_the_daemon(folders: Folders) -> None:
    """The reload fails (say another program filled the GPU): the file that needed it goes back to
    the inbox untouched, its attempt not counted, and the daemon exits 1 for a restart."""
    folders.write_config(model={"idle_unload_seconds": 2.5})
    drop(folders, "first.wav")  # before the start: its job begins before any idle spell could end
    fake = {"delay": 0.1, "fail_reload": True}
    daemon = DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(fake)})
    with daemon:
        daemon.wait_for("job.done", timeout=30, file="first.wav")
        daemon.wait_for("model.unloaded", timeout=30)
        drop(folders, "second.wav")
        code = daemon.process.wait(timeout=60)
    assert code == 1
    requeued = daemon.wait_for("job.requeued", timeout=1)
    assert requeued["file"] == "second.wav" and "could not be loaded again" in requeued["reason"]
    assert "out of memory" in daemon.wait_for("daemon.consumer_crashed", timeout=1)["error"]
    assert folders.files(folders.inbox) == ["second.wav"]
    assert folders.files(folders.done) == ["first.wav"]
    assert daemon.count("job.started") == 1


@pytest.mark.usefixtures("corpus")
def test_the_bench_prints_the_rss_after_unloading_and_the_reload_time() -> None:
    """bench/idle_unload.py (fake engine: the daemon's own code) runs its cycles and prints both."""
    from tests.support.daemon import REPO

    result = subprocess.run([sys.executable, str(REPO / "bench" / "idle_unload.py"), "--engine", "fake",
                             "--cycles", "2", "--idle", "0.5"], cwd=REPO, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "RSS after unload MiB" in result.stdout
    assert "reload: median" in result.stdout and "RSS after unloading: median" in result.stdout
