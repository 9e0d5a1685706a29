"""Short files packed into one Whisper window by the real daemon with tiny.en and the default
config (packing on on the CPU): one encoder pass for the window, each file's speech decoded on
its own from it (engine/shared_window.py).

Each packed file says it was packed, keeps the segments it gets alone (the same speech chunks,
at the same times, in its own time, none past its end), and its text stays close to its text alone. It need not be
the same word for word: the encoder reads each piece in the context of the window
(docs/performance.md measures how often a text changes, and the word error rate both ways)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.alone import segments_alone
from tests.support.corpus import clip, word_error_rate
from tests.support.daemon import DaemonProcess, Folders, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

CLIPS = ["cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0870.wav",
         "cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0890.wav",
         "librispeech/1988-24833-0002.flac", "librispeech/1988-24833-0003.flac"]

#: How far a packed file's words may stray from its words alone (word error rate between them).
#: Measured on these clips: 0 for three, 0.2 for one ("ill-disposed" read "old-sposed").
MOST_APART = 0.25


def text(segments: list[dict]) -> str:
    return " ".join(s["text"].strip() for s in segments)


def test_packed_files_keep_their_own_segments_and_close_to_their_own_text(folders: Folders) -> None:
    folders.write_config(align={"enabled": False})  # packing as by default: auto, on the CPU
    for name in CLIPS:  # all waiting before the start, so they are ready together
        shutil.copy(clip(name).path, folders.inbox / Path(name).name)
    with DaemonProcess(folders.config) as daemon:
        wait_until(lambda: all((folders.done / Path(n).name).exists() for n in CLIPS), 300,
                   "every clip in done/")
        assert daemon.stop() == 0
    alone = segments_alone(CLIPS)
    for name in CLIPS:
        stem = Path(name).stem
        result = json.loads((folders.outbox / f"{stem}.json").read_text())
        assert result["transcribed"].get("packed_files") == len(CLIPS), (stem, result["transcribed"])
        duration = result["transcribed"]["audio_seconds"]  # pyannote's last frame may pass the end
        assert [(s["start"], s["end"]) for s in result["segments"]] == [
            (s["start"], min(s["end"], round(duration, 3))) for s in alone[stem]], stem
        assert word_error_rate(text(alone[stem]), text(result["segments"]), "en") <= MOST_APART, (
            stem, text(alone[stem]), text(result["segments"]))
        for segment in result["segments"]:
            assert "avg_logprob" in segment and "no_speech_prob" in segment, (stem, segment)
