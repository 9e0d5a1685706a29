"""Completion hooks with real daemons (fake engine), a real HTTP server on 127.0.0.1 and real
commands: retries, signatures, timeouts, a SIGKILL between a job's end and its delivery, and which
outcomes fire."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import signal
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI
from tests.integration.test_status import status
from tests.support.daemon import REPO, DaemonProcess, Folders, wait_until
from tests.support.media import write_text_as, write_tone_wav

SECRET = b"a signing key\n"  # the trailing newline is not part of the key


@dataclass
class Delivery:
    """One request the receiver answered."""

    headers: dict[str, str]
    body: bytes
    status: int
    method: str = "POST"
    path: str = ""

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that answers 500 to its first `fail_first` requests."""

    fail_first: int = 0
    requests: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self.lock:
            status = 500 if len(self.requests) < self.fail_first else 204
            self.requests.append(Delivery(dict(handler.headers), body, status, handler.command,
                                          handler.path))
        handler.send_response(status)
        handler.end_headers()

    def accepted(self) -> list[Delivery]:
        with self.lock:
            return [r for r in self.requests if r.status == 204]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            state.handle(self)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.handle(self)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _daemon(folders: Folders, failpoints: str = "") -> DaemonProcess:
    env = {"TRANSCRIBED_FAKE": "{}", "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    if failpoints:
        env["TRANSCRIBED_FAILPOINTS"] = failpoints
    return DaemonProcess(folders.config, engine="fake", env=env)


def _deliver(folders: Folders, relpath: str, audio: bool = True) -> None:
    """A second of tone, or (not audio) a text file, renamed into the inbox."""
    folders.deliver(relpath, (lambda path: write_tone_wav(path, 1.0)) if audio else write_text_as)


def _hook_config(folders: Folders, **hooks: Any) -> None:
    folders.write_config(hooks={"retry_delay_seconds": 0.2, **hooks})


def _records(folders: Folders, where: str) -> list[Path]:
    hooks = folders.state / "hooks"
    pattern = f"{where}/*.json" if where in ("delivered", "gave_up") else "*.*.*/*.json"
    return sorted(hooks.glob(pattern))


def _untouched(folders: Folders, name: str) -> None:
    """The job's files are where a job without hooks would leave them."""
    stem = Path(name).with_suffix("")
    assert (folders.done / name).is_file()
    assert (folders.outbox / f"{stem}.srt").read_text().strip()
    assert json.loads((folders.outbox / f"{stem}.json").read_text())["segments"]


def test_a_webhook_that_fails_at_first_is_retried_and_arrives_once_signed(
        folders: Folders, receiver: tuple[Receiver, str]) -> None:
    """Two 500s, then a 204: three tries with the same signed body, a doubling delay, one delivery."""
    server, url = receiver
    server.fail_first = 2
    (folders.root / "hook.key").write_bytes(SECRET)
    _hook_config(folders, url=url, secret_file="hook.key")
    with _daemon(folders) as daemon:
        _deliver(folders, "talks/a.wav")
        delivered = daemon.wait_for("hook.delivered", timeout=30)
        failures = [e for e in daemon.events() if e["event"] == "hook.failed"]
        assert daemon.stop() == 0
    assert [e["retry_in_s"] for e in failures] == [0.2, 0.4]
    assert all(e["error"].startswith("HTTP 500") for e in failures)
    assert delivered["attempt"] == 3 and delivered["target"] == "url"
    assert [r.status for r in server.requests] == [500, 500, 204]
    assert len({r.body for r in server.requests}) == 1, "every try sends the same body"
    (accepted,) = server.accepted()
    body = accepted.json
    headers = {k.lower(): v for k, v in accepted.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["idempotency-key"] == body["job_id"] == delivered["job_id"]
    assert headers["x-transcribed-attempt"] == "3"
    expected = hmac.new(SECRET.rstrip(b"\n"), accepted.body, hashlib.sha256).hexdigest()
    assert headers["x-transcribed-signature"] == f"sha256={expected}"
    assert body["outcome"] == "done" and body["file"] == "talks/a.wav" and body["error"] is None
    assert body["source"] == {"relative": "talks/a.wav", "path": str(folders.done / "talks/a.wav")}
    formats = {r["format"]: r for r in body["results"]}
    assert set(formats) == {"json", "txt", "srt", "vtt"}
    assert formats["srt"] == {"format": "srt", "relative": "talks/a.srt",
                              "path": str(folders.outbox / "talks/a.srt")}
    assert body["language"] == "en" and body["audio_seconds"] == 1.0
    _untouched(folders, "talks/a.wav")
    assert _records(folders, "pending") == []
    assert [p.stem for p in _records(folders, "delivered")] == [body["job_id"]]


HANGS_FIRST = """
import json, os, pathlib, subprocess, sys, time
here = pathlib.Path(sys.argv[1])
body = json.load(sys.stdin)
if not (here / "hung").exists():
    (here / "hung").write_text(str(os.getpid()))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (here / "grandchild").write_text(str(child.pid))
    time.sleep(60)
env = {k: v for k, v in os.environ.items() if k.startswith("TRANSCRIBED_")}
(here / "ran.json").write_text(json.dumps({"body": body, "env": env}))
"""


def _running(pid_file: Path) -> bool:
    """Is the process whose pid the file holds still running (a zombie counts as ended)?"""
    stat = Path(f"/proc/{pid_file.read_text()}/stat")
    return stat.exists() and stat.read_text().rpartition(")")[2].split()[0] != "Z"


def test_a_slow_command_is_killed_past_the_timeout_and_retried(folders: Folders) -> None:
    """The first run hangs (and starts a child): both are killed after 1 s, hook.failed, and the
    retry gets the job's JSON on stdin and its TRANSCRIBED_* variables."""
    script = folders.root / "hook.py"
    script.write_text(HANGS_FIRST)
    _hook_config(folders, command=[sys.executable, "hook.py", str(folders.root)], timeout_seconds=1)
    with _daemon(folders) as daemon:
        _deliver(folders, "a.wav")
        failed = daemon.wait_for("hook.failed", timeout=30)
        assert "killed" in failed["error"] and failed["target"] == "command"
        assert not _running(folders.root / "hung")
        assert not _running(folders.root / "grandchild"), "the command's own children die with it"
        delivered = daemon.wait_for("hook.delivered", timeout=30)
    assert delivered["attempt"] == 2
    ran = json.loads((folders.root / "ran.json").read_text())
    assert ran["body"]["job_id"] == delivered["job_id"] and ran["body"]["outcome"] == "done"
    env = ran["env"]
    assert env["TRANSCRIBED_JOB_ID"] == delivered["job_id"]
    assert env["TRANSCRIBED_OUTCOME"] == "done"
    assert env["TRANSCRIBED_SOURCE"] == str(folders.done / "a.wav")
    assert env["TRANSCRIBED_RESULT_SRT"] == str(folders.outbox / "a.srt")
    assert env["TRANSCRIBED_ATTEMPT"] == "2"
    _untouched(folders, "a.wav")


def test_a_hanging_hook_neither_holds_up_the_next_files_nor_the_stop(folders: Folders) -> None:
    """While the first job's command hangs, the next files are transcribed; SIGTERM then ends the
    daemon at once (the command killed, its try not counted) and both deliveries wait on disk."""
    started = folders.root / "started"
    script = f"import os, pathlib, time; pathlib.Path({str(started)!r}).write_text(str(os.getpid())); time.sleep(120)"
    _hook_config(folders, command=[sys.executable, "-c", script], timeout_seconds=100)
    with _daemon(folders) as daemon:
        _deliver(folders, "a.wav")
        wait_until(lambda: started.exists() and started.read_text(), 30, "the first hook command to start")
        _deliver(folders, "b.wav")
        _deliver(folders, "c.wav")
        wait_until(lambda: daemon.count("job.done") == 3, 30, "the next two files, done meanwhile")
        assert daemon.count("hook.failed") == daemon.count("hook.delivered") == 0
        assert daemon.stop(timeout=15) == 0
    assert not _running(started), "the hanging command is killed on stop"
    assert len(_records(folders, "pending")) == 3
    for record in _records(folders, "pending"):
        assert json.loads(record.read_text())["targets"].get("command", {}).get("attempts", 0) == 0
    for name in ("a.wav", "b.wav", "c.wav"):
        _untouched(folders, name)


def test_a_command_that_exits_non_zero_is_retried_then_given_up(folders: Folders) -> None:
    """Exit 3 each time: hook.failed twice, hook.gave_up on the third; the record kept for an
    operator in state/hooks/gave_up; the transcript and the source are where they belong."""
    _hook_config(folders, command=[sys.executable, "-c", "import sys; print('no media server'); sys.exit(3)"],
                 max_attempts=3)
    with _daemon(folders) as daemon:
        _deliver(folders, "a.wav")
        gave_up = daemon.wait_for("hook.gave_up", timeout=30)
        wait_until(lambda: _records(folders, "gave_up") and not _records(folders, "pending"), 10,
                   "the record moved to state/hooks/gave_up")
        assert daemon.count("hook.failed") == 2
        assert daemon.count("hook.delivered") == 0
    assert gave_up["attempt"] == 3
    assert gave_up["error"] == "exited with status 3: no media server"
    (kept,) = _records(folders, "gave_up")
    record = json.loads(kept.read_text())
    assert record["targets"]["command"]["attempts"] == 3
    assert record["note"]["job_id"] == gave_up["job_id"]
    assert _records(folders, "pending") == []
    _untouched(folders, "a.wav")
    printed = status(folders)
    assert f"hooks: 1 given up after their last attempt, kept in {folders.state / 'hooks' / 'gave_up'}" \
        in printed.stdout, printed.stdout
    assert json.loads(status(folders, "--json").stdout)["hooks"]["gave_up"] == 1


def test_status_shows_a_pending_delivery_that_is_failing_and_why(folders: Folders) -> None:
    """Exit 3, the next try a minute away: `transcribed status` (and --json) tells the operator a
    delivery waits, since when, and the last error, while the daemon runs and after it stops."""
    _hook_config(folders, command=[sys.executable, "-c", "import sys; print('no media server'); sys.exit(3)"],
                 max_attempts=3, retry_delay_seconds=60)
    with _daemon(folders) as daemon:
        worker = daemon.wait_for("daemon.started")["worker"]
        _deliver(folders, "a.wav")
        daemon.wait_for("hook.failed", timeout=30)
        printed = status(folders)
        assert daemon.stop() == 0
    after = json.loads(status(folders, "--json").stdout)["hooks"]

    assert printed.returncode == 0, printed.stderr
    assert "hooks: 1 delivery pending, the oldest recorded " in printed.stdout, printed.stdout
    assert "1 failing, last error: exited with status 3: no media server" in printed.stdout
    assert after["pending"] == 1 and after["by_worker"] == {worker: 1}, after
    assert after["failing"] == 1 and after["gave_up"] == 0
    assert after["last_error"] == "exited with status 3: no media server"
    assert 0 <= time.time() - after["oldest_recorded_at"] < 60


def test_status_says_nothing_of_hooks_when_none_wait(folders: Folders) -> None:
    printed = status(folders)
    assert printed.returncode == 0 and "hooks:" not in printed.stdout, printed.stdout
    assert json.loads(status(folders, "--json").stdout)["hooks"]["pending"] == 0


@pytest.mark.parametrize("point", [
    "planned",  # the finish plan is written, the pending delivery not yet
    "hooked",   # the pending delivery is recorded, no file moved yet
])
def test_a_kill_between_the_jobs_end_and_its_delivery_delivers_once_after_a_restart(
        folders: Folders, receiver: tuple[Receiver, str], point: str) -> None:
    """SIGKILL at `point`; the restarted daemon finishes the job and delivers its hook once; a
    further restart repeats nothing (only the next job's hook arrives)."""
    server, url = receiver
    _hook_config(folders, url=url)
    first = _daemon(folders, failpoints=point).start()
    _deliver(folders, "a.wav")
    assert first.process is not None
    wait_until(lambda: first.process.poll() is not None, 30, "the daemon to die at its fail point")
    assert first.process.returncode == -signal.SIGKILL, first.stderr()[-2000:]
    assert server.requests == []
    assert len(_records(folders, "pending")) == (1 if point == "hooked" else 0)
    with _daemon(folders) as second:
        delivered = second.wait_for("hook.delivered", timeout=30)
        wait_until(lambda: _records(folders, "delivered") and not _records(folders, "pending"), 10,
                   "the delivery in the ledger")
        assert second.stop() == 0
    assert [r.json["job_id"] for r in server.requests] == [delivered["job_id"]]
    assert server.requests[0].json["source"]["path"] == str(folders.done / "a.wav")
    _untouched(folders, "a.wav")
    with _daemon(folders) as third:
        _deliver(folders, "b.wav")
        next_one = third.wait_for("hook.delivered", timeout=30)
        assert third.stop() == 0
    assert [r.json["file"] for r in server.requests] == ["a.wav", "b.wav"]
    assert next_one["job_id"] != delivered["job_id"]
    assert _records(folders, "pending") == []


def test_only_the_configured_outcomes_fire_and_a_route_overrides_them(
        folders: Folders, receiver: tuple[Receiver, str]) -> None:
    """hooks.events [failed]; `media` fires on done too, `drafts` on nothing; a sidecar's own
    hooks keys fail its job (bad_sidecar) and the command they name never runs."""
    server, url = receiver
    owned = folders.root / "owned"
    folders.write_config(
        hooks={"url": url, "events": ["failed"]},
        routes={"media": {"hooks_events": ["done", "failed"]}, "drafts": {"hooks_events": []}})
    (folders.inbox / "c.wav.yaml").write_text(f"hooks: {{command: [touch, {owned}]}}\n")
    with _daemon(folders) as daemon:
        for relpath, audio in (("a.wav", True), ("bad.wav", False), ("media/b.wav", True),
                               ("drafts/bad.wav", False), ("c.wav", True)):
            _deliver(folders, relpath, audio)
        wait_until(lambda: daemon.count("job.moved") == 5, 40, "the five jobs to finish")
        wait_until(lambda: len(server.accepted()) == 3 and not _records(folders, "pending"), 20,
                   "three deliveries")
    bodies = {r.json["file"]: r.json for r in server.accepted()}
    assert sorted(bodies) == ["bad.wav", "c.wav", "media/b.wav"]
    assert bodies["media/b.wav"]["outcome"] == "done"
    assert bodies["bad.wav"]["outcome"] == "failed"
    assert bodies["bad.wav"]["error"]["kind"] == "not_audio"
    assert bodies["bad.wav"]["error_report"]["path"] == str(folders.failed / "bad.wav.error.json")
    assert Path(bodies["bad.wav"]["error_report"]["path"]).is_file()
    assert bodies["c.wav"]["error"]["kind"] == "bad_sidecar"
    assert "hooks: unknown key" in bodies["c.wav"]["error"]["message"]
    assert not owned.exists()
    assert len(_records(folders, "delivered")) == 3
    assert (folders.done / "a.wav").is_file() and (folders.failed / "drafts" / "bad.wav").is_file()


@pytest.mark.parametrize("server_kind", ["jellyfin", "plex"])
def test_the_shipped_media_server_hooks_put_the_subtitle_beside_the_video_and_ask_for_a_refresh(
        folders: Folders, receiver: tuple[Receiver, str], server_kind: str) -> None:
    """deploy/hooks/{jellyfin-refresh,plex-scan}.sh, run by the daemon against a stand-in for the
    media server on 127.0.0.1: Keynote.en.srt lands beside done/shows/Keynote.wav (the outbox's
    copy is left), and the server gets the request its API documents."""
    missing = [tool for tool in ("curl", "jq") if shutil.which(tool) is None]
    if missing:
        if IN_CI:
            pytest.fail(f"the media-server hook examples need {', '.join(missing)}")
        pytest.skip(f"{', '.join(missing)} not installed")
    server, url = receiver
    base = url.rpartition("/hook")[0]
    token = folders.root / "server.token"
    token.write_text("s3cret-token\n")
    if server_kind == "jellyfin":
        command = ["env", f"JELLYFIN_URL={base}", f"JELLYFIN_TOKEN_FILE={token}",
                   str(REPO / "deploy/hooks/jellyfin-refresh.sh")]
    else:
        command = ["env", f"PLEX_URL={base}", "PLEX_SECTION=3", f"PLEX_TOKEN_FILE={token}",
                   str(REPO / "deploy/hooks/plex-scan.sh")]
    _hook_config(folders, command=command, events=["done"])
    with _daemon(folders) as daemon:
        _deliver(folders, "shows/Keynote.wav")
        daemon.wait_for("hook.delivered", timeout=30)
        assert daemon.stop() == 0
    subtitle = folders.done / "shows" / "Keynote.en.srt"
    assert subtitle.read_text() == (folders.outbox / "shows" / "Keynote.srt").read_text()
    _untouched(folders, "shows/Keynote.wav")
    (request,) = server.requests
    headers = {k.lower(): v for k, v in request.headers.items()}
    if server_kind == "jellyfin":
        assert (request.method, request.path) == ("POST", "/Library/Media/Updated")
        assert headers["authorization"] == 'MediaBrowser Token="s3cret-token"'
        assert request.json == {"Updates": [{"Path": str(subtitle), "UpdateType": "Created"}]}
    else:
        path, _, query = request.path.partition("?")
        assert (request.method, path) == ("GET", "/library/sections/3/refresh")
        assert urllib.parse.parse_qs(query) == {"path": [str(folders.done / "shows")]}
        assert headers["x-plex-token"] == "s3cret-token"
