"""Short files packed into one Whisper window by the real daemon with tiny.en: each packed file
comes out with the text it gets alone, timestamps inside its own duration, and says it was packed.

Packing is off by default because a packed file's text often differs from its text alone on the
corpus (docs/performance.md: Whisper reads each file in the light of those before it in the
window); these clips are ones whose packed text was measured to be the same."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.alone import texts_alone
from tests.support.corpus import clip
from tests.support.daemon import DaemonProcess, Folders, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

CLIPS = ["cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0870.wav",
         "cmu_sphinx/librivox_sense_and_sensibility_01_austen_64kb-0890.wav",
         "librispeech/1988-24833-0002.flac", "librispeech/1988-24833-0003.flac"]


def test_packed_files_keep_the_text_they_get_alone_and_their_own_time(folders: Folders) -> None:
    folders.write_config(packing={"enabled": True, "max_files": 4, "gap_seconds": 2.0},
                         align={"enabled": False})
    for name in CLIPS:  # all waiting before the start, so they are ready together
        shutil.copy(clip(name).path, folders.inbox / Path(name).name)
    with DaemonProcess(folders.config) as daemon:
        wait_until(lambda: all((folders.done / Path(n).name).exists() for n in CLIPS), 300,
                   "every clip in done/")
        assert daemon.stop() == 0
    alone = texts_alone(CLIPS)
    for name in CLIPS:
        stem = Path(name).stem
        result = json.loads((folders.outbox / f"{stem}.json").read_text())
        assert result["transcribed"].get("packed_files") == len(CLIPS), (stem, result["transcribed"])
        text = " ".join(s["text"].strip() for s in result["segments"])
        assert text == alone[stem], stem
        duration = result["transcribed"]["audio_seconds"]
        for segment in result["segments"]:
            assert 0.0 <= segment["start"] <= segment["end"] <= duration, (stem, segment)
