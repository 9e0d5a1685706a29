"""Pause, resume and quiet hours: `transcribed pause` from another shell (its own process) reaches
every daemon on the state folder, running or started later; the running job finishes (or with
`--now` goes back untouched); files keep arriving and are counted; every report says paused and
until when; `transcribed resume` lets them go on. Quiet hours on a clock the test moves run the
consumer in-process (a child's clock cannot be moved).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.consumer import make_config, make_consumer
from tests.support.daemon import DaemonProcess, Folders, status_records, wait_until
from tests.support.media import write_tone_wav
from tests.support.net import free_port, http_get, metric_value
from transcribed.consumer.gate import Gate
from transcribed.engine.fake import FakeEngine


def cli(folders: Folders, *args: str) -> subprocess.CompletedProcess[str]:
    """`transcribed ARGS --config ...` in a child process: another shell on the same host."""
    done = subprocess.run([sys.executable, "-m", "transcribed", *args, "--config", str(folders.config)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


def fake(folders: Folders, **options: object) -> DaemonProcess:
    return DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(options)})


def drop(folders: Folders, name: str, seconds: float = 1.0) -> Path:
    write_tone_wav(folders.root / name, seconds)
    return Path(shutil.move(folders.root / name, folders.inbox / name))


def records(folders: Folders) -> list[dict[str, Any]]:
    return status_records(folders.state)



def test_a_pause_from_another_shell_lets_the_job_finish_takes_no_more_and_counts_what_arrives(
        folders: Folders) -> None:
    """Paused while a job runs: it finishes; files dropped meanwhile are counted (status file,
    /metrics) and not claimed; /healthz stays 200 and says paused and why; after the idle delay
    the models leave memory; `transcribed resume` lets the files go on."""
    address = f"127.0.0.1:{free_port()}"
    folders.write_config(metrics={"listen": address}, model={"idle_unload_seconds": 1.0})
    with fake(folders, delay=2.0) as daemon:
        drop(folders, "first.wav")
        daemon.wait_for("job.started")
        paused = cli(folders, "pause", "--reason", "a game night", "--for", "2h")
        daemon.wait_for("daemon.paused", reason="a game night", by="pause")
        daemon.wait_for("job.done", file="first.wav")
        for name in ("b.wav", "c.wav"):
            drop(folders, name)
        record = wait_until(lambda: next((r for r in records(folders) if r.get("queue_length") == 2), None),
                            30, "the status file to count the two files that arrived")
        daemon.wait_for("model.unloaded", timeout=30)
        health = http_get(address, "/healthz")
        paused_metric, until_metric = metric_value(address, "transcribed_paused"), \
            metric_value(address, "transcribed_paused_until_seconds")
        status = cli(folders, "status").stdout
        assert daemon.count("job.claimed") == 1, "nothing claimed while paused"
        resumed = cli(folders, "resume")
        for name in ("b.wav", "c.wav"):
            daemon.wait_for("job.done", file=name, timeout=60)
        daemon.wait_for("daemon.resumed")
    assert "paused 1 daemon on" in paused.stdout and "until" in paused.stdout
    assert "running jobs finish first" in paused.stdout and "[" in paused.stdout.splitlines()[1]
    assert record["paused"]["by"] == "pause" and record["paused"]["reason"] == "a game night"
    assert record["paused"]["until"] is not None and "paused until" in status
    assert "(a game night)" in status and "2 waiting" in status
    code, body = health
    assert code == 200 and json.loads(body)["status"] == "ok"
    assert json.loads(body)["paused"]["reason"] == "a game night"
    assert paused_metric == 1.0 and until_metric == record["paused"]["until"]
    assert resumed.stdout.startswith("resumed 1 daemon on")


def test_pause_now_gives_the_running_job_back_untouched(folders: Folders) -> None:
    """`--now`: the running job goes back to the inbox as it came, uncounted; after resume it
    runs again as its first attempt."""
    with fake(folders, delay=30.0) as daemon:
        source = drop(folders, "long.wav", 2.0)
        original = source.read_bytes()
        daemon.wait_for("job.started")
        said = cli(folders, "pause", "--now")
        requeued = daemon.wait_for("job.requeued", timeout=30)
        back = wait_until(lambda: source.exists() and source, 30, "the file back in the inbox")
        assert back.read_bytes() == original and daemon.count("job.done") == 0
        cli(folders, "resume")
        started_again = wait_until(lambda: [e for e in daemon.events() if e.get("event") == "job.started"][1:],
                                   60, "the file to start again")
    assert "running jobs go back to the inbox untouched" in said.stdout
    assert requeued["reason"] == "transcribed pause --now"
    assert started_again[0]["attempt"] == 1, "the job given back did not count an attempt"


def test_a_daemon_started_while_paused_stays_paused_and_one_command_reaches_every_daemon(
        folders: Folders) -> None:
    """Paused before any daemon runs: the command says so; two daemons started on the same state
    folder (as two hosts on one share) take nothing; a resume lets both go on; a second pause
    says it paused 2 daemons."""
    alone = cli(folders, "pause")
    drop(folders, "waiting.wav")
    with fake(folders, delay=0.2) as one, fake(folders, delay=0.2) as two:
        for daemon in (one, two):
            daemon.wait_for("daemon.paused")
        wait_until(lambda: len([r for r in records(folders) if r.get("paused") and r.get("queue_length")]) == 2,
                   30, "both daemons to say paused, with the file counted")
        assert one.count("job.claimed") + two.count("job.claimed") == 0
        resumed = cli(folders, "resume")
        wait_until(lambda: (folders.done / "waiting.wav").exists(), 60, "the file done")
        both = cli(folders, "pause", "--until", (datetime.now() + timedelta(hours=1)).strftime("%H:%M"))
        cli(folders, "resume")
    assert "no daemon runs on" in alone.stdout and "stays paused" in alone.stdout
    assert resumed.stdout.startswith("resumed 2 daemons on")
    assert both.stdout.startswith("paused 2 daemons on") and len(both.stdout.splitlines()) == 3
    assert all("paused until" in line for line in both.stdout.splitlines()[1:]), both.stdout


def test_quiet_hours_around_now_keep_a_daemon_from_starting_anything(folders: Folders) -> None:
    """A window around the present moment: the daemon says quiet hours and claims nothing."""
    now = datetime.now()
    window = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"
    folders.write_config(schedule={"quiet": [window]})
    drop(folders, "night.wav")
    with fake(folders) as daemon:
        event = daemon.wait_for("daemon.paused", by="schedule")
        record = wait_until(lambda: next((r for r in records(folders) if r.get("queue_length") == 1), None),
                            30, "the file counted while quiet")
        assert daemon.count("job.claimed") == 0
    assert "quiet hours" in record["paused"]["reason"] and window in record["paused"]["reason"]
    assert event["until"] is not None


def test_quiet_hours_end_on_the_schedules_clock(tmp_path: Path) -> None:
    """In-process, with the gate's clock moved by the test: files wait during the window, the
    models leave after the idle delay, and the files are transcribed once the window ends."""
    config = make_config(tmp_path, schedule={"quiet": ["Mon 08:00-18:00"], "timezone": "UTC"},
                         model={"idle_unload_seconds": 0.1})
    engine = FakeEngine()
    engine.load()
    consumer = make_consumer(config, engine)
    clock = [datetime.fromisoformat("2025-03-03T09:00+00:00").timestamp()]
    consumer.gate = Gate(config, consumer.stats, clock=lambda: clock[0])
    write_tone_wav(config.folders.inbox / "a.wav", 0.5)
    stop = threading.Event()
    loop = threading.Thread(target=consumer.run, args=(stop,), name="consumer")
    loop.start()
    try:
        wait_until(lambda: consumer.stats.inbox_waiting == 1 and consumer.stats.pause, 30,
                   "the file counted while quiet")
        wait_until(lambda: engine.unloads == 1, 30, "the models unloaded while quiet")
        assert not (config.folders.done / "a.wav").exists() and engine.calls == []
        assert consumer.stats.pause["by"] == "schedule" and consumer.stats.pause["until"] == \
            datetime.fromisoformat("2025-03-03T18:00+00:00").timestamp()
        clock[0] = datetime.fromisoformat("2025-03-03T18:00+00:00").timestamp()
        consumer.wake.set()
        wait_until(lambda: (config.folders.done / "a.wav").exists(), 30, "the file done after the window")
        assert consumer.stats.pause is None and engine.loads == 2
    finally:
        stop.set()
        consumer.wake.set()
        loop.join(timeout=30)
