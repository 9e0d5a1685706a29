"""Overlap with the real WhisperX pipeline: files decoded and their speech found ahead, on the
prefetch thread, come out with the text each gets alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.alone import SHORT_CLIPS as CLIPS
from tests.support.alone import texts_alone
from tests.support.corpus import clip
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_random_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]


def test_files_prepared_ahead_keep_their_own_text(folders: Folders) -> None:
    folders.write_config(overlap={"enabled": True}, batching={"enabled": False}, packing={"enabled": False},
                         align={"enabled": False})
    for name in CLIPS[:2]:
        shutil.copy(clip(name).path, folders.inbox / Path(name).name)
    write_random_bytes(folders.inbox / "broken.wav", 10_000)  # its failure ahead changes nothing
    for name in CLIPS[2:]:
        shutil.copy(clip(name).path, folders.inbox / Path(name).name)
    with DaemonProcess(folders.config) as daemon:
        wait_until(lambda: all((folders.done / Path(n).name).exists() for n in CLIPS), 300,
                   "every clip in done/")
        wait_until(lambda: (folders.failed / "broken.wav.error.json").exists(), 60, "the broken file")
        assert daemon.stop() == 0
        assert not [e for e in daemon.events() if e.get("level") in ("error", "critical")
                    and e.get("file") != "broken.wav"]
    alone = texts_alone(CLIPS)
    ahead = []
    for name in CLIPS:
        stem = Path(name).stem
        result = json.loads((folders.outbox / f"{stem}.json").read_text())
        assert " ".join(s["text"].strip() for s in result["segments"]) == alone[stem], stem
        ahead.append(result["transcribed"].get("prepared_ahead", False))
    assert sum(ahead) >= 3, ahead
    assert json.loads((folders.failed / "broken.wav.error.json").read_text())["stage"] == "decode"
