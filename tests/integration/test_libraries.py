"""Library folders with real daemons (fake engine): real videos made with ffmpeg in a real folder
tree, subtitles written beside them, media never moved or changed, existing subtitles and the
skip marker respected, a restart that repeats nothing, two daemons on one library, a crash right
after a claim, a failed file retried only when asked, a file still being copied, and the hooks."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import copy_slowly, write_random_bytes, write_tone_wav
from tests.support.media_forms import BY_NAME, OFFSET_TOLERANCE, Matrix
from tests.support.net import free_port

SHM = Path("/dev/shm")  # noqa: S108 - a second filesystem, as a library on another disk is


@pytest.fixture
def ffmpeg() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        if IN_CI:
            pytest.fail("ffmpeg is needed to make the library's videos")
        pytest.skip("ffmpeg is not installed")
    return path


def make_video(ffmpeg: str, path: Path, seconds: float = 3.0, frequency: int = 440) -> Path:
    """A small real video (test pattern and a sine tone), mkv or mp4 by its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i",
                    f"testsrc=size=64x64:rate=5:duration={seconds}", "-f", "lavfi", "-i",
                    f"sine=frequency={frequency}:duration={seconds}", "-shortest", "-c:v", "libx264",
                    "-c:a", "aac", str(path)], check=True)
    return path


def fingerprint(path: Path) -> tuple[str, int, int, int]:
    """What must never change about a library's media: content, inode, mtime, links."""
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_ino, st.st_mtime_ns, st.st_nlink


def ledger(folders: Folders) -> list[dict[str, Any]]:
    path = folders.state / "library" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def library_config(folders: Folders, library: Path, **sections: dict[str, Any]) -> Path:
    """The test folders, 1 s rescans, and `library` with the tag `transcribed`."""
    path = folders.write_config(**{"watch": {"settle_seconds": 0.3, "rescan_seconds": 1}, **sections})
    data = yaml.safe_load(path.read_text())
    data["libraries"] = [{"path": str(library), "tag": "transcribed"}]
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """The library on another filesystem than the state folder (/dev/shm), when there is one."""
    if SHM.is_dir() and os.stat(SHM).st_dev != os.stat(tmp_path).st_dev:
        folder = SHM / f"transcribed-lib-{os.getpid()}-{tmp_path.name}"
        folder.mkdir()
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path / "library"


def test_subtitles_beside_the_media_which_never_moves(tmp_path: Path, library: Path, ffmpeg: str) -> None:
    """One movie gets `Movie (2010).en.transcribed.srt`; one with an `.en.srt` and the folder under
    `.transcribed-skip` get nothing; the inbox goes on as before; the hook is told the subtitle's
    path; a restart repeats nothing and logs one line per library."""
    folders = Folders(tmp_path / "d")
    movie = make_video(ffmpeg, library / "Movies" / "Movie (2010)" / "Movie (2010).mkv")
    has_subs = make_video(ffmpeg, library / "Movies" / "Old (1999)" / "Old (1999).mp4")
    (has_subs.parent / "Old (1999).en.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nmine\n")
    skipped = make_video(ffmpeg, library / "Extras" / "Clips" / "clip.mkv")
    (library / "Extras" / ".transcribed-skip").write_text("")
    before = {p: fingerprint(p) for p in (movie, has_subs, skipped)}
    hooked = tmp_path / "hooked"
    hooked.mkdir()
    script = f"import sys, pathlib, uuid; pathlib.Path({str(hooked)!r}, uuid.uuid4().hex).write_bytes(sys.stdin.buffer.read())"
    config = library_config(folders, library, hooks={"command": [sys.executable, "-c", script]})
    write_tone_wav(folders.inbox / "talk.wav", seconds=1.0)
    subtitle = movie.parent / "Movie (2010).en.transcribed.srt"
    with DaemonProcess(config, engine="fake") as daemon:
        daemon.wait_for("job.moved", timeout=60, file=str(movie))
        wait_until(lambda: (folders.done / "talk.wav").exists(), 30, "the inbox file in done/")
        bodies = wait_until(lambda: [json.loads(p.read_text()) for p in hooked.iterdir()
                                     if json.loads(p.read_text())["file"] == str(movie)], 30, "the hook")
        assert daemon.stop() == 0
    assert subtitle.is_file() and "-->" in subtitle.read_text()
    assert {p: fingerprint(p) for p in before} == before  # not moved, not changed, no extra link
    assert sorted(p.name for p in movie.parent.iterdir()) == ["Movie (2010).en.transcribed.srt",
                                                             "Movie (2010).mkv"]
    assert sorted(p.name for p in has_subs.parent.iterdir()) == ["Old (1999).en.srt", "Old (1999).mp4"]
    assert [p.name for p in skipped.parent.iterdir()] == ["clip.mkv"]
    assert "talk.json" in folders.files(folders.outbox)  # the inbox flow, unchanged beside it
    (body,) = bodies
    assert body["outcome"] == "done"
    assert {r["path"] for r in body["results"] if r["format"] == "srt"} == {str(subtitle)}
    assert body["source"] == {"path": str(movie), "relative": "Movies/Movie (2010)/Movie (2010).mkv"}
    assert {r["relative"] for r in body["results"] if r["format"] == "srt"} == {
        "Movies/Movie (2010)/Movie (2010).en.transcribed.srt"}
    (entry,) = ledger(folders)
    assert (entry["outcome"], entry["path"], entry["subtitles"]) == ("done", str(movie), [str(subtitle)])

    with DaemonProcess(config, engine="fake") as again:  # a restart: nothing is done twice
        again.wait_for("library.scanned")
        newer = make_video(ffmpeg, library / "Movies" / "New (2024)" / "New (2024).mkv")
        again.wait_for("job.moved", timeout=60, file=str(newer))  # rescans ran meanwhile
        assert [e["file"] for e in again.events() if e["event"] == "job.claimed"] == [str(newer)]
        assert again.stop() == 0
    # Start, the new file waiting, then done: a summary when the counts change, none per rescan.
    assert again.count("library.scanned") <= 3
    assert [e["path"] for e in ledger(folders)] == [str(movie), str(newer)]


