"""Every kind of bad input ends in failed/ with a clear `<name>.error.json` (or succeeds where it
should), and the next good file is still transcribed.

One daemon (fake engine, real decoding) serves the tests that need nothing special; those that
need another setting, fewer privileges or a small disk start their own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.support.corpus import corpus_dir
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import (
    truncate,
    write_m4a,
    write_mp3,
    write_random_bytes,
    write_silence_wav,
    write_text_as,
    write_video_without_audio,
    write_wav,
)
from tests.support.smallfs import SmallFs, tmpfs
from transcribed.transcription.audio import decode

MiB = 1 << 20
SPEECH = "cmu_sphinx/an4_10001-90210-01803.wav"  # 8.3 s
SHORT = "cmu_sphinx/cards_001.wav"  # 1.1 s
FLAC = "ljspeech/LJ001-0002.flac"  # 1.9 s

pytestmark = pytest.mark.usefixtures("corpus")


@dataclass
class Served:
    """A running daemon and its folders, shared by the tests of this module."""

    folders: Folders
    daemon: DaemonProcess


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, corpus: None) -> Iterator[Served]:
    folders = Folders(tmp_path_factory.mktemp("bad-input") / "t")
    folders.write_config()
    daemon = DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": "{}"}).start()
    try:
        yield Served(folders, daemon)
    finally:
        daemon.kill()


def _deliver(folders: Folders, name: str, make: Callable[[Path], object]) -> None:
    """Make the file beside the inbox, then rename it in (complete at once)."""
    staging = folders.root / "staging" / uuid.uuid4().hex
    staging.mkdir(parents=True)
    make(staging / "f")
    (folders.inbox / name).parent.mkdir(parents=True, exist_ok=True)
    os.rename(staging / "f", folders.inbox / name)


def _copy_of(relpath: str) -> Callable[[Path], object]:
    return lambda path: shutil.copy(corpus_dir() / relpath, path)


def _report(folders: Folders, name: str, timeout: float = 30) -> dict:
    """The error report, once the source lies beside it (the source moves last)."""
    path = folders.failed / f"{name}.error.json"
    wait_until(lambda: path.exists() and (folders.failed / name).exists(), timeout,
               f"{name} and its report in failed/")
    return json.loads(path.read_text())


def _done(folders: Folders, name: str, timeout: float = 30) -> dict:
    wait_until((folders.done / name).exists, timeout, f"{name} in done/")
    stem = name.rsplit(".", 1)[0]
    return json.loads((folders.outbox / f"{stem}.json").read_text())


def _still_serving(folders: Folders) -> None:
    """The next good file is transcribed."""
    name = f"next-{uuid.uuid4().hex[:8]}.wav"
    _deliver(folders, name, _copy_of(SHORT))
    _done(folders, name)


def _truncated(kind: str) -> Callable[[Path], object]:
    def make(path: Path) -> None:
        if kind == "mp3":
            write_mp3(path, corpus_dir() / SPEECH)
        elif kind == "m4a":
            write_m4a(path, corpus_dir() / SPEECH, faststart=True)  # index first: partly decodable
        elif kind == "pcm.wav":  # no `fact` chunk: only the data chunk's size tells the length
            write_wav(path, decode(corpus_dir() / SPEECH).samples)
        else:
            shutil.copy(corpus_dir() / SPEECH, path)
        truncate(path, 0.5)
    return make


# --- one shared daemon -----------------------------------------------------------------------------

def test_an_empty_file_goes_to_failed_saying_it_is_empty(served: Served) -> None:
    """0 bytes: failed/empty.wav with error_kind 'empty'."""
    _deliver(served.folders, "empty.wav", lambda p: p.write_bytes(b""))
    report = _report(served.folders, "empty.wav")
    assert report["error_kind"] == "empty" and "empty (0 bytes)" in report["error"]
    assert report["stage"] == "decode" and report["attempts"] == 1
    _still_serving(served.folders)


@pytest.mark.parametrize("kind", ["mp3", "wav", "pcm.wav", "m4a"])
def test_a_truncated_file_goes_to_failed_with_both_durations(served: Served, kind: str) -> None:
    """Half of an 8.3 s recording: the report gives the declared and the decoded length (a plain
    PCM WAV by its data chunk, which FFmpeg leaves out)."""
    name = f"cut.{kind}"
    _deliver(served.folders, name, _truncated(kind))
    report = _report(served.folders, name)
    assert report["error_kind"] == "truncated"
    assert "declares 8.3" in report["error"] and " 4.1" in report["error"]  # both figures
    assert "input.accept_truncated" in report["error"]
    _still_serving(served.folders)


def test_random_bytes_named_wav_go_to_failed_as_not_audio(served: Served) -> None:
    """No decoder reads them; the report says so without FFmpeg's errno or our paths."""
    _deliver(served.folders, "noise.wav", lambda p: write_random_bytes(p, 50_000, seed=3))
    report = _report(served.folders, "noise.wav")
    assert report["error_kind"] == "not_audio"
    assert "Errno" not in report["error"] and "state" not in report["error"]
    _still_serving(served.folders)


