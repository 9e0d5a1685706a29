"""End to end with the real WhisperX pipeline on the CPU and the bundled tiny.en model.

One daemon (one model load) serves the whole module: real recordings from ../shared/corpus go
into its inbox, transcripts come out of its outbox and are scored against the references. The
daemon runs under a Python audit hook that records every attempt to reach a non-loopback
address, which proves the recordings never leave the machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.corpus import clip, word_error_rate
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_random_bytes, write_silence_wav
from tests.support.models import tiny_aligner

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

#: Real recordings of three sets and two containers; tiny.en scores 0-12 % WER on each.
CLIPS = ["librispeech/1088-134315-0000.wav", "librispeech/2412-153948-0000.flac",
         "ljspeech/LJ001-0001.flac", "misc_en/timit_LDC93S1.wav", "misc_en/cv_en_22058267.mp3"]
#: tiny.en's word error rate bound per clip, and over the set (measured here: mean 0.04, worst 0.18).
MAX_WER = 0.25
MAX_MEAN_WER = 0.12

#: Runs the CLI under an audit hook that logs network attempts to a file (first argument).
AUDITED_CLI = r"""
import ipaddress, json, sys
record = open(sys.argv.pop(1), "a")
def loopback(host):
    if host in (None, "", "localhost", b"localhost"):
        return True
    try:
        return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host).is_loopback
    except ValueError:
        return False
def hook(event, args):
    if event in ("socket.connect", "socket.sendto", "socket.sendmsg"):
        address = args[-1]
        if isinstance(address, tuple) and not loopback(address[0]):
            record.write(json.dumps([event, repr(address)]) + "\n"); record.flush()
    elif event == "socket.getaddrinfo" and not loopback(args[0]):
        record.write(json.dumps([event, repr(args[0])]) + "\n"); record.flush()
sys.addaudithook(hook)
from transcribed.cli import main
sys.exit(main())
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Folders, DaemonProcess, Path]]:
    """A real daemon (tiny.en, CPU) with the test clips transcribed, plus its network record."""
    folders = Folders(tmp_path_factory.mktemp("e2e"))
    # A tiny local aligner: the real alignment code runs, and nothing is downloaded.
    folders.write_config(align={"model": str(tiny_aligner())})
    network = folders.root / "network.jsonl"
    network.touch()
    daemon = DaemonProcess(folders.config, python_args=["-c", AUDITED_CLI, str(network)])
    with daemon:
        for name in CLIPS:
            shutil.copy(clip(name).path, folders.inbox / Path(name).name)
        write_random_bytes(folders.inbox / "corrupt.wav", 30_000)
        (folders.inbox / "empty.flac").write_bytes(b"")
        write_silence_wav(folders.inbox / "silence.wav", 5.0)
        wait_until(lambda: all((folders.done / Path(n).name).exists() for n in CLIPS), 300,
                   "every clip in done/")
        wait_until(lambda: (folders.done / "silence.wav").exists(), 60, "silence in done/")
        wait_until(lambda: (folders.failed / "empty.flac.error.json").exists()
                   and (folders.failed / "corrupt.wav.error.json").exists(), 60, "two failures")
        daemon.wait_for("job.moved", file="silence.wav")
        yield folders, daemon, network
        assert daemon.stop() == 0


def _text(folders: Folders, stem: str) -> str:
    return (folders.outbox / f"{stem}.txt").read_text(encoding="utf-8")


def test_real_recordings_are_transcribed_accurately(served) -> None:
    """Each transcript is close to its reference (word error rate after normalisation)."""
    folders, _daemon, _network = served
    rates = {}
    for name in CLIPS:
        reference = clip(name)
        rates[name] = word_error_rate(reference.reference, _text(folders, Path(name).stem), "en")
    assert max(rates.values()) <= MAX_WER, rates
    assert sum(rates.values()) / len(rates) <= MAX_MEAN_WER, rates


