"""Progress and ETA of a running job, as a real daemon reports it: job.progress log events,
`transcribed status` (human and --json), systemd's STATUS= line (a real AF_UNIX datagram socket),
/metrics over loopback; and `transcribed transcribe`'s progress bar on a real pseudo-terminal.

The fake engine reports its progress in 0.1 s steps of its `delay`, so a few seconds of delay
make progress visible; audio is real wav files decoded for real.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_tone_wav
from tests.support.net import free_port
from tests.support.notify import NotifySocket


def scrape(address: str) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if not s.labels}


def status(folders: Folders, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "transcribed", "status", "--config",
                           str(folders.config), *args], capture_output=True, text=True, timeout=60,
                          check=False)


def drop(folders: Folders, name: str, seconds: float) -> None:
    """Write a tone beside the inbox, then move it in whole (as a user's `mv` would)."""
    write_tone_wav(folders.root / name, seconds)
    shutil.move(folders.root / name, folders.inbox / name)


def seconds_of(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


def test_progress_events_are_spaced_in_time_and_in_percent(folders: Folders) -> None:
    """A 10 s file that takes the fake model 3 s: job.progress at most every
    log.progress_seconds (0.5 s) and 5 % apart, with audio done, time so far and an ETA from the
    job's own rate that shrinks as it goes."""
    folders.write_config(log={"progress_seconds": 0.5})
    with DaemonProcess(folders.config, engine="fake",
                       env={"TRANSCRIBED_FAKE": json.dumps({"delay": 3.0})}) as daemon:
        drop(folders, "long.wav", 10.0)
        done = daemon.wait_for("job.done", timeout=60)
        events = [e for e in daemon.events() if e["event"] == "job.progress"]
    started = seconds_of(daemon.wait_for("job.started"))
    assert 3 <= len(events) <= 20, events  # 3 s at 0.5 s apart; never more than one per 5 %
    times = [seconds_of(e) for e in events]
    percents = [e["percent"] for e in events]
    assert times[0] - started >= 0.45, "the first event comes one interval after the job began"
    assert all(b - a >= 0.45 for a, b in zip(times, times[1:])), times
    assert all(b - a >= 5 for a, b in zip(percents, percents[1:])), percents
    for event in events:
        assert event["job_id"] == done["job_id"] and event["file"] == "long.wav"
        assert event["audio_total_s"] == 10.0
        assert event["audio_s"] == pytest.approx(event["percent"] / 10, abs=0.1)
        assert event["eta_from"] == "this job" and 0 <= event["eta_s"] <= done["wall_s"], event
        assert 0 < event["elapsed_s"] <= done["wall_s"] + 0.05  # rounded to 0.1 s
    assert events[-1]["eta_s"] < events[0]["eta_s"], "the time left shrinks as the job goes"


def test_status_metrics_and_status_line_show_the_running_job_and_the_waiting_audio(
        folders: Folders, notify_socket: NotifySocket) -> None:
    """Three files in the inbox before the start (8, 5 and 3 s): while the first runs, STATUS=
    says how far it is and how long it needs, `status` and `status --json` show its progress,
    /metrics its ratio and the 8 s of audio still waiting; at the end both are 0."""
    address = f"127.0.0.1:{free_port()}"
    folders.write_config(metrics={"listen": address}, packing={"enabled": False})  # one job at a time
    for name, seconds in (("a.wav", 8.0), ("b.wav", 5.0), ("c.wav", 3.0)):
        drop(folders, name, seconds)
    env = {"TRANSCRIBED_FAKE": json.dumps({"delays": {"a.wav": 8.0}, "delay": 0.5}),
           "NOTIFY_SOCKET": notify_socket.path}
    with DaemonProcess(folders.config, engine="fake", env=env) as daemon:
        running = wait_until(lambda: (m := scrape(address))["transcribed_job_progress_ratio"] > 0.1 and m,
                             30, "the first job's progress on /metrics")
        assert running["transcribed_queue_audio_seconds"] == pytest.approx(8.0, abs=0.05)
        assert running["transcribed_queue_length"] == 2
        line = wait_until(lambda: _status_line(notify_socket, r"transcribing a\.wav: \d+ %, about \d+ (s|min) left; "
                                                r"2 waiting; 0 done, 0 failed"), 30, "STATUS= with progress")
        record = wait_until(lambda: _running_record(folders), 30, "the status file's progress")
        human = status(folders).stdout
        idle = wait_until(lambda: (m := scrape(address))["transcribed_audio_seconds_total"] == 16 and m, 60,
                          "all three done")
        assert daemon.stop() == 0
    assert record["current_file"] == "a.wav" and record["queue_audio_s"] == pytest.approx(8.0, abs=0.05)
    progress = record["progress"]
    assert progress["audio_total_s"] == 8.0 and 0 < progress["percent"] < 100
    assert progress["eta_from"] == "this job" and 0 <= progress["eta_s"] <= 30  # 8 s, on a busy machine more
    assert re.search(r"transcribing a\.wav: \d+ %, about \d+ (s|min) left; 2 waiting", human), human
    assert re.search(r"\n  \d+ % of 8 s of audio in \d+ s, about \d+ (s|min) left \(from this job's rate\)",
                     human), human
    assert "2 waiting with 8 s of audio" in human, human
    assert idle["transcribed_job_progress_ratio"] == 0 and idle["transcribed_queue_audio_seconds"] == 0
    assert line


def _status_line(notify_socket: NotifySocket, pattern: str) -> str | None:
    message = notify_socket.next(time.monotonic() + 0.5)
    if message is not None and re.fullmatch(pattern, message.get("STATUS", "")):
        return message["STATUS"]
    return None


def _running_record(folders: Folders) -> dict[str, Any] | None:
    answer = json.loads(status(folders, "--json").stdout)
    workers = answer["workers"]
    if workers and workers[0].get("progress") and workers[0]["progress"]["percent"] > 0:
        return workers[0]
    return None


# --- transcribed transcribe's bar ------------------------------------------------------------------

def run_on_a_terminal(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run `command` with stdout and stderr on a new pseudo-terminal (80 x 24); its exit code and
    everything it wrote."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
                               cwd=cwd, env=env)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        readable, _, _ = select.select([master], [], [], 1.0)
        if not readable:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        output += data
    os.close(master)
    return process.wait(timeout=30), output.decode("utf-8", "replace")


def transcribe_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    write_tone_wav(tmp_path / "first.wav", 3.0)
    write_tone_wav(tmp_path / "second.wav", 2.0)
    command = [sys.executable, "-m", "transcribed", "transcribe", "--engine", "fake",
               "first.wav", "second.wav", "--out", "out"]
    env = {**os.environ, "TRANSCRIBED_FAKE": json.dumps({"delay": 1.5}), "PYTHONUNBUFFERED": "1"}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    return command, env


def test_transcribe_on_a_terminal_draws_a_bar_per_file_with_the_log_above(tmp_path: Path) -> None:
    """On a terminal each file gets a bar that climbs to 100 %, and the log lines stay whole."""
    command, env = transcribe_command(tmp_path)
    code, output = run_on_a_terminal(command, tmp_path, env)
    assert code == 0, output
    for name in ("first.wav", "second.wav"):
        shown = [int(p) for p in re.findall(rf"{re.escape(name)}:\s+(\d+)%\|", output)]
        assert shown and shown[-1] == 100, (name, output[-2000:])
        assert any(0 < p < 100 for p in shown), f"{name}: the bar never showed a step between"
    lines = [re.sub(r"^.*\r", "", line) for line in output.split("\r\n")]  # the last redraw of each
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert sum(e["event"] == "job.output" for e in events) == 8  # json, txt, srt, vtt of each
    assert (tmp_path / "out" / "first.json").is_file() and (tmp_path / "out" / "second.txt").is_file()


def test_transcribe_into_a_pipe_draws_no_bar(tmp_path: Path) -> None:
    """stdout not a terminal: no bar anywhere, and stdout is only JSON lines."""
    command, env = transcribe_command(tmp_path)
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "%|" not in result.stdout and "%|" not in result.stderr and "\r" not in result.stdout
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert sum(e["event"] == "job.output" for e in events) == 8


def test_before_the_engines_first_figure_the_eta_comes_from_the_last_jobs(folders: Folders) -> None:
    """With log.progress_seconds 0, the event at the model's start (0 %, nothing decoded yet) of
    the second job predicts its time from the first job's speed; the first job had nothing to go by."""
    folders.write_config(log={"progress_seconds": 0})
    with DaemonProcess(folders.config, engine="fake",
                       env={"TRANSCRIBED_FAKE": json.dumps({"delay": 1.0})}) as daemon:
        drop(folders, "first.wav", 4.0)
        first = daemon.wait_for("job.done", timeout=60)
        drop(folders, "second.wav", 8.0)
        daemon.wait_for("job.done", timeout=60, file="second.wav")
    starts = [e for e in daemon.events() if e["event"] == "job.progress" and e["percent"] == 0]
    assert [e["file"] for e in starts] == ["first.wav", "second.wav"], starts
    assert starts[0]["eta_s"] is None and starts[0]["eta_from"] is None
    # 8 s of audio at the first job's realtime factor, less the little time already spent; the
    # event's eta_s is rounded to 0.1 s and job.done's rtf to 0.01, so allow one rounding step up.
    predicted = 8.0 / first["rtf"]
    assert starts[1]["eta_from"] == "recent jobs"
    assert predicted - 0.5 <= starts[1]["eta_s"] <= predicted + 0.1, (starts[1], predicted)
