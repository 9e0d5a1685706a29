"""Retention with real processes: `done: delete` in a running daemon (results only, each source
removed once its hooks are delivered, each removal logged), and `transcribed retention` killed
with SIGKILL in the middle of a pass (a fail point after each file): nothing is left
half-removed that matters (no result without its record, in the folder or in the archive), the
journal is finished by the next pass, and `--dry-run` lists what would go without touching it.
Ages against a moving clock are tests/unit/test_retention.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, Folders
from tests.support.media import write_tone_wav

RECORD_SUFFIX = ".log.jsonl"


def _retention(folders: Folders, *args: str, failpoints: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRANSCRIBED_FAILPOINTS": failpoints} if failpoints else None
    return subprocess.run([sys.executable, "-m", "transcribed", "retention", "--config",
                           str(folders.config), *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env)


def _events(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _outbox_jobs(folders: Folders, count: int) -> None:
    """What `count` done jobs leave in the outbox: three results and the job's log each."""
    for n in range(count):
        for suffix in (".json", ".srt", ".txt", RECORD_SUFFIX):
            path = folders.outbox / "talks" / f"job{n}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{n}{suffix}\n")


def _no_result_without_its_record(folder: Path) -> None:
    """Every result left has its job's log beside it."""
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.endswith(RECORD_SUFFIX):
            stem = path.name.rsplit(".", 1)[0]
            assert (path.parent / f"{stem}{RECORD_SUFFIX}").exists(), f"{path} outlived its record"


def test_done_delete_keeps_the_results_only_once_the_hook_has_run(folders: Folders) -> None:
    seen = folders.root / "seen.json"
    script = ("import json, os, sys; json.dump({'source_there': os.path.exists(os.environ['TRANSCRIBED_SOURCE'])}, "
              f"open({str(seen)!r}, 'w'))")
    folders.write_config(retention={"done": "delete"},
                         hooks={"command": [sys.executable, "-c", script], "retry_delay_seconds": 0.2})
    with DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": "{}"}) as daemon:
        started = daemon.wait_for("retention.started")
        (folders.inbox / "talks").mkdir(parents=True)
        write_tone_wav(folders.root / "a.wav", 1.0)
        os.rename(folders.root / "a.wav", folders.inbox / "talks" / "a.wav")
        removed = daemon.wait_for("retention.removed", timeout=60)
        delivered = daemon.wait_for("hook.delivered")
        assert daemon.stop() == 0
    assert started["folders"] == {"done": "delete"}
    assert removed["folder"] == "done" and removed["item"] == "talks/a.wav"
    assert removed["reason"] == "its job is done (retention.done: delete)"
    assert json.loads(seen.read_text()) == {"source_there": True}, "the hook ran while the source was there"
    assert daemon.events().index(delivered) < daemon.events().index(removed)
    assert folders.files(folders.done) == []
    assert folders.files(folders.outbox) == ["talks/a.json", "talks/a.log.jsonl", "talks/a.srt",
                                             "talks/a.txt", "talks/a.vtt"]


def test_dry_run_lists_what_would_go_and_touches_nothing(folders: Folders) -> None:
    folders.write_config(retention={"outbox": {"max_size": 40}})
    _outbox_jobs(folders, 2)  # 31 bytes each
    before = folders.files(folders.outbox)
    listed = _retention(folders, "--dry-run")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "outbox/talks/job0.* (and 3 more files): 31 B, the oldest while outbox holds more than 40 "
        "(retention.outbox.max_size): removed"]
    as_json = json.loads(_retention(folders, "--dry-run", "--json").stdout)
    assert [item["name"] for item in as_json["outbox"]] == ["talks/job0.*"]
    assert folders.files(folders.outbox) == before


@pytest.mark.parametrize("kill_after", [1, 2, 3, 5])
def test_a_kill_in_the_middle_of_a_removal_leaves_no_result_without_its_record(
        folders: Folders, kill_after: int) -> None:
    """SIGKILL after the Nth file removed: the records go last, so each result left still has
    its log; the next pass finishes the journal (retention.resumed) and removes the rest once."""
    folders.write_config(retention={"outbox": {"max_size": 1}})
    _outbox_jobs(folders, 3)
    killed = _retention(folders, failpoints=f"retention_file:{kill_after}")
    assert killed.returncode == -signal.SIGKILL
    assert (folders.state / "retention" / "journal.json").exists()
    _no_result_without_its_record(folders.outbox)
    again = _retention(folders)
    assert again.returncode == 0, again.stderr
    events = _events(again.stdout)
    assert [e["event"] for e in events][0] == "retention.resumed"
    assert folders.files(folders.outbox) == []
    assert not (folders.state / "retention" / "journal.json").exists()
    removed = [e for e in _events(killed.stdout) + events if e["event"] == "retention.removed"]
    assert sorted({e["item"] for e in removed}) == ["talks/job0.*", "talks/job1.*", "talks/job2.*"]


@pytest.mark.parametrize("kill_after", [1, 2, 4])
def test_a_kill_in_the_middle_of_an_archive_leaves_each_file_beside_its_record(
        folders: Folders, kill_after: int) -> None:
    """The record is copied to the archive first and removed from the folder last: killed after
    any step, every result (in the outbox and in the archive) is beside its log; the next pass
    finishes, and each file is in the archive once."""
    folders.write_config(retention={"outbox": {"max_size": 1, "archive": "archive"}})
    _outbox_jobs(folders, 2)
    expected = folders.files(folders.outbox)
    killed = _retention(folders, failpoints=f"retention_file:{kill_after}")
    assert killed.returncode == -signal.SIGKILL
    _no_result_without_its_record(folders.outbox)
    _no_result_without_its_record(folders.root / "archive")
    again = _retention(folders)
    assert again.returncode == 0, again.stderr
    assert folders.files(folders.outbox) == []
    assert folders.files(folders.root / "archive") == expected
    for name in expected:
        n, suffix = name.split("job", 1)[1].split(".", 1)
        assert (folders.root / "archive" / name).read_text() == f"{n}.{suffix}\n"
