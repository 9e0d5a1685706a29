"""Nothing sits in the inbox unexplained: a file the daemon will never take (an extension not in
`watch.extensions`, no extension at all) is logged once as `inbox.ignored` with why, counted in
`transcribed status` and /metrics, and never claimed nor retried; hidden and temporary names and a
sidecar waiting for its audio are not ignored; renamed to a watched name, the file is taken.
A real daemon (fake engine) with a real observer, `transcribed status` in its own process."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_tone_wav
from tests.support.net import free_port

#: Never taken: an unknown extension, none, a document whose name looks like a sidecar's.
IGNORED = ("clip.xyz", "README", "notes.json")
#: Waiting, not ignored: hidden, a copy in progress, a sidecar whose audio is still to come.
WAITING = (".hidden.xyz", "talk.wav.part", "later.wav.yaml")


def _status(folders: Folders) -> tuple[dict, str]:
    """`transcribed status --json` and its text, each in a child process."""
    def run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "transcribed", "status", "--config", str(folders.config),
                               *args], capture_output=True, text=True, check=False, timeout=60).stdout
    return json.loads(run("--json")), run()


def _status_counting(folders: Folders, ignored: int) -> str | None:
    """The text of `transcribed status` once its JSON counts `ignored` files, else None."""
    as_json, text = _status(folders)
    workers = as_json["workers"]
    return text if workers and workers[0].get("inbox_ignored") == ignored else None


def _gauge(base: str) -> float | None:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:  # noqa: S310 - http on loopback
        text = reply.read().decode()
    return next((sample.value for family in text_string_to_metric_families(text)
                 for sample in family.samples if sample.name == "transcribed_inbox_ignored"), None)


def _drop_tone(folders: Folders, name: str) -> None:
    write_tone_wav(folders.root / name, 1.0)
    shutil.move(folders.root / name, folders.inbox / name)


def test_a_file_never_taken_is_logged_once_with_why_and_counted(folders: Folders) -> None:
    port = free_port()
    folders.write_config(metrics={"listen": f"127.0.0.1:{port}"})
    base = f"http://127.0.0.1:{port}"
    for name in (*IGNORED, *WAITING):
        (folders.inbox / name).write_bytes(b"not audio")
    with DaemonProcess(folders.config, engine="fake") as daemon:
        logged = {name: daemon.wait_for("inbox.ignored", file=name)["reason"] for name in IGNORED}
        assert logged["clip.xyz"].startswith("its extension .xyz is not in watch.extensions")
        assert logged["README"].startswith("it has no extension")
        # Later scans (one finds each tone dropped after the log lines) log nothing again.
        for name in ("a.wav", "b.wav"):
            _drop_tone(folders, name)
            wait_until(lambda n=name: (folders.done / n).exists(), 60, f"{name} in done/")
        wait_until(lambda: _gauge(base) == 3, 30, "transcribed_inbox_ignored 3")
        text = wait_until(lambda: _status_counting(folders, ignored=3), 60, "transcribed status: 3 ignored")
        assert "0 waiting, 3 ignored" in text
        assert "3 files in the inbox never taken (inbox.ignored in the log says why)" in text

        (folders.inbox / "clip.xyz").rename(folders.inbox / "clip.wav")  # not audio: fails as such
        wait_until(lambda: (folders.failed / "clip.wav.error.json").exists(), 60, "clip.wav in failed/")
        wait_until(lambda: _gauge(base) == 2, 30, "transcribed_inbox_ignored 2")

        ignored = [e["file"] for e in daemon.events() if e.get("event") == "inbox.ignored"]
        assert sorted(ignored) == sorted(IGNORED)
        assert {n for n in WAITING if (folders.inbox / n).exists()} == set(WAITING)
        assert daemon.count("job.claimed") == 3  # a.wav, b.wav, clip.wav: nothing ignored was claimed
