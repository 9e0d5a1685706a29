"""kill -9 at any moment: after a restart every file ends exactly once in done/ or failed/.

Real daemons (child processes, fake engine) on real folders. Exact crash points come from the
daemon's own fail points ($TRANSCRIBED_FAILPOINTS: the Nth time the process passes a named point
it SIGKILLs itself); random ones from SIGKILL sent at random times.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until

SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s
RESULTS = (".json", ".log.jsonl", ".srt", ".txt", ".vtt")

pytestmark = pytest.mark.usefixtures("corpus")


def _daemon(folders: Folders, failpoints: str = "", **fake: object) -> DaemonProcess:
    env = {"TRANSCRIBED_FAKE": json.dumps(fake)}
    if failpoints:
        env["TRANSCRIBED_FAILPOINTS"] = failpoints
    return DaemonProcess(folders.config, engine="fake", env=env)


def _deliver(folders: Folders, name: str, source: str = SHORT) -> None:
    """Copy beside the inbox, then rename in: the file appears complete, as a careful copier does."""
    staging = folders.root / "staging"
    staging.mkdir(exist_ok=True)
    shutil.copy(corpus_dir() / source, staging / name)
    os.rename(staging / name, folders.inbox / name)


def _killed(daemon: DaemonProcess, timeout: float = 30) -> None:
    assert daemon.process is not None
    wait_until(lambda: daemon.process.poll() is not None, timeout, "the daemon to die")
    assert daemon.process.returncode == -signal.SIGKILL, daemon.stderr()[-2000:]


def _jobs_in_work(folders: Folders) -> list[Path]:
    """The job folders under every worker's folder; a worker folder that goes while it is listed
    (the restarted daemon adopts a gone worker's jobs, then removes its folder) holds none."""
    work = folders.state / "work"
    jobs: list[Path] = []
    for worker in work.iterdir() if work.exists() else []:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            jobs += [job for job in worker.iterdir() if job.is_dir()]
    return jobs


def assert_each_done_exactly_once(folders: Folders, names: list[str]) -> None:
    """Each name once in done/, its five results complete in the outbox, nothing anywhere else."""
    assert folders.files(folders.done) == sorted(names)
    stems = [Path(name).stem for name in names]
    assert folders.files(folders.outbox) == sorted(s + r for s in stems for r in RESULTS)
    for stem in stems:
        result = json.loads((folders.outbox / f"{stem}.json").read_text())
        assert result["segments"][0]["text"].startswith(f" fake transcript of {stem}")
        assert (folders.outbox / f"{stem}.txt").read_text().strip()
    assert folders.files(folders.failed) == []
    assert folders.files(folders.inbox) == []
    assert _jobs_in_work(folders) == []


@pytest.mark.parametrize("point", [
    "claim",      # right after the rename out of the inbox
    "planned",    # the plan of moves is written, nothing moved yet
    "link:1",     # the first result linked into the outbox, its staged name not yet removed
    "move:3",     # three results in the outbox, two still staged
    "link:6",     # every result in the outbox; the source linked into done/, not yet unlinked
    "move:6",     # everything moved; the job folder not yet removed
])
def test_a_kill_at_each_step_of_finishing_a_job_loses_nothing_and_duplicates_nothing(
        folders: Folders, point: str) -> None:
    """Whatever step a SIGKILL interrupts, the restarted daemon ends with the file done once."""
    daemon = _daemon(folders, failpoints=point).start()
    try:
        _deliver(folders, "memo.wav")
        _killed(daemon)
    finally:
        daemon.kill()
    assert folders.files(folders.inbox) == []  # it had been claimed
    with _daemon(folders) as restarted:
        wait_until(lambda: folders.files(folders.done) and not _jobs_in_work(folders), 30,
                   "the interrupted job to be finished")
        assert restarted.stop() == 0
    assert_each_done_exactly_once(folders, ["memo.wav"])


def test_a_kill_while_transcribing_runs_the_file_again_and_counts_the_attempt(folders: Folders) -> None:
    """The attempt is on disk before the run; after the restart the file is transcribed again, once."""
    with _daemon(folders, delay=30) as daemon:
        _deliver(folders, "memo.wav")
        daemon.wait_for("job.started", timeout=30)
        (job,) = _jobs_in_work(folders)
        assert json.loads((job / "job.json").read_text())["attempts"] == 1
        daemon.kill()
    with _daemon(folders) as restarted:
        restarted.wait_for("job.adopted", timeout=30, attempts=1)
        restarted.wait_for("job.moved", timeout=30)
        assert restarted.stop() == 0
    assert_each_done_exactly_once(folders, ["memo.wav"])
    metadata = json.loads((folders.outbox / "memo.json").read_text())["transcribed"]
    assert metadata["attempts"] == 2


def test_random_kills_during_a_stream_of_files_lose_nothing_and_duplicate_nothing(folders: Folders) -> None:
    """SIGKILL at random moments while 12 files flow through: each still ends in done/ once."""
    seed = int(os.environ.get("TRANSCRIBED_TEST_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    # Outside kills are not the file's fault; with the default 3 attempts an unlucky file would
    # (rightly) be failed as poison, which is another test's subject.
    folders.write_config(jobs={"retry_delay_seconds": 0.2, "max_attempts": 100})
    names = [f"clip{n:02d}.wav" for n in range(12)]
    for name in names:
        _deliver(folders, name)
    kills = 0
    while len(folders.files(folders.done)) < len(names) - 2 and kills < 8:
        daemon = _daemon(folders, delay=0.1).start()
        try:
            time.sleep(rng.uniform(0.05, 0.6))  # the random kill moment, not a synchronisation
        finally:
            daemon.kill()
        kills += 1
    with _daemon(folders) as last:
        wait_until(lambda: len(folders.files(folders.done)) >= len(names) and not _jobs_in_work(folders),
                   30, f"every file in done/ (seed {seed}, {kills} kills)")
        assert last.stop() == 0
    assert kills >= 2, f"seed {seed}: too few kills to mean anything"
    assert_each_done_exactly_once(folders, names)


def test_a_file_that_kills_the_daemon_three_times_goes_to_failed_as_poison(folders: Folders) -> None:
    """After max_attempts crashes on one file, the next start fails it with a report and goes on."""
    _deliver(folders, "killer.wav")
    for attempt in range(1, 4):
        daemon = _daemon(folders, crash_on=["killer.wav"]).start()
        try:
            _killed(daemon)
        finally:
            daemon.kill()
        (job,) = _jobs_in_work(folders)
        assert json.loads((job / "job.json").read_text())["attempts"] == attempt
    with _daemon(folders, crash_on=["killer.wav"]) as daemon:
        daemon.wait_for("job.failed", timeout=30, error_kind="poison")
        _deliver(folders, "next.wav")
        wait_until(lambda: (folders.done / "next.wav").exists(), 30, "the next file in done/")
        assert daemon.stop() == 0
    assert folders.files(folders.failed) == ["killer.wav", "killer.wav.error.json",
                                             "killer.wav.log.jsonl"]
    report = json.loads((folders.failed / "killer.wav.error.json").read_text())
    assert report["error_kind"] == "poison"
    assert report["attempts"] == 3 and len(report["history"]) == 3
    assert "killed or failed the daemon" in report["error"]
    assert _jobs_in_work(folders) == []


def test_a_file_claimed_ahead_is_not_blamed_for_the_crashes_of_the_file_before_it(folders: Folders) -> None:
    """With overlap, the next file is claimed while the killer runs. Its attempt counts only when
    the consumer takes it, so three crashes on the killer make the killer poison, not it."""
    folders.write_config(overlap={"enabled": True}, packing={"enabled": False})  # one job at a time
    _deliver(folders, "a-killer.wav")
    _deliver(folders, "b-innocent.wav")
    claimed_ahead = 0
    for _ in range(3):
        daemon = _daemon(folders, crash_on=["a-killer.wav"]).start()
        try:
            _killed(daemon)
        finally:
            daemon.kill()
        claimed_ahead += any(e.get("event") == "job.claimed" and e.get("file") == "b-innocent.wav"
                             for e in daemon.events())
    assert claimed_ahead >= 1  # the case under test happened: b was claimed while a ran
    with _daemon(folders, crash_on=["a-killer.wav"]) as daemon:
        wait_until(lambda: (folders.done / "b-innocent.wav").exists(), 30, "the innocent file in done/")
        assert daemon.stop() == 0
    assert json.loads((folders.failed / "a-killer.wav.error.json").read_text())["error_kind"] == "poison"
    assert json.loads((folders.outbox / "b-innocent.json").read_text())["transcribed"]["attempts"] == 1


def test_files_packed_with_a_killer_are_not_blamed_for_its_crashes(folders: Folders) -> None:
    """Packing (the CPU default) takes the waiting files into one call, and the killer's crash
    counts an attempt for each. After that the killer runs alone: files arriving later are not
    packed with it, so they are done on their first attempt; only the killer becomes poison."""
    names = ["a-killer.wav", "b.wav", "c.wav"]
    for name in names:  # all waiting before the start, so they are packed together
        _deliver(folders, name)
    started = []
    for later in (["d.wav", "e.wav"], [], []):
        daemon = _daemon(folders, crash_on=["a-killer.wav"]).start()
        try:
            _killed(daemon)
        finally:
            daemon.kill()
        started.append(sorted(e["file"] for e in daemon.events() if e.get("event") == "job.started"))
        for name in later:  # fresh files waiting beside the adopted killer at the next start
            _deliver(folders, name)
    assert started[0] == names, started  # the case under test: all three in the call that crashed
    with _daemon(folders, crash_on=["a-killer.wav"]) as daemon:
        wait_until(lambda: all((folders.done / n).exists() for n in ["b.wav", "c.wav", "d.wav", "e.wav"]),
                   30, "every file but the killer in done/")
        assert daemon.stop() == 0
    assert json.loads((folders.failed / "a-killer.wav.error.json").read_text())["error_kind"] == "poison"
    attempts = {n: json.loads((folders.outbox / f"{n}.json").read_text())["transcribed"]["attempts"]
                for n in ("b", "c", "d", "e")}
    assert attempts == {"b": 2, "c": 2, "d": 1, "e": 1}, attempts


def test_a_file_that_fails_every_attempt_goes_to_failed_as_poison_and_the_daemon_keeps_serving(
        folders: Folders) -> None:
    """An engine error is retried with a delay; at max_attempts the file fails with the last error."""
    with _daemon(folders, fail={"bad.wav": "engine exploded"}) as daemon:
        _deliver(folders, "bad.wav")
        daemon.wait_for("job.failed", timeout=30, error_kind="poison")
        _deliver(folders, "good.wav")
        wait_until(lambda: (folders.done / "good.wav").exists(), 30, "the next file in done/")
        assert daemon.count("job.retry_later") == 2
        assert daemon.process is not None and daemon.process.poll() is None
        assert daemon.stop() == 0
    report = json.loads((folders.failed / "bad.wav.error.json").read_text())
    assert report["attempts"] == 3
    assert "engine exploded" in report["error"]
    assert [h["error"] for h in report["history"]] == ["RuntimeError: engine exploded"] * 3


def test_a_job_left_by_a_clean_stop_keeps_its_attempt_count(folders: Folders) -> None:
    """A retry still waiting at SIGTERM stays in the state folder and the next daemon finishes it."""
    folders.write_config(jobs={"retry_delay_seconds": 60, "max_attempts": 2})
    with _daemon(folders, fail={"flaky.wav": "transient"}) as daemon:
        _deliver(folders, "flaky.wav")
        daemon.wait_for("job.retry_later", timeout=30)
        assert daemon.stop() == 0
    (job,) = _jobs_in_work(folders)
    assert json.loads((job / "job.json").read_text())["attempts"] == 1
    with _daemon(folders) as daemon:
        daemon.wait_for("job.adopted", timeout=30, attempts=1)
        wait_until(lambda: (folders.done / "flaky.wav").exists(), 30, "flaky.wav in done/")
        assert daemon.stop() == 0
    assert_each_done_exactly_once(folders, ["flaky.wav"])