def test_a_text_file_named_mp3_goes_to_failed_as_not_audio(served: Served) -> None:
    """A text file with an audio name is not audio."""
    _deliver(served.folders, "notes.mp3", write_text_as)
    assert _report(served.folders, "notes.mp3")["error_kind"] == "not_audio"
    _still_serving(served.folders)


def test_a_video_without_audio_goes_to_failed_saying_it_has_no_audio_stream(served: Served) -> None:
    """An mp4 with only a video stream: 'no audio stream (it has: video)'."""
    _deliver(served.folders, "screen.mp4", write_video_without_audio)
    report = _report(served.folders, "screen.mp4")
    assert report["error_kind"] == "no_audio_stream" and "it has: video" in report["error"]
    _still_serving(served.folders)


def test_pure_silence_succeeds_with_an_empty_transcript(served: Served) -> None:
    """Silence is not an error: done/, no segments, an empty text file."""
    _deliver(served.folders, "quiet.wav", lambda p: write_silence_wav(p, 5.0))
    result = _done(served.folders, "quiet.wav")
    assert result["segments"] == [] and result["transcribed"]["audio_seconds"] == 5.0
    assert (served.folders.outbox / "quiet.txt").read_text().strip() == ""


def test_a_name_with_spaces_unicode_and_shell_characters_is_transcribed(served: Served) -> None:
    """Nothing is passed through a shell: quotes, $(...), ; and non-ASCII are just characters."""
    name = "Réunion 2024 — it's \"final\" $(rm -rf ~); `x` & 'y' 会议 #1 *.wav"
    _deliver(served.folders, name, _copy_of(SHORT))
    result = _done(served.folders, name)
    assert result["transcribed"]["source"] == name
    stem = name[: -len(".wav")]
    assert {f"{stem}{s}" for s in (".json", ".txt", ".srt", ".vtt", ".log.jsonl")} <= set(
        os.listdir(served.folders.outbox))


def test_the_same_name_delivered_twice_keeps_both_and_overwrites_nothing(served: Served) -> None:
    """The second twin.wav becomes twin.2.*; the first results are untouched."""
    folders = served.folders
    _deliver(folders, "twin.wav", _copy_of(SHORT))
    first = _done(folders, "twin.wav")
    served.daemon.wait_for("job.moved", file="twin.wav")  # its log's last line is written
    before = {p.name: p.read_bytes() for p in folders.outbox.glob("twin.*")}
    _deliver(folders, "twin.wav", _copy_of(FLAC))
    second = _done(folders, "twin.2.wav")
    assert {p.name: p.read_bytes() for p in folders.outbox.glob("twin.*") if ".2." not in p.name} == before
    assert first["transcribed"]["audio_seconds"] != second["transcribed"]["audio_seconds"]
    assert (folders.done / "twin.wav").read_bytes() == (corpus_dir() / SHORT).read_bytes()


