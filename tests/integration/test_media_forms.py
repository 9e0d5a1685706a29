"""The conformance matrix, decoded for real: the same speech in every form this machine's ffmpeg
can make (tests/support/media_forms.py: containers, codecs, channel layouts, sample rates, audio
starting late or ending early, several tracks, subtitle, data and cover streams first).

Each form decodes whole (never a false `truncated`: a video longer than its audio is normal), from
the right audio stream, to the speech's length, with the speech where a player plays it once the
stream's start (`Audio.offset_seconds`) is added. Then the daemon (fake engine) takes every form by
its default extension, ends each in done/, and writes its times on the media's clock in the JSON,
the SRT and the VTT. The real engine's text and timing per form: tests/e2e/test_media_forms_whisperx.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media_forms import (
    BY_NAME,
    FORMS,
    LENGTH_LONG_BY,
    LENGTH_SHORT_BY,
    OFFSET_TOLERANCE,
    Form,
    Matrix,
    drop_every_form,
    speech_position,
)
from transcribed.transcription.audio import decode

pytestmark = pytest.mark.usefixtures("corpus")

#: The speech must be found in the decoded audio this clearly (envelope correlation), and no
#: quieter than this against the WAV (5.1 with the voice in the centre alone mixes down to -11 dB).
MIN_MATCH = 0.6
MIN_LEVEL_DB = -15.0
#: What the issue asks the matrix to span, by file suffix.
REQUIRED_SUFFIXES = {".mkv", ".mp4", ".m4v", ".mov", ".ts", ".m2ts", ".mts", ".webm", ".ogg", ".oga",
                     ".opus", ".m4a", ".mka", ".avi", ".flv", ".wmv", ".asf", ".3gp", ".caf", ".aiff",
                     ".amr", ".vob"}
#: A cue's start: SRT writes "00:00:02,936 -->", VTT "00:02.936 -->" (hours only past one).
CUE_START = re.compile(r"(?:(\d+):)?(\d\d):(\d\d)[,.](\d\d\d) -->")


def _built(matrix: Matrix, form: Form) -> Path:
    path = matrix.form_file(form.name)
    if path is None:
        pytest.skip(f"this machine cannot make {form.name}: {matrix.unbuilt[form.name]}")
    return path


def test_the_matrix_spans_what_libraries_phones_dvrs_camcorders_and_conference_tools_write(
        media_matrix: Matrix) -> None:
    """At least 20 forms built here, across the containers the issue names; the one this ffmpeg
    cannot make is named with why (AMR-WB: no encoder in this ffmpeg nor in PyAV's)."""
    assert len(media_matrix.built) >= 20
    built_suffixes = {BY_NAME[name].suffix for name in media_matrix.built}
    assert built_suffixes >= REQUIRED_SUFFIXES, REQUIRED_SUFFIXES - built_suffixes
    assert all(reason for reason in media_matrix.unbuilt.values())


@pytest.mark.parametrize("name", [form.name for form in FORMS])
def test_each_form_decodes_whole_from_its_track_and_in_place_on_the_media_clock(
        media_matrix: Matrix, name: str) -> None:
    form = BY_NAME[name]
    audio = decode(_built(media_matrix, form), track=form.track)
    assert not audio.truncated
    assert audio.track is not None and audio.track.number == form.stream, audio.track
    expected = media_matrix.seconds + form.lead
    assert expected - LENGTH_SHORT_BY <= audio.seconds <= expected + LENGTH_LONG_BY
    lag, match, level = speech_position(audio.samples, decode(media_matrix.speech).samples)
    assert match >= MIN_MATCH and level >= MIN_LEVEL_DB, (match, level)
    heard_at = audio.offset_seconds + lag
    assert abs(heard_at - form.speech_at) <= OFFSET_TOLERANCE, (audio.offset_seconds, lag)


@dataclass
class Run:
    """One fake-engine daemon's run over every built form."""

    folders: Folders
    events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def daemon_run(media_matrix: Matrix, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Every built form dropped into one daemon's inbox (default extensions; a sidecar first where
    the form's job needs an audio_track), until each has ended."""
    folders = Folders(tmp_path_factory.mktemp("media-forms-daemon") / "t")
    folders.write_config(packing={"enabled": False})
    with DaemonProcess(folders.config, engine="fake") as daemon:
        names = drop_every_form(media_matrix, folders.inbox)
        wait_until(lambda: daemon.count("inbox.ignored") or all(
            (folders.done / n).exists() or (folders.failed / n).exists() for n in names),
            300, "every form in done/ or failed/ (or one ignored)")
        yield Run(folders, daemon.events())


def test_no_form_is_left_in_the_inbox_or_ignored(daemon_run: Run, media_matrix: Matrix) -> None:
    """The default extensions take every form: nothing stays, nothing is logged as ignored."""
    assert not [e for e in daemon_run.events if e.get("event") == "inbox.ignored"]
    assert daemon_run.folders.files(daemon_run.folders.inbox) == []


@pytest.mark.parametrize("name", [form.name for form in FORMS])
def test_the_daemon_ends_each_form_done_with_its_times_on_the_media_clock(
        daemon_run: Run, media_matrix: Matrix, name: str) -> None:
    """Done, not truncated, the right stream, the speech's length; the fake engine's one segment
    starts at the sample clock's 0, so in every output it starts at the stream's offset."""
    form = BY_NAME[name]
    source = _built(media_matrix, form)
    folders = daemon_run.folders
    assert (folders.done / source.name).exists(), _failure(folders, source.name)
    result = json.loads((folders.outbox / f"{source.stem}.json").read_text(encoding="utf-8"))
    meta = result["transcribed"]
    assert meta["truncated"] is False
    assert meta["audio_track"]["stream"] == form.stream
    expected = media_matrix.seconds + form.lead
    assert expected - LENGTH_SHORT_BY <= meta["audio_seconds"] <= expected + LENGTH_LONG_BY
    offset = meta["audio_offset_seconds"]
    assert abs(offset - form.offset) <= OFFSET_TOLERANCE
    assert result["segments"][0]["start"] == pytest.approx(offset, abs=0.001)
    for suffix in (".srt", ".vtt"):
        text = (folders.outbox / f"{source.stem}{suffix}").read_text(encoding="utf-8")
        assert _first_cue(text) == pytest.approx(offset, abs=0.001), suffix


def _first_cue(subtitles: str) -> float:
    """The start of the first cue of an SRT or a VTT, in seconds."""
    match = CUE_START.search(subtitles)
    assert match is not None, subtitles
    hours, minutes, seconds, millis = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _failure(folders: Folders, name: str) -> str:
    report = folders.failed / f"{name}.error.json"
    return report.read_text(encoding="utf-8") if report.exists() else f"{name} is not in done/"
