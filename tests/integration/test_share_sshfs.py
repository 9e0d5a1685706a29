"""Two machines on one real network share: each file done exactly once, through crashes and outages.

The share is a folder served by sshd on 127.0.0.1 and mounted twice with sshfs, a real network
filesystem (no inotify for writes from elsewhere, renames and links over SFTP, attribute
caches). Each "host" is a daemon in its own UTS namespace with its own host name on its own
mount, so it can take over the other's claims only through the lease, as a second machine
would. Files arrive on the server side, as another machine's writes do; what is counted is
what the server holds at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, status_records, wait_until
from tests.support.share import SshfsMount, SshServer, host_daemon, missing_tools, run_as_host
from transcribed.errors import READ_FAULT_ERRNOS, ReadFault
from transcribed.transcription.audio import decode

SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s
RESULTS = (".json", ".log.jsonl", ".srt", ".txt", ".vtt")
FOLDERS = ("inbox", "outbox", "done", "failed", "state")
#: Short enough to keep each test to seconds, long enough for 4 renewals over sshfs per lease.
LEASE_SECONDS = 2.0

pytestmark = pytest.mark.usefixtures("corpus")


@dataclass
class Share:
    """The server's folder, the machines that mount it, and the daemons they run."""

    root: Path
    server: SshServer
    mounts: dict[str, SshfsMount] = field(default_factory=dict)
    daemons: list[DaemonProcess] = field(default_factory=list)

    @property
    def folder(self) -> Path:
        """The share as the server holds it."""
        return self.root / "server"

    def mount(self, host: str) -> SshfsMount:
        if host not in self.mounts:
            self.mounts[host] = SshfsMount(self.server, self.folder, self.root / f"mnt-{host}").mount()
        return self.mounts[host]

    def daemon(self, host: str, **fake: object) -> DaemonProcess:
        """Start the daemon of `host` on its own mount (the config file stays on its local disk)."""
        daemon = host_daemon(self.config(host), host, env={"TRANSCRIBED_FAKE": json.dumps(fake)})
        self.daemons.append(daemon)
        return daemon.start(ready_timeout=60)

    def config(self, host: str) -> Path:
        """The config file of `host`: its folders on its own mount, fast test timings."""
        mountpoint = self.mount(host).mountpoint
        return Folders(self.root / f"local-{host}").write_config(
            folders={name: str(mountpoint / name) for name in FOLDERS},
            watch={"settle_seconds": 0.5, "rescan_seconds": 1, "poll_interval_seconds": 0.5},
            daemon={"lease_seconds": LEASE_SECONDS, "shutdown_grace_seconds": 10},
            # Kills and outages are not the file's fault: no file may become poison here.
            jobs={"retry_delay_seconds": 0.2, "max_attempts": 20},
            # One job in flight per host: the kills and outages below aim at it.
            packing={"enabled": False})

    def deliver(self, names: list[str]) -> None:
        """Write files on the server side, as a careful copier on another machine does: under a
        temporary name, then renamed into place."""
        inbox = self.folder / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy(corpus_dir() / SHORT, inbox / f"{name}.part")
            os.rename(inbox / f"{name}.part", inbox / name)

    def files(self, name: str) -> list[str]:
        return Folders(self.folder).files(self.folder / name)

    def job_folders(self) -> list[Path]:
        """Every job folder in any worker's folder on the server."""
        work = self.folder / "state" / "work"
        return [job for worker in work.iterdir() if worker.is_dir()
                for job in worker.iterdir() if job.is_dir()] if work.exists() else []

    def jobs_in_work(self) -> list[Path]:
        """The job folders that still hold a file: claims not finished."""
        return [job for job in self.job_folders() if any(p.is_file() for p in job.rglob("*"))]

    def wait_all_done(self, names: list[str], timeout: float) -> None:
        """Wait until every file is in done/ and no job is left in a work folder; on a timeout,
        fail with what the server holds and what the daemons said last."""
        try:
            wait_until(lambda: len(self.files("done")) >= len(names) and not self.jobs_in_work(),
                       timeout, f"{len(names)} files done on the server")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.describe()}") from None

    def describe(self) -> str:
        """The server's folders and each daemon's last log lines, for a failure message."""
        held = {name: self.files(name) for name in FOLDERS}
        tails = [f"--- daemon {n} (exit {d.process.poll() if d.process else None}):\n"
                 + "".join(d.lines[-15:]) + d.stderr()[-1500:] for n, d in enumerate(self.daemons)]
        return json.dumps(held, indent=1) + "\n" + "\n".join(tails)

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.kill()
        for mount in self.mounts.values():
            mount.release()
        self.server.stop()