def test_a_file_deleted_or_renamed_after_it_was_noticed_makes_no_error_and_no_job(served: Served) -> None:
    """The daemon saw both arrive; one is deleted, one renamed, before it could claim them."""
    folders, daemon = served.folders, served.daemon
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGSTOP)  # the events queue up; nothing is claimed
    try:
        _deliver(folders, "gone.wav", _copy_of(SHORT))
        _deliver(folders, "moved.wav", _copy_of(SHORT))
        os.unlink(folders.inbox / "gone.wav")
        os.rename(folders.inbox / "moved.wav", folders.inbox / "renamed.wav")
    finally:
        daemon.process.send_signal(signal.SIGCONT)
    _done(folders, "renamed.wav")
    _still_serving(folders)
    about = [e for e in daemon.events() if e.get("file") in ("gone.wav", "moved.wav")]
    assert about == []
    assert not (folders.failed / "gone.wav.error.json").exists()


def test_a_directory_copied_into_the_inbox_has_each_audio_file_taken_once(served: Served) -> None:
    """A folder tree copied in (not atomically): its audio files are done once, in the same tree."""
    folders, daemon = served.folders, served.daemon
    tree = folders.root / "staging" / "session 1"
    (tree / "day 2").mkdir(parents=True)
    shutil.copy(corpus_dir() / SHORT, tree / "a.wav")
    write_mp3(tree / "b.mp3", corpus_dir() / SHORT)
    shutil.copy(corpus_dir() / FLAC, tree / "day 2" / "c.flac")
    (tree / "agenda.txt").write_text("not audio")
    shutil.copytree(tree, folders.inbox / "session 1")
    expected = ["session 1/a.wav", "session 1/b.mp3", "session 1/day 2/c.flac"]
    wait_until(lambda: all((folders.done / e).exists() for e in expected), 30, "the tree's audio in done/")
    assert (folders.outbox / "session 1" / "day 2" / "c.json").exists()
    assert (folders.inbox / "session 1" / "agenda.txt").exists()
    started = [e["file"] for e in daemon.events() if e.get("event") == "job.started"]
    assert sorted(f for f in started if f.startswith("session 1/")) == expected


# --- their own daemon ---------------------------------------------------------------------------

def test_a_truncated_file_is_transcribed_and_marked_when_accept_truncated_is_set(folders: Folders) -> None:
    """input.accept_truncated: the part that is there is transcribed; the metadata says so."""
    folders.write_config(input={"accept_truncated": True})
    with DaemonProcess(folders.config, engine="fake") as daemon:
        _deliver(folders, "cut.mp3", _truncated("mp3"))
        meta = _done(folders, "cut.mp3")["transcribed"]
        assert daemon.stop() == 0
    assert meta["truncated"] is True
    assert meta["declared_seconds"] == pytest.approx(8.31, abs=0.05)
    assert meta["audio_seconds"] == pytest.approx(4.1, abs=0.3)


def test_a_name_that_is_not_valid_utf8_is_transcribed(folders: Folders) -> None:
    """Latin-1 bytes from an old share (caf\\xe9.wav): the file is kept and transcribed."""
    name = os.fsdecode(b"caf\xe9.wav")
    with DaemonProcess(folders.config, engine="fake") as daemon:
        _deliver(folders, name, _copy_of(SHORT))
        wait_until((folders.done / name).exists, 10, "caf\\xe9.wav in done/")
        assert (folders.outbox / os.fsdecode(b"caf\xe9.txt")).exists()
        assert daemon.count("job.done") == 1  # and stdout stayed UTF-8 JSON
        assert daemon.stop() == 0


