"""A full, over-quota or read-only share is not the files' fault: the real daemon (fake engine)
on a real small filesystem (tests/support/smallfs.py) filled for real, files in flight while it
fills or dropped while it is full, a read-only remount, a btrfs quota, no inodes left, a SIGKILL
while full. Each ends with every file done, its results whole, none failed, once the condition
ends, and the daemon says so meanwhile: the log, STATUS= and `transcribed status`, /metrics and
/healthz (200, degraded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_tone_wav
from tests.support.net import free_port
from tests.support.smallfs import SmallFs, btrfs_quota, ext4_image, tmpfs

pytestmark = pytest.mark.usefixtures("corpus")

MiB = 1 << 20
SPEECH = "cmu_sphinx/an4_10001-90210-01803.wav"  # 8.3 s, 266 kB
FORMATS = (".json", ".txt", ".srt", ".vtt")
#: How long the first file of a batch takes in the fake engine: in flight while the disk fills.
IN_FLIGHT_SECONDS = 4.0


@dataclass
class Share:
    """A daemon's folders on a small filesystem, and the hooks' marks outside it."""

    folders: Folders
    fs: SmallFs
    marks: Path

    def stage(self, names: list[str]) -> None:
        """Copies of a recording beside the inbox, on the same filesystem (made while there is
        room; `drop` then moves them in by rename, which a full disk still takes)."""
        staging = self.folders.root / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(corpus_dir() / SPEECH, staging / name)

    def drop(self, names: list[str]) -> None:
        for name in names:
            os.rename(self.folders.root / "staging" / name, self.folders.inbox / name)

    def deliver(self, names: list[str]) -> None:
        self.stage(names)
        self.drop(names)

    def daemon(self, first: str | None = None) -> DaemonProcess:
        delays = {first: IN_FLIGHT_SECONDS} if first else {}
        return DaemonProcess(self.folders.config, engine="fake",
                             env={"TRANSCRIBED_FAKE": json.dumps({"delays": delays, "delay": 0.3}),
                                  "TRANSCRIBED_HOOK_MARKS": str(self.marks)})


def _share(fs: SmallFs, marks: Path, **config: dict[str, Any]) -> Share:
    """The five folders on `fs`, a floor of 1 MiB, a hook command that marks each delivery in
    `marks` (off the small filesystem), /metrics on a free port, and `config` on top."""
    marks.mkdir()
    script = ("import os, pathlib; p = pathlib.Path(os.environ['TRANSCRIBED_HOOK_MARKS'], "
              "os.environ['TRANSCRIBED_JOB_ID']); p.open('a').write('x')")
    folders = Folders(fs.root / "t")
    sections: dict[str, dict[str, Any]] = {
        "folders": {"min_free_bytes": MiB},
        "watch": {"settle_seconds": 0.3, "rescan_seconds": 0.5},
        "hooks": {"command": [sys.executable, "-c", script]},
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
    }
    for key, values in config.items():
        sections.setdefault(key, {}).update(values)
    folders.write_config(**sections)
    return Share(folders, fs, marks)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Share]:
    """A 32 MB tmpfs."""
    with tmpfs(32 * MiB, base=tmp_path) as fs:
        yield _share(fs, tmp_path / "marks")


def _names(count: int) -> list[str]:
    return [f"talk{n:02d}.wav" for n in range(count)]


def _jobs_in_work(folders: Folders) -> list[Path]:
    work = folders.state / "work"
    workers = [w for w in work.iterdir() if w.is_dir()] if work.exists() else []
    return [j for w in workers for j in w.iterdir() if j.is_dir()]


def _all_done(share: Share, names: list[str], timeout: float = 90) -> None:
    folders = share.folders
    wait_until(lambda: all((folders.done / n).exists() for n in names), timeout,
               f"{len(names)} files in done/ (done: {folders.files(folders.done)})")


def _assert_whole(share: Share, names: list[str], attempts: int = 1) -> None:
    """Every file done once with every result whole, nothing failed or left behind, each hook
    delivered once, each job run `attempts` times (a full disk counts none)."""
    folders = share.folders
    assert folders.files(folders.done) == sorted(names)
    assert folders.files(folders.failed) == []
    stems = [n.rsplit(".", 1)[0] for n in names]
    assert folders.files(folders.outbox) == sorted(s + f for s in stems for f in (*FORMATS, ".log.jsonl"))
    for stem in stems:
        result = json.loads((folders.outbox / f"{stem}.json").read_text())
        assert result["segments"][0]["text"].startswith(f" fake transcript of {stem}.wav")
        assert result["transcribed"]["attempts"] == attempts
        assert f"fake transcript of {stem}.wav" in (folders.outbox / f"{stem}.srt").read_text()
    assert (folders.done / names[0]).read_bytes() == (corpus_dir() / SPEECH).read_bytes()
    assert _jobs_in_work(folders) == []
    assert {p.read_text() for p in share.marks.iterdir()} == {"x"}  # each hook delivered once


def _hooks_delivered(share: Share, daemon: DaemonProcess, count: int) -> None:
    """Wait for a hook call per job (before the daemon stops: a stop leaves the rest pending)."""
    def delivered() -> bool:
        return len(list(share.marks.iterdir())) == count
    try:
        wait_until(delivered, 30, f"{count} hook calls")
    except AssertionError:
        hooks = [e for e in daemon.events() if e["event"].startswith(("hook", "job.move"))]
        raise AssertionError(f"hooks delivered: {sorted(p.name for p in share.marks.iterdir())}; "
                             f"events: {hooks}") from None


def _http(daemon: DaemonProcess, path: str) -> tuple[int, str]:
    address = daemon.wait_for("metrics.listening")["address"]
    try:
        with urllib.request.urlopen(f"http://{address}{path}", timeout=10) as answer:  # noqa: S310 - loopback
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def _gauge(daemon: DaemonProcess, name: str) -> float:
    _, text = _http(daemon, "/metrics")
    (line,) = [line for line in text.splitlines() if line.startswith(f"transcribed_{name} ")]
    return float(line.split()[1])


def _status(share: Share) -> str:
    command = [sys.executable, "-m", "transcribed", "status", "--config", str(share.folders.config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def _status_saying(share: Share, words: str) -> str | None:
    output = _status(share)
    return output if words in output else None


def _decodes(daemon: DaemonProcess) -> Counter[str]:
    return Counter(e["file"] for e in daemon.events() if e["event"] == "job.decoded")


def _kept(daemon: DaemonProcess) -> set[str]:
    """The files whose transcript was kept while they waited for storage."""
    return {e["file"] for e in daemon.events() if e["event"] == "job.waiting_for_storage" and e["kept"]}


def _fills_while_in_flight(share: Share, names: list[str], fill: Any) -> DaemonProcess:
    """Start the daemon, deliver `names`, bring the condition about (`fill()`) while the first is
    in the engine; return the daemon, once a job waits for storage."""
    daemon = share.daemon(first=names[0]).start()
    share.deliver(names)
    daemon.wait_for("job.decoded", file=names[0], timeout=30)
    fill()
    daemon.wait_for("job.waiting_for_storage", timeout=60)
    return daemon


# --- a full disk -------------------------------------------------------------------------------------

def test_good_files_in_flight_while_the_share_fills_wait_and_all_end_done_once_space_returns(
        small: Share) -> None:
    """The reported case: 8 recordings, the share filled while they are transcribed. None fails
    and none counts an attempt; the daemon says so (log once, /healthz 200 degraded, the gauge,
    `transcribed status`); space freed, all are done by themselves, each transcribed once."""
    names = _names(8)
    daemon = _fills_while_in_flight(small, names, small.fs.fill)
    try:
        full = daemon.wait_for("storage.full", timeout=30)
        assert full["folder"] and full["free_bytes"] < MiB and full["floor_bytes"] == MiB
        code, body = _http(daemon, "/healthz")
        health = json.loads(body)
        assert code == 200 and health["status"] == "degraded"
        assert health["reason"].startswith("waiting for storage: ") and health["storage"]["waiting"]
        assert _gauge(daemon, "storage_waiting") == 1
        assert _gauge(daemon, "storage_floor_bytes") == MiB
        status = wait_until(lambda: _status_saying(small, "waiting for storage"), 30,
                            "`transcribed status` to say it waits for storage")
        assert "degraded: waiting for storage:" in status and "UNHEALTHY" not in status
        daemon.wait_for("job.waiting_for_storage", kept=True, timeout=60)  # a transcript in memory
        assert small.folders.files(small.folders.failed) == []
        small.fs.free()
        _all_done(small, names)
        _hooks_delivered(small, daemon, len(names))
        assert _gauge(daemon, "storage_waiting") == 0
        assert json.loads(_http(daemon, "/healthz")[1])["status"] == "ok"
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    _assert_whole(small, names)
    assert daemon.count("storage.full") == 1 and daemon.count("storage.recovered") == 1
    assert daemon.count("job.failed") == daemon.count("job.retry_later") == 0
    events = [e["event"] for e in daemon.events()]
    during = Counter(events[events.index("storage.full"):events.index("storage.recovered")])
    assert set(during) <= {"storage.full", "job.waiting_for_storage", "job.move_refused",  # no line per
                           "status.write_failed", "packing.done", "job.progress"}, during  # file or second
    assert max(during.values()) <= len(names), during
    assert daemon.count("hook.gave_up") == daemon.count("job.claim_failed") == 0
    decodes = _decodes(daemon)
    assert _kept(daemon) and all(decodes[name] == 1 for name in _kept(daemon))  # not redone


def test_files_dropped_while_the_share_is_full_stay_in_the_inbox_and_are_done_once_space_returns(
        small: Share) -> None:
    """Nothing is claimed while full (no line per file and look); all done after the free."""
    names = _names(3)
    small.stage(names)
    with small.daemon() as daemon:
        small.fs.fill()
        daemon.wait_for("storage.full", timeout=30)
        small.drop(names)  # moved in from a staging folder on the share: a rename needs no space
        assert _gauge(daemon, "storage_waiting") == 1
        small.fs.free()
        _all_done(small, names)
        _hooks_delivered(small, daemon, len(names))
        assert daemon.stop() == 0
    _assert_whole(small, names)
    events = daemon.events()
    recovered = next(i for i, e in enumerate(events) if e["event"] == "storage.recovered")
    assert not [e for e in events[:recovered] if e["event"] in ("job.claimed", "job.claim_failed")]


def test_below_the_floor_no_file_is_claimed_and_the_jobs_in_flight_finish(small: Share) -> None:
    """The floor stops new work before a write fails: the job in flight finishes (its writes
    fit), a file dropped meanwhile waits in the inbox; above the floor again, it is taken."""
    small.folders.write_config(folders={"min_free_bytes": 4 * MiB},
                               watch={"settle_seconds": 0.3, "rescan_seconds": 0.5},
                               metrics={"listen": f"127.0.0.1:{free_port()}"})
    small.stage(["later.wav"])
    with small.daemon(first="first.wav") as daemon:
        small.deliver(["first.wav"])
        daemon.wait_for("job.decoded", file="first.wav", timeout=30)
        small.fs.fill(leave_bytes=2 * MiB)
        below = daemon.wait_for("storage.full", timeout=30)
        assert below["reason"] == "below_floor"
        small.drop(["later.wav"])
        daemon.wait_for("job.done", file="first.wav", timeout=30)
        assert (small.folders.inbox / "later.wav").exists()
        small.fs.free()
        _all_done(small, ["first.wav", "later.wav"])
        assert daemon.stop() == 0
    assert daemon.count("job.waiting_for_storage") == 0
    events = daemon.events()
    recovered = next(i for i, e in enumerate(events) if e["event"] == "storage.recovered")
    assert [e["file"] for e in events[recovered:] if e["event"] == "job.claimed"] == ["later.wav"]
    assert small.folders.files(small.folders.failed) == []


def test_a_sigkill_while_full_loses_nothing_once_space_returns_and_a_new_daemon_starts(
        small: Share) -> None:
    """Jobs waiting for storage with their transcript in memory, the daemon killed: a new one,
    started once there is space, finishes every file (run again, one attempt counted for the
    crash), none failed, each hook delivered, no job folder left."""
    names = _names(4)
    daemon = _fills_while_in_flight(small, names, small.fs.fill)
    try:
        daemon.wait_for("job.waiting_for_storage", kept=True, timeout=60)  # a transcript in memory
    finally:
        daemon.kill()
    small.fs.free()
    with small.daemon() as again:
        _all_done(small, names)
        _hooks_delivered(small, again, len(names))
        assert again.stop() == 0
    folders = small.folders
    assert folders.files(folders.done) == sorted(names) and folders.files(folders.failed) == []
    assert _jobs_in_work(folders) == []
    for name in names:
        result = json.loads((folders.outbox / f"{name[:-4]}.json").read_text())
        assert result["transcribed"]["attempts"] in (1, 2)  # 2: in flight when killed


# --- read-only -------------------------------------------------------------------------------------

def test_a_read_only_remount_with_a_job_in_flight_waits_and_everything_ends_done(small: Share) -> None:
    """Remounted read-only while a job runs (its log held open: stacked read-only over the mount,
    as a plain remount would be refused): it waits, says so, and goes on once writable."""
    names = _names(4)
    daemon = _fills_while_in_flight(small, names, lambda: small.fs.remount_readonly(overmount=True))
    try:
        read_only = daemon.wait_for("storage.read_only", timeout=30)
        assert read_only["reason"] in ("read_only", "write_refused")
        assert json.loads(_http(daemon, "/healthz")[1])["status"] == "degraded"
        small.fs.remount_readwrite()
        _all_done(small, names)
        _hooks_delivered(small, daemon, len(names))
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    _assert_whole(small, names)
    assert daemon.count("storage.recovered") == 1


def test_a_daemon_started_on_a_read_only_share_waits_and_takes_the_files_once_writable(
        small: Share) -> None:
    """No exit (which systemd or Kubernetes would answer with a restart loop): it starts, says
    it waits for storage, and does the files waiting in the inbox once remounted read-write."""
    names = _names(3)
    for folder in (small.folders.outbox, small.folders.done, small.folders.failed, small.folders.state):
        folder.mkdir()  # made by an earlier run, or the installer
    small.deliver(names)
    small.fs.remount_readonly()
    with small.daemon() as daemon:
        daemon.wait_for("storage.read_only", timeout=30)
        code, body = _http(daemon, "/healthz")
        assert code == 200 and json.loads(body)["status"] == "degraded"
        small.fs.remount_readwrite()
        _all_done(small, names)
        _hooks_delivered(small, daemon, len(names))
        assert daemon.stop() == 0
    _assert_whole(small, names)


# --- other filesystems, quotas, inodes ------------------------------------------------------------

def test_a_full_ext4_share_where_even_a_mkdir_fails(tmp_path: Path) -> None:
    with ext4_image(32 * MiB, base=tmp_path) as fs:
        share = _share(fs, tmp_path / "marks")
        names = _names(4)
        daemon = _fills_while_in_flight(share, names, fs.fill)
        try:
            fs.free()
            _all_done(share, names)
            _hooks_delivered(share, daemon, len(names))
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        _assert_whole(share, names)


def test_a_quota_reached_with_jobs_in_flight_waits_and_all_end_done_once_lifted(tmp_path: Path) -> None:
    """A btrfs qgroup limit: EDQUOT, which statvfs does not show (the free space looks ample):
    the refused write itself is what makes the daemon wait, and a probe what ends it."""
    with btrfs_quota(base=tmp_path) as fs:
        share = _share(fs, tmp_path / "marks")
        names = _names(4)
        daemon = _fills_while_in_flight(share, names, fs.limit_quota)
        try:
            over = daemon.wait_for("storage.quota_exceeded", timeout=30)
            assert over["reason"] == "write_refused" and over["free_bytes"] > MiB
            fs.lift_quota()
            _all_done(share, names)
            _hooks_delivered(share, daemon, len(names))
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        _assert_whole(share, names)


def test_no_inodes_left_with_jobs_in_flight(tmp_path: Path) -> None:
    with tmpfs(32 * MiB, inodes=2000, base=tmp_path) as fs:
        share = _share(fs, tmp_path / "marks")
        names = _names(4)
        daemon = _fills_while_in_flight(share, names, fs.exhaust_inodes)
        try:
            assert daemon.wait_for("storage.full", timeout=30)["reason"] in ("no_inodes", "write_refused")
            fs.free()
            _all_done(share, names)
            _hooks_delivered(share, daemon, len(names))
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        _assert_whole(share, names)


# --- a library --------------------------------------------------------------------------------------

def test_library_jobs_on_a_full_state_folder_wait_and_get_their_subtitles_once_space_returns(
        tmp_path: Path) -> None:
    """The state folder (job folders, claim markers, the ledger) on a small tmpfs that fills while
    library files are transcribed; the media elsewhere. No crash, nothing failed; once space
    returns each file gets its subtitle beside it and its ledger line, once."""
    library = tmp_path / "library"
    library.mkdir()
    media = [write_tone_wav(library / f"show{n}.wav", 2.0, frequency=300 + 100 * n) for n in range(3)]
    with tmpfs(32 * MiB, base=tmp_path) as fs:
        share = _share(fs, tmp_path / "marks")
        data = yaml.safe_load(share.folders.config.read_text())
        data["libraries"] = [{"path": str(library), "tag": "transcribed"}]
        share.folders.config.write_text(yaml.safe_dump(data))
        daemon = share.daemon(first=media[0].name).start()
        try:
            daemon.wait_for("job.decoded", timeout=30)
            fs.fill()
            daemon.wait_for("job.waiting_for_storage", timeout=60)
            fs.free()
            wait_until(lambda: all(list(library.glob(f"{m.stem}.*.srt")) for m in media), 90,
                       "a subtitle beside each library file")
            _hooks_delivered(share, daemon, len(media))
            assert daemon.stop() == 0
        finally:
            daemon.kill()
        state = share.folders.state / "library"
        ledger = [json.loads(line) for line in (state / "ledger.jsonl").read_text().splitlines() if line]
        assert sorted(r["path"] for r in ledger if r["outcome"] == "done") == sorted(map(str, media))
        assert list((state / "failed").iterdir()) == [] and list((state / "claims").iterdir()) == []
        assert daemon.count("daemon.consumer_crashed") == 0 and daemon.count("job.failed") == 0
        assert all(len(list(library.glob(f"{m.stem}.*.srt"))) == 1 for m in media)
        assert _jobs_in_work(share.folders) == []