@pytest.fixture
def share(tmp_path: Path) -> Iterator[Share]:
    """sshd on 127.0.0.1 serving an empty share folder; mounts and daemons made on demand."""
    missing = missing_tools()
    if missing:
        reason = "a real network share needs: " + ", ".join(missing)
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    result = Share(tmp_path, SshServer(tmp_path / "sshd"))
    result.folder.mkdir()
    result.server.start()
    try:
        yield result
    finally:
        result.close()


def _names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:02d}.wav" for n in range(count)]


def _started(daemons: list[DaemonProcess]) -> Counter[str]:
    return Counter(e["file"] for d in daemons for e in d.events() if e.get("event") == "job.started")


def _job_in_the_engine(daemon: DaemonProcess) -> dict[str, object] | None:
    """The job this daemon is transcribing now: decoded, the engine not done (None otherwise).
    A kill then surely leaves a claim; one just after job.done could fall between the removal
    of the finished job's folder and its job.moved line, leaving nothing to adopt."""
    events = daemon.events()
    done = {e.get("job_id") for e in events if e.get("event") == "job.done"}
    running = [e for e in events if e.get("event") == "job.decoded" and e.get("job_id") not in done]
    return running[-1] if running else None


def _worker(daemon: DaemonProcess) -> str:
    return str(daemon.wait_for("daemon.started")["worker"])


def assert_each_done_exactly_once(share: Share, names: list[str]) -> None:
    """On the server: each source once in done/, its five results once in the outbox, nothing
    failed, nothing left in the inbox or in any worker's folder."""
    assert share.files("done") == sorted(names)
    stems = [Path(name).stem for name in names]
    assert share.files("outbox") == sorted(s + r for s in stems for r in RESULTS)
    for stem in stems:
        text = json.loads((share.folder / "outbox" / f"{stem}.json").read_text())["segments"][0]["text"]
        assert text.startswith(f" fake transcript of {stem}")
    assert share.files("failed") == []
    assert share.files("inbox") == []
    assert share.jobs_in_work() == []


def test_two_hosts_on_one_share_do_each_file_exactly_once(share: Share) -> None:
    """Two machines poll one sshfs share; 16 files written on the server: each done once, by
    one of them, and both took part."""
    names = _names("clip", 16)
    hosts = {host: share.daemon(host, delay=0.2) for host in ("hostA", "hostB")}
    for daemon in hosts.values():
        watcher = daemon.wait_for("watcher.started")
        assert watcher["polling"] is True and "fuse.sshfs" in watcher["reason"]
    share.deliver(names)
    share.wait_all_done(names, 60)
    for daemon in hosts.values():
        assert daemon.stop() == 0
    assert_each_done_exactly_once(share, names)
    assert _started(list(hosts.values())) == Counter({name: 1 for name in names})
    by_host = Counter(json.loads((share.folder / "outbox" / f"{Path(n).stem}.json").read_text())
                      ["transcribed"]["worker"].split(".")[0] for n in names)
    assert set(by_host) == {"hostA", "hostB"}, f"one host took every file: {by_host}"


def test_a_pause_from_a_third_host_holds_both_hosts_until_it_resumes_them(share: Share) -> None:
    """`transcribed pause` run on a third machine that mounts the share: both hosts' daemons say
    paused (asked by that machine), count the files that arrive on the server and claim none;
    the command names both; a resume from that machine lets them do every file once."""
    names = _names("held", 4)
    hosts = {host: share.daemon(host, delay=0.2) for host in ("hostA", "hostB")}
    for daemon in hosts.values():
        daemon.wait_for("watcher.started")
    config = str(share.config("hostC"))
    paused = run_as_host("hostC", "pause", "--config", config)
    assert paused.returncode == 0, paused.stderr
    asked_by = {host: d.wait_for("daemon.paused")["asked_by"] for host, d in hosts.items()}
    share.deliver(names)
    wait_until(lambda: _paused_and_counting(share) == [len(names)] * 2, 60,
               "both hosts' status files to say paused and count the files")
    claimed_while_paused = sum(d.count("job.claimed") for d in hosts.values())
    resumed = run_as_host("hostC", "resume", "--config", config)
    assert resumed.returncode == 0, resumed.stderr
    share.wait_all_done(names, 60)
    for daemon in hosts.values():
        assert daemon.stop() == 0
    assert paused.stdout.startswith("paused 2 daemons on"), paused.stdout
    assert resumed.stdout.startswith("resumed 2 daemons on"), resumed.stdout
    assert all(who.endswith("@hostC") for who in asked_by.values()), asked_by
    assert claimed_while_paused == 0
    assert_each_done_exactly_once(share, names)


def _paused_and_counting(share: Share) -> list[int]:
    """Per daemon whose status file on the server says paused: the files it counts as waiting."""
    records = status_records(share.folder / "state")
    return [int(r.get("queue_length") or 0) for r in records if r.get("paused")]