def test_a_subtitle_appears_when_its_word_is_heard_though_the_audio_starts_late(
        tmp_path: Path, library: Path, media_matrix: Matrix) -> None:
    """A video whose audio starts 3 s after its picture: the fake engine's segment starts at the
    audio's first sample, so each subtitle's first cue, the spoken language's and the English
    translation's (`also_english`), is at 3 s on the player's clock, not at 0."""
    form = BY_NAME["mkv_h264_aac_audio_late"]
    source = media_matrix.form_file(form.name)
    assert source is not None, media_matrix.unbuilt
    movie = library / "Late (2020)" / "Late (2020).mkv"
    movie.parent.mkdir(parents=True)
    shutil.copy(source, movie)
    folders = Folders(tmp_path / "d")
    config = library_config(folders, library)
    data = yaml.safe_load(config.read_text())
    data["libraries"][0].update(languages=["German"], also_english=True)
    config.write_text(yaml.safe_dump(data))
    with DaemonProcess(config, engine="fake") as daemon:
        daemon.wait_for("job.moved", timeout=60, file=str(movie))
    for language in ("de", "en"):
        cue = (movie.parent / f"Late (2020).{language}.transcribed.srt").read_text(encoding="utf-8")
        start = cue.split("\n")[1].split(" --> ")[0]
        hours, minutes, seconds = start.replace(",", ".").split(":")
        at = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        assert abs(at - form.offset) <= OFFSET_TOLERANCE, (language, cue)


def test_two_daemons_on_one_library_do_each_file_once(tmp_path: Path, library: Path, ffmpeg: str) -> None:
    folders = Folders(tmp_path / "d")
    films = [make_video(ffmpeg, library / f"Film {i}" / f"Film {i}.mkv", seconds=2, frequency=300 + 50 * i)
             for i in range(6)]
    config = library_config(folders, library)
    with DaemonProcess(config, engine="fake") as one, DaemonProcess(config, engine="fake") as two:
        wait_until(lambda: all((f.parent / f"{f.stem}.en.transcribed.srt").exists() for f in films), 90,
                   "a subtitle beside every film")
        wait_until(lambda: len(ledger(folders)) >= 6, 30, "six ledger records")
        claims = [e["file"] for d in (one, two) for e in d.events() if e["event"] == "job.claimed"]
        assert one.stop() == 0 and two.stop() == 0
    assert sorted(claims) == sorted(str(f) for f in films)  # each once, by one daemon or the other
    for film in films:
        assert sorted(p.name for p in film.parent.iterdir()) == [f"{film.stem}.en.transcribed.srt", film.name]
    assert sorted(e["path"] for e in ledger(folders)) == sorted(str(f) for f in films)
    assert list((folders.state / "library" / "claims").iterdir()) == []


