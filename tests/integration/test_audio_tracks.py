"""Choosing the audio stream of a two-track video (audio.track, routes' and sidecars' audio_track),
decoded for real; the daemon (fake engine) records the chosen stream and why in the metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.bait import two_track_video
from tests.support.daemon import DaemonProcess, Folders, wait_until
from transcribed.errors import BadInput
from transcribed.transcription.audio import decode


@pytest.fixture(scope="module")
def film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """English (stream 0, loud) and German (stream 1, default, a tenth as loud) in one .mkv."""
    return two_track_video(tmp_path_factory.mktemp("film") / "film.mkv", german_volume=0.1)


def _loudness(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def test_auto_takes_the_default_stream_and_languages_pick_by_tag(film: Path) -> None:
    """auto: the German stream (flagged default); [en]: the English one; [fr, de]: German; 0: English."""
    auto, english, german, first = (decode(film, track=t) for t in ("auto", ("en",), ("fr", "de"), 0))
    assert auto.track is not None and auto.track.describe() == {
        "stream": 1, "streams": 2, "language": "ger", "reason": "the stream flagged default"}
    assert (english.track and english.track.number, german.track and german.track.number) == (0, 1)
    assert first.track is not None and first.track.reason == "audio.track is 0"
    # The streams really differ: the English one is about ten times as loud as the German one.
    assert _loudness(english.samples) > 5 * _loudness(auto.samples)
    assert np.array_equal(auto.samples, german.samples) and np.array_equal(english.samples, first.samples)
    assert abs(english.seconds - 5.0) < 0.2 and not english.truncated


def test_a_stream_number_the_file_lacks_is_bad_input(film: Path) -> None:
    with pytest.raises(BadInput, match="but the file has 2 audio streams") as caught:
        decode(film, track=2)
    assert caught.value.kind == "no_such_track"


def _metadata(folders: Folders, stem: str) -> dict:
    return json.loads((folders.outbox / f"{stem}.json").read_text(encoding="utf-8"))["transcribed"]


def test_the_daemon_records_the_stream_from_config_route_and_sidecar(folders: Folders, film: Path) -> None:
    """Config [de] for plain files, a route [en], a sidecar 0 over the route, and a sidecar naming
    a stream that is not there: that one fails as no_such_track, the others record their stream."""
    folders.write_config(audio={"track": ["de"]}, routes={"films": {"audio_track": ["en"]}})
    (folders.inbox / "films").mkdir(parents=True)
    with DaemonProcess(folders.config, engine="fake") as daemon:
        (folders.inbox / "films" / "numbered.mkv.yaml").write_text("audio_track: 0\n")
        (folders.inbox / "missing.mkv.yaml").write_text("audio_track: 3\n")
        for target in ("plain.mkv", "films/routed.mkv", "films/numbered.mkv", "missing.mkv"):
            shutil.copy(film, folders.inbox / f".{Path(target).name}.part")
            (folders.inbox / f".{Path(target).name}.part").rename(folders.inbox / target)
        for name in ("plain.mkv", "films/routed.mkv", "films/numbered.mkv"):
            wait_until(lambda n=name: (folders.done / n).exists(), 60, f"{name} in done/")
        wait_until(lambda: (folders.failed / "missing.mkv.error.json").exists(), 60, "the report")
        daemon.wait_for("job.moved", file="missing.mkv")
    tracks = {Path(stem).name: _metadata(folders, stem)["audio_track"]
              for stem in ("plain", "films/routed", "films/numbered")}
    assert tracks["plain"] == {"stream": 1, "streams": 2, "language": "ger",
                               "reason": "tagged ger: de, the first of de present"}
    assert (tracks["routed"]["stream"], tracks["routed"]["language"]) == (0, "eng")
    assert tracks["numbered"] == {"stream": 0, "streams": 2, "language": "eng", "reason": "audio.track is 0"}
    assert _metadata(folders, "films/routed")["options"]["audio_track"] == ["en"]
    report = json.loads((folders.failed / "missing.mkv.error.json").read_text())
    assert report["error_kind"] == "no_such_track" and "audio.track is 3" in report["error"]