def test_a_killed_hosts_claims_are_taken_over_by_the_other_host_after_the_lease(share: Share) -> None:
    """SIGKILL each host's daemon in turn mid-job; the other host adopts its claim once the lease
    runs out (not before), the killed one restarts; every file ends done once, none failed."""
    hosts = {host: share.daemon(host, delay=1.0) for host in ("hostA", "hostB")}
    names: list[str] = []
    for round_, (victim, survivor) in enumerate([("hostA", "hostB"), ("hostB", "hostA"), ("hostA", "hostB")]):
        batch = _names(f"r{round_}-", 4)
        names += batch
        share.deliver(batch)
        job = wait_until(lambda: _job_in_the_engine(hosts[victim]), 30, f"{victim} to be running a job")
        worker = _worker(hosts[victim])
        hosts[victim].kill()
        killed_at = time.monotonic()
        try:
            adopted = hosts[survivor].wait_for("job.adopted", timeout=30, previous_worker=worker)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{share.describe()}") from None
        waited = time.monotonic() - killed_at
        assert adopted["file"] == job["file"]
        # Renewed every lease/4, so the last renewal was at most that long before the kill.
        assert waited >= 0.75 * LEASE_SECONDS, f"adopted after {waited:.2f} s: not through the lease"
        hosts[victim] = share.daemon(victim, delay=1.0)
    share.wait_all_done(names, 90)
    for daemon in hosts.values():
        assert daemon.stop() == 0
    assert_each_done_exactly_once(share, names)
    restarts = {json.loads((share.folder / "outbox" / f"{Path(n).stem}.json").read_text())
                ["transcribed"]["attempts"] for n in names}
    assert max(restarts) >= 2  # the adopted files were run again, and say so


def test_a_finished_job_leaves_no_folder_behind_on_the_share(share: Share) -> None:
    """After two files and a clean stop, no job folder is left in the state folder."""
    names = _names("tidy", 2)
    daemon = share.daemon("hostA")
    share.deliver(names)
    share.wait_all_done(names, 30)
    assert daemon.stop() == 0
    assert share.job_folders() == []


# --- a share that goes away mid-job ---------------------------------------------------------------
# Two ways: the mount disappears under the daemon (`fusermount -u -z`: the mount point is then
# an empty local folder, so every path on the share answers ENOENT), or the server stops (the
# mount stays, every call on it fails with EIO until sshfs reconnects). One host, one job in the
# engine (decoded, the fake engine busy for a while) when the share goes.

OUTAGE_FILES = _names("memo", 3)
#: How long the share stays away: several rescans and lease renewals of the daemon's.
OUTAGE_SECONDS = 4.0
#: Errors that say the share, not the file, is the trouble (EIO, ENOTCONN, ENOENT on our folders).
SHARE_ERRORS = ("Input/output error", "Transport endpoint is not connected", "No such file or directory")


def _reports_share_trouble(daemon: DaemonProcess) -> list[dict[str, object]]:
    """The warnings and errors the daemon logged that name a share error."""
    return [e for e in daemon.events() if e.get("level") in ("warning", "error", "critical")
            and any(text in json.dumps(e) for text in SHARE_ERRORS)]


def _busy_daemon_when_the_share_goes(share: Share) -> DaemonProcess:
    """hostA with a job decoded and in the engine (1.5 s per file), two more files waiting."""
    daemon = share.daemon("hostA", delay=1.5)
    share.deliver(OUTAGE_FILES)
    daemon.wait_for("job.decoded", timeout=30)
    return daemon


def _unmount_until_the_job_notices(share: Share, daemon: DaemonProcess) -> None:
    """Detach hostA's mount lazily; remount at the same path once the daemon has said the inbox
    is gone and its job has run into the missing share."""
    mount = share.mounts["hostA"]
    mount.unmount(lazy=True)
    back_at = time.monotonic() + OUTAGE_SECONDS
    daemon.wait_for("watcher.inbox_gone", timeout=15)
    wait_until(lambda: time.monotonic() >= back_at and any(
        e.get("event") in ("job.folder_unreachable", "job.retry_later", "job.move_refused", "job.failed")
        for e in daemon.events()),
        15, "the job to run into the missing share")
    mount.mount()


def _stop_the_server_until_the_daemon_notices(share: Share, daemon: DaemonProcess) -> None:
    """Kill sshd and its connections; start it again on the same port with the same keys once
    the daemon has logged the I/O errors (sshfs reconnects by itself)."""
    share.server.stop()
    back_at = time.monotonic() + OUTAGE_SECONDS
    wait_until(lambda: time.monotonic() >= back_at and _reports_share_trouble(daemon), 15,
               "the daemon to report the share's I/O errors")
    share.server.start()


