"""The real engine on a model downloaded by its name: `model.name: large-v3-turbo` from a local hub
(tests/support/hub.py serves the bundled tiny.en as its repo), loaded by WhisperX from the
checked snapshot and transcribing; then, with the hub gone, loaded from the cache. The download's
faults (killed, cut, damaged, a full disk) are tests/integration/test_model_download.py's.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.hub import NAMED_MODEL, local_hub, storage
from transcribed.doctor import SAMPLE

pytestmark = pytest.mark.e2e

def transcribe(daemon: DaemonProcess, folders: Folders, name: str) -> str:
    """Drop the doctor's clip ("go forward ten meters") into the inbox; the text that comes out."""
    shutil.copy(SAMPLE, folders.inbox / name)
    result = folders.outbox / f"{Path(name).stem}.json"
    wait_until(result.exists, 120, f"{result.name} in the outbox")
    return " ".join(s["text"] for s in json.loads(result.read_text())["segments"]).lower()


def test_the_named_model_is_downloaded_then_loaded_by_whisperx_and_later_from_the_cache_alone(
        folders: Folders) -> None:
    folders.write_config(model={"name": NAMED_MODEL, "language": "en", "download_dir": "models"},
                         align={"enabled": False})
    with local_hub() as hub:
        env = hub.env(folders.root / "hf-home")
        snapshot = storage(folders.root / "models", hub.repo_id) / "snapshots" / hub.commit
        with DaemonProcess(folders.config, env=env) as daemon:
            assert daemon.wait_for("model.downloaded")["path"] == str(snapshot)
            assert daemon.wait_for("model.loading")["path"] == str(snapshot)
            assert "forward" in transcribe(daemon, folders, "first.wav")
            assert daemon.stop() == 0
        hub.server.stop()
        with DaemonProcess(folders.config, env=env) as daemon:
            assert daemon.wait_for("model.resolved")["source"] == "cached"
            assert daemon.wait_for("model.loading")["path"] == str(snapshot)
            assert "forward" in transcribe(daemon, folders, "second.wav")
            assert daemon.stop() == 0
