"""Short files sharing one model call: each comes out with the text it gets alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.alone import SHORT_CLIPS, texts_alone
from tests.support.corpus import clip
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_random_bytes

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

CLIPS = SHORT_CLIPS


def test_waiting_short_files_share_a_call_and_keep_their_own_text(folders: Folders) -> None:
    """batching.enabled: files waiting together are decoded in shared batches, split back per file."""
    folders.write_config(batching={"enabled": True, "max_files": 8}, packing={"enabled": False},
                         align={"enabled": False})
    for name in CLIPS:  # all waiting before the start, so they are ready together
        shutil.copy(clip(name).path, folders.inbox / Path(name).name)
    write_random_bytes(folders.inbox / "broken.wav", 10_000)  # fails alone, the rest go on
    with DaemonProcess(folders.config) as daemon:
        wait_until(lambda: all((folders.done / Path(n).name).exists() for n in CLIPS), 300,
                   "every clip in done/")
        wait_until(lambda: (folders.failed / "broken.wav.error.json").exists(), 60, "the broken file")
        assert daemon.stop() == 0
    alone = texts_alone(CLIPS)
    shared = []
    for name in CLIPS:
        stem = Path(name).stem
        result = json.loads((folders.outbox / f"{stem}.json").read_text())
        text = " ".join(s["text"].strip() for s in result["segments"])
        assert text == alone[stem], stem
        shared.append(result["transcribed"].get("shared_batch_files", 1))
    assert max(shared) >= 2, shared