def _nothing_beneath_the_mount_point(share: Share) -> list[str]:
    """Audio or results written onto the local disk under hostA's mount point (hidden by the
    remount, so lost to everyone): must be none."""
    share.mounts["hostA"].unmount()
    local = share.mounts["hostA"].mountpoint
    return [str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()
            and (p.suffix == ".wav" or p.relative_to(local).parts[0] in ("outbox", "done", "failed"))]


def test_a_file_read_while_the_server_is_away_is_not_the_files_fault(share: Share) -> None:
    """A file on the mount read while sshd is down: the read fails in the storage (EIO, ENOTCONN),
    which is a ReadFault (the job is tried again) and not BadInput (failed at once). A clean-clone
    CI run once read a file just as the server came back and failed it as unreadable. Once the
    server is back the same file decodes."""
    share.deliver(["memo.wav"])
    path = share.mount("hostA").mountpoint / "inbox" / "memo.wav"
    wait_until(path.exists, 10, "the file on the mount")
    share.server.stop()
    with pytest.raises(ReadFault) as raised:
        decode(path)
    assert raised.value.errno in READ_FAULT_ERRNOS
    share.server.start()
    wait_until(lambda: _decodes(path), 30, "the file to decode once the server is back")


def _decodes(path: Path) -> bool:
    try:
        return decode(path).seconds > 1.0
    except ReadFault:
        return False


def test_a_mount_that_disappears_mid_job_loses_nothing(share: Share) -> None:
    """The mount vanishes under a running job and comes back at the same path: the daemon says
    the inbox is gone and watches it again when it is back; no file is lost, none failed, none
    done twice (a restart, as after any trouble, finishes what was in flight)."""
    daemon = _busy_daemon_when_the_share_goes(share)
    _unmount_until_the_job_notices(share, daemon)
    daemon.wait_for("watcher.inbox_back", timeout=15)
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.stop() == 0
    restarted = share.daemon("hostA")
    share.wait_all_done(OUTAGE_FILES, 30)
    assert restarted.stop() == 0
    assert_each_done_exactly_once(share, OUTAGE_FILES)
    assert _nothing_beneath_the_mount_point(share) == []


def test_after_the_mount_comes_back_the_interrupted_job_finishes_without_a_restart(share: Share) -> None:
    """Same outage: the running daemon itself finishes every file once the share is back, and
    never calls a healthy file bad."""
    daemon = _busy_daemon_when_the_share_goes(share)
    _unmount_until_the_job_notices(share, daemon)
    share.wait_all_done(OUTAGE_FILES, 12)
    assert daemon.count("job.failed") == 0
    assert daemon.stop() == 0
    assert_each_done_exactly_once(share, OUTAGE_FILES)


def test_a_share_server_that_stops_mid_job_loses_nothing(share: Share) -> None:
    """sshd killed under a running job, then started again: the daemon reports the I/O errors;
    once the server is back, every file is done once and none failed (the daemon restarted if it
    exited, as its service manager would)."""
    daemon = _busy_daemon_when_the_share_goes(share)
    _stop_the_server_until_the_daemon_notices(share, daemon)
    assert daemon.process is not None
    if daemon.process.poll() is None:
        daemon.stop()
    restarted = share.daemon("hostA")
    share.wait_all_done(OUTAGE_FILES, 30)
    assert restarted.stop() == 0
    assert_each_done_exactly_once(share, OUTAGE_FILES)


def test_a_daemon_rides_out_a_share_server_outage_without_exiting(share: Share) -> None:
    """Same outage: the daemon stays up, and once the server is back finishes every file."""
    daemon = _busy_daemon_when_the_share_goes(share)
    _stop_the_server_until_the_daemon_notices(share, daemon)
    share.wait_all_done(OUTAGE_FILES, 12)
    assert daemon.process is not None and daemon.process.poll() is None
    assert daemon.count("job.failed") == 0
    assert daemon.stop() == 0
    assert_each_done_exactly_once(share, OUTAGE_FILES)


def test_a_daemon_started_while_the_share_server_is_down_is_not_told_its_config_is_wrong(
        share: Share) -> None:
    """The share's server is down when the daemon starts: whatever it does (wait, or exit for a
    restart), it must not exit with the configuration error's code, which is never retried."""
    config = share.config("hostA")
    share.server.stop()
    daemon = host_daemon(config, "hostA", env={})
    share.daemons.append(daemon)
    with contextlib.suppress(AssertionError):  # it may rightly wait for the share instead
        daemon.start(ready_timeout=8)
    assert daemon.process is not None
    assert daemon.process.poll() in (None, 0, 1), daemon.stderr()[-500:]