def test_a_crash_right_after_the_claim_is_redone_once(tmp_path: Path, library: Path, ffmpeg: str) -> None:
    """SIGKILL just after the claim marker is made: the next daemon adopts the job folder, takes
    the marker over, and writes the one subtitle."""
    folders = Folders(tmp_path / "d")
    film = make_video(ffmpeg, library / "Film" / "Film.mkv")
    before = fingerprint(film)
    config = library_config(folders, library)
    crashing = DaemonProcess(config, engine="fake", env={"TRANSCRIBED_FAILPOINTS": "library_claimed"})
    crashing.start()
    assert crashing.process is not None
    assert crashing.process.wait(timeout=60) == -9
    assert list((folders.state / "library" / "claims").iterdir())  # the marker it left
    with DaemonProcess(config, engine="fake") as after:
        after.wait_for("job.moved", timeout=120, file=str(film))
        assert after.stop() == 0
    assert sorted(p.name for p in film.parent.iterdir()) == ["Film.en.transcribed.srt", "Film.mkv"]
    assert fingerprint(film) == before
    assert [e["outcome"] for e in ledger(folders)] == ["done"]


def test_a_failed_file_is_retried_only_when_asked(tmp_path: Path, library: Path, ffmpeg: str) -> None:
    folders = Folders(tmp_path / "d")
    (library / "Broken").mkdir(parents=True)
    broken = write_random_bytes(library / "Broken" / "Broken.mkv", 50_000)
    before = fingerprint(broken)
    config = library_config(folders, library, jobs={"max_attempts": 1})
    with DaemonProcess(config, engine="fake") as daemon:
        daemon.wait_for("job.failed", timeout=60, file=str(broken))
        wait_until(lambda: ledger(folders), 10, "the ledger record")
        assert daemon.stop() == 0
    (entry,) = ledger(folders)
    assert entry["outcome"] == "failed"
    report = json.loads((folders.state / "library" / "failed" / f"{entry['id']}.error.json").read_text())
    assert report["file"] == str(broken)
    assert fingerprint(broken) == before and [p.name for p in broken.parent.iterdir()] == ["Broken.mkv"]
    with DaemonProcess(config, engine="fake") as again:
        again.wait_for("library.scanned")
        good = make_video(ffmpeg, library / "Good" / "Good.mkv")
        again.wait_for("job.moved", timeout=60, file=str(good))  # rescans and claims ran meanwhile
        assert [e["file"] for e in again.events() if e["event"] == "job.claimed"] == [str(good)]
        retry = subprocess.run([sys.executable, "-m", "transcribed", "retry", str(broken.parent),
                                "--config", str(config)], capture_output=True, text=True, check=False)
        assert retry.returncode == 0 and f"retry: {broken} (was failed)" in retry.stdout
        again.wait_for("job.failed", timeout=60, file=str(broken))  # asked: tried again
        assert again.stop() == 0


def test_a_file_still_being_copied_is_not_taken(tmp_path: Path, library: Path, ffmpeg: str) -> None:
    folders = Folders(tmp_path / "d")
    source = make_video(ffmpeg, tmp_path / "src" / "Long.mkv", seconds=6)
    config = library_config(folders, library)
    (library / "Long").mkdir(parents=True)
    target = library / "Long" / "Long.mkv"
    with DaemonProcess(config, engine="fake") as daemon:
        copier = threading.Thread(target=copy_slowly, args=(source, target, 3.0))
        copier.start()
        copier.join()
        copied = target.stat().st_mtime
        done = daemon.wait_for("job.decoded", timeout=60, file=str(target))
        claimed = daemon.wait_for("job.claimed", file=str(target))
        assert daemon.stop() == 0
    assert done["audio_s"] > 5.5  # the whole file, not the part there when it was first seen
    from datetime import datetime
    assert datetime.fromisoformat(claimed["ts"].replace("Z", "+00:00")).timestamp() >= copied