#: Runs the daemon as root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so file modes apply.
_WITHOUT_FILE_OVERRIDES = (
    "import os, sys; os.execvp('setpriv', ['setpriv', "
    "'--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-dac_override,-dac_read_search', "
    "sys.executable, '-m', 'transcribed', *sys.argv[1:]])")


def _daemon_bound_by_file_modes(folders: Folders, **fake: object) -> DaemonProcess:
    python_args = ["-m", "transcribed"]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and setpriv (util-linux) is missing, so file modes cannot apply")
        python_args = ["-c", _WITHOUT_FILE_OVERRIDES]
    return DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(fake)},
                         python_args=python_args)


def test_an_unreadable_file_goes_to_failed_saying_permission_denied(folders: Folders) -> None:
    """Mode 000: 'cannot read the file: Permission denied', and the file itself is kept."""
    with _daemon_bound_by_file_modes(folders) as daemon:
        _deliver(folders, "locked.wav", lambda p: (shutil.copy(corpus_dir() / SHORT, p), os.chmod(p, 0)))
        report = _report(folders, "locked.wav")
        _still_serving(folders)
        assert daemon.stop() == 0
    assert report["error_kind"] == "unreadable" and "Permission denied" in report["error"]
    os.chmod(folders.failed / "locked.wav", 0o644)
    assert (folders.failed / "locked.wav").read_bytes() == (corpus_dir() / SHORT).read_bytes()


def _jobs_in_work(folders: Folders) -> list[Path]:
    work = folders.state / "work"
    return [j for w in work.iterdir() for j in w.iterdir() if j.is_dir()] if work.exists() else []


def test_a_read_only_outbox_holds_the_finished_job_and_pauses_claims_until_writable(folders: Folders) -> None:
    """The results and the source wait in the work folder; nothing new is claimed; then all moves."""
    folders.write_config(watch={"settle_seconds": 0.3, "rescan_seconds": 0.5})
    with _daemon_bound_by_file_modes(folders) as daemon:
        folders.outbox.chmod(0o555)
        try:
            _deliver(folders, "first.wav", _copy_of(SHORT))
            event = daemon.wait_for("job.move_refused", timeout=30)
            assert "Permission denied" in event["error"] and event["claims_paused"] is True
            _deliver(folders, "second.wav", _copy_of(SHORT))
            daemon.wait_for("job.move_refused", timeout=30, retry_in_s=2.0)  # retried, refused again
            (job,) = _jobs_in_work(folders)
            assert (job / "src" / "first.wav").exists() and (job / "out" / "first.json").exists()
            assert folders.files(folders.inbox) == ["second.wav"]  # not claimed while paused
        finally:
            folders.outbox.chmod(0o755)
        wait_until(lambda: (folders.done / "second.wav").exists(), 30, "both files in done/")
        daemon.wait_for("job.move_resumed")
        assert daemon.stop() == 0
    assert folders.files(folders.done) == ["first.wav", "second.wav"]
    assert {"first.json", "second.json"} <= set(folders.files(folders.outbox))
    assert _jobs_in_work(folders) == [] and folders.files(folders.failed) == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Folders, SmallFs]]:
    """The folder set on a 16 MB tmpfs of its own (all folders must share one filesystem), with a
    floor of free space the size of a small share's (1 MiB)."""
    with tmpfs(16 * MiB, base=tmp_path) as fs:
        folders = Folders(fs.root / "t")
        folders.write_config(watch={"settle_seconds": 0.3, "rescan_seconds": 0.5},
                             folders={"min_free_bytes": MiB})
        yield folders, fs