def test_sources_are_in_done_and_results_in_the_outbox(served) -> None:
    """done/ holds each source byte for byte; the outbox has every default format and the log."""
    folders, _daemon, _network = served
    for name in CLIPS:
        source = Path(name).name
        assert (folders.done / source).read_bytes() == clip(name).path.read_bytes()
        stem = Path(name).stem
        for suffix in (".json", ".txt", ".srt", ".vtt", ".log.jsonl"):
            assert (folders.outbox / f"{stem}{suffix}").exists(), stem + suffix
    assert folders.files(folders.inbox) == []


def test_json_carries_the_result_and_its_metadata(served) -> None:
    """<stem>.json: language, timed segments, and the `transcribed` block."""
    folders, _daemon, _network = served
    result = json.loads((folders.outbox / "1088-134315-0000.json").read_text())
    assert result["language"] == "en"
    assert result["segments"] and all(s["end"] > s["start"] for s in result["segments"])
    meta = result["transcribed"]
    assert meta["model"] == "tiny.en" and meta["model_source"] == "bundled"
    assert (meta["device"], meta["compute_type"], meta["batch_size"]) == ("cpu", "int8", 4)
    assert meta["audio_seconds"] == pytest.approx(16.04, abs=0.01)
    assert set(meta["timings"]) >= {"decode", "transcribe", "align", "total"}
    # Audio seconds per second of wall time, whatever the machine's speed (a busy one is slower
    # than real time): speed is measured by bench/, never asserted here.
    assert meta["realtime_factor"] == pytest.approx(meta["audio_seconds"] / meta["timings"]["total"], abs=0.0051)
    assert meta["alignment"] == "words"
    words = [w for s in result["segments"] for w in s["words"]]
    assert words and all({"word", "start", "end", "score"} <= set(w) for w in words if "start" in w)
    starts = [w["start"] for w in words if "start" in w]
    assert starts == sorted(starts)


def test_silence_is_a_success_with_an_empty_transcript(served) -> None:
    """No speech is not an error: done/, with empty segments."""
    folders, _daemon, _network = served
    result = json.loads((folders.outbox / "silence.json").read_text())
    assert result["segments"] == [] and _text(folders, "silence") == ""


def test_corrupt_and_empty_files_fail_with_a_readable_report(served) -> None:
    """Bad input ends in failed/ with a report; the good files around it were still done."""
    folders, _daemon, _network = served
    for name, kind in (("corrupt.wav", "not_audio"), ("empty.flac", "empty")):
        report = json.loads((folders.failed / f"{name}.error.json").read_text())
        assert report["error_kind"] == kind and report["stage"] == "decode" and report["error"]
        assert (folders.failed / name).exists()


def test_stdout_is_one_json_object_per_line(served) -> None:
    """Nothing whisperx, pyannote, lightning or torch prints reaches stdout except as JSON."""
    _folders, daemon, _network = served
    assert daemon.lines
    for line in daemon.lines:
        record = json.loads(line)
        assert {"event", "level", "ts"} <= set(record), line
    done = [e for e in daemon.events() if e["event"] == "job.done"]
    assert len(done) == len(CLIPS) + 1
    assert all(e["rtf"] > 0 and e["audio_s"] >= 0 and e["job_id"] and e["file"] for e in done)


def test_nothing_reaches_for_the_network_while_jobs_run(served) -> None:
    """No socket to a non-loopback address, no DNS lookup, from load to the last job."""
    _folders, _daemon, network = served
    assert network.read_text() == ""


def test_transcribe_command_writes_the_same_outputs(served, tmp_path: Path) -> None:
    """`transcribed transcribe FILE --out DIR`: the daemon's engine and outputs, then exit 0."""
    folders, _daemon, _network = served
    name = "librispeech/1088-134315-0000.wav"
    done = subprocess.run(
        [sys.executable, "-m", "transcribed", "transcribe", str(clip(name).path), "--out",
         str(tmp_path), "--config", str(folders.config)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "1088-134315-0000.json", "1088-134315-0000.srt", "1088-134315-0000.txt", "1088-134315-0000.vtt"]
    assert (tmp_path / "1088-134315-0000.txt").read_text() == _text(folders, "1088-134315-0000")
    for line in done.stdout.splitlines():
        json.loads(line)