def test_a_crash_after_the_finish_plan_places_the_subtitle_once(tmp_path: Path, library: Path,
                                                                 ffmpeg: str) -> None:
    """SIGKILL once the plan is written (the ledger already says done): the next daemon carries
    the plan out; one subtitle, no temporary name left in the media's folder."""
    folders = Folders(tmp_path / "d")
    film = make_video(ffmpeg, library / "Film" / "Film.mkv")
    config = library_config(folders, library)
    crashing = DaemonProcess(config, engine="fake", env={"TRANSCRIBED_FAILPOINTS": "planned"})
    crashing.start()
    assert crashing.process is not None
    assert crashing.process.wait(timeout=60) == -9
    assert [p.name for p in film.parent.iterdir()] == ["Film.mkv"]  # nothing placed yet
    with DaemonProcess(config, engine="fake") as after:
        wait_until(lambda: (film.parent / "Film.en.transcribed.srt").exists(), 60, "the subtitle")
        wait_until(lambda: not any((folders.state / "work").glob("*/*/library.json")), 30,
                   "the job folder gone")
        assert after.count("job.claimed") == 0  # finished from its plan, not transcribed again
        assert after.stop() == 0
    assert sorted(p.name for p in film.parent.iterdir()) == ["Film.en.transcribed.srt", "Film.mkv"]
    assert [e["outcome"] for e in ledger(folders)] == ["done"]


def test_a_subtitle_stream_inside_the_file_counts_when_asked(tmp_path: Path, library: Path,
                                                             ffmpeg: str) -> None:
    """check_streams: an mkv carrying an English subtitle stream is recorded `embedded` and gets
    no file beside it; one without gets its subtitle."""
    folders = Folders(tmp_path / "d")
    plain = make_video(ffmpeg, library / "Plain" / "Plain.mkv")
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,000 --> 00:00:01,000\nHello\n")
    inside = library / "Inside" / "Inside.mkv"
    inside.parent.mkdir(parents=True)
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(plain), "-i", str(srt), "-map", "0",
                    "-map", "1", "-c", "copy", "-c:s", "srt", "-metadata:s:s:0", "language=eng",
                    str(inside)], check=True)
    path = library_config(folders, library)
    data = yaml.safe_load(path.read_text())
    data["libraries"][0]["check_streams"] = True
    path.write_text(yaml.safe_dump(data))
    with DaemonProcess(path, engine="fake") as daemon:
        daemon.wait_for("library.embedded_subtitles", timeout=60, file=str(inside))
        daemon.wait_for("job.moved", timeout=60, file=str(plain))
        assert daemon.stop() == 0
    assert [p.name for p in inside.parent.iterdir()] == ["Inside.mkv"]
    assert sorted((e["path"], e["outcome"]) for e in ledger(folders)) == [
        (str(inside), "embedded"), (str(plain), "done")]


def test_status_and_metrics_say_how_many_library_files_wait(tmp_path: Path, library: Path,
                                                             ffmpeg: str) -> None:
    """Three films without subtitles, each taking 3 s: while the first runs, `status --json`
    and /metrics say 2 wait; once all are done, 0."""
    from tests.integration.test_metrics import scrape
    from tests.integration.test_status import status

    folders = Folders(tmp_path / "d")
    for name in ("A", "B", "C"):
        make_video(ffmpeg, library / name / f"{name}.mkv", seconds=1.0)
    port = free_port()
    config = library_config(folders, library, metrics={"listen": f"127.0.0.1:{port}"},
                            packing={"enabled": False})  # one film at a time, the others waiting

    def waiting() -> tuple[int | None, float | None]:
        (record,) = json.loads(status(folders, "--json").stdout)["workers"]
        return record.get("library_waiting"), scrape(f"http://127.0.0.1:{port}").get(
            "transcribed_library_waiting")

    with DaemonProcess(config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps({"delay": 3})}) as daemon:
        daemon.wait_for("job.started", timeout=60)
        assert wait_until(lambda: waiting() == (2, 2.0) or None, 20, "2 waiting")
        told = status(folders).stdout
        assert "2 library files waiting for their subtitles" in told, told
        assert "(and 2 library files)" in told, told  # the summary line, as systemd's STATUS= too
        wait_until(lambda: daemon.count("job.moved") >= 3, 60, "all three done")
        assert wait_until(lambda: waiting() == (0, 0.0) or None, 20, "none waiting")


def test_the_scan_bench_runs_and_finds_nothing_to_do(tmp_path: Path) -> None:
    """bench/library_scan.py on a small library: its table, with no job claimed."""
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, str(repo / "bench" / "library_scan.py"), "--files", "60",
                             "--seconds", "2", "--runs", "2", "--keep", str(tmp_path / "bench")],
                            cwd=repo, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("subtitled", "ledger"))]
    assert [row[0] for row in rows] == ["subtitled", "ledger"]
    assert all(row[1] == "60" and row[-1] == "0" for row in rows)  # 60 files, none claimed