def test_a_full_disk_during_a_job_waits_for_space_and_loses_nothing(
        small_disk: tuple[Folders, SmallFs]) -> None:
    """ENOSPC while writing results is the disk's fault, not the file's: the job waits with its
    transcript kept (no retry, no attempt counted), and is done once space returns."""
    folders, fs = small_disk
    with DaemonProcess(folders.config, engine="fake", env={
            "TRANSCRIBED_FAKE": json.dumps({"delays": {"talk.wav": 2.0}})}) as daemon:
        _deliver(folders, "talk.wav", _copy_of(SPEECH))
        daemon.wait_for("job.decoded", timeout=30)
        fs.fill()
        waiting = daemon.wait_for("job.waiting_for_storage", timeout=30)
        assert waiting["kept"] is True and "No space left on device" in waiting["error"]
        (job,) = _jobs_in_work(folders)
        assert (job / "src" / "talk.wav").exists()
        fs.free()
        meta = _done(folders, "talk.wav")["transcribed"]
        assert daemon.stop() == 0
    assert meta["attempts"] == 1
    assert daemon.count("job.decoded") == 1  # transcribed once: its results were written later
    assert daemon.count("job.retry_later") == 0 and daemon.count("storage.recovered") == 1
    assert folders.files(folders.done) == ["talk.wav"] and folders.files(folders.failed) == []
    assert (folders.done / "talk.wav").read_bytes() == (corpus_dir() / SPEECH).read_bytes()
    assert not any(".2." in name for name in folders.files(folders.outbox))
    assert _jobs_in_work(folders) == []


def test_a_disk_full_at_the_last_attempt_fails_nothing_and_takes_no_new_file_until_space_returns(
        small_disk: tuple[Folders, SmallFs]) -> None:
    """One attempt allowed, and the disk fills during it: the file is not poison (the attempt
    does not count), the next file stays in the inbox, and both are done once space returns."""
    folders, fs = small_disk
    folders.write_config(jobs={"max_attempts": 1}, folders={"min_free_bytes": MiB},
                         watch={"settle_seconds": 0.3, "rescan_seconds": 0.5})
    with DaemonProcess(folders.config, engine="fake", env={
            "TRANSCRIBED_FAKE": json.dumps({"delays": {"talk.wav": 2.0}})}) as daemon:
        _deliver(folders, "talk.wav", _copy_of(SPEECH))
        daemon.wait_for("job.decoded", timeout=30)
        _deliver(folders, "later.wav", _copy_of(SHORT))
        fs.fill()
        daemon.wait_for("job.waiting_for_storage", timeout=30)
        assert (folders.inbox / "later.wav").exists()
        fs.free()
        _done(folders, "talk.wav")
        _done(folders, "later.wav")
        assert daemon.stop() == 0
    events = daemon.events()
    recovered = next(i for i, e in enumerate(events) if e["event"] == "storage.recovered")
    assert [e["file"] for e in events[recovered:] if e["event"] == "job.claimed"] == ["later.wav"]
    assert folders.files(folders.failed) == [] and _jobs_in_work(folders) == []


def _memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields


def test_a_two_hour_recording_is_decoded_in_bounded_memory(folders: Folders) -> None:
    """2 h of 16 kHz audio is 461 MB as float32; the daemon's peak grows by little more than that."""
    seconds = 2 * 3600
    speech = np.fromfile(corpus_dir() / SPEECH, dtype="<i2", offset=44).astype(np.float32) / 32768
    with DaemonProcess(folders.config, engine="fake") as daemon:
        assert daemon.process is not None
        idle = _memory(daemon.process.pid)
        _deliver(folders, "long.wav", lambda p: write_wav(p, np.resize(speech, seconds * 16_000)))
        meta = _done(folders, "long.wav", timeout=120)["transcribed"]
        peak = _memory(daemon.process.pid)["VmHWM"]
        assert daemon.stop() == 0
    samples_bytes = seconds * 16_000 * 4
    assert meta["audio_seconds"] == seconds
    growth = peak - idle["VmHWM"]
    print(f"2 h recording: idle {idle['VmHWM'] >> 20} MB, peak {peak >> 20} MB, growth {growth >> 20} MB")
    assert growth < samples_bytes * 1.25, f"peak grew by {growth >> 20} MB for {samples_bytes >> 20} MB of samples"
