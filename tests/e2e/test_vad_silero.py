"""vad.method: silero, through a real daemon: faster-whisper's ONNX Silero finds the speech (no
hub, no download), pyannote is never loaded, and the text is tiny.en's usual on real speech."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.support.corpus import clip, word_error_rate
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media import write_silence_wav

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

SPEECH = "librispeech/1088-134315-0000.wav"


def test_silero_finds_the_speech_and_a_silent_file_has_none(folders: Folders) -> None:
    folders.write_config(vad={"method": "silero"}, align={"enabled": False})
    with DaemonProcess(folders.config) as daemon:
        shutil.copy(clip(SPEECH).path, folders.inbox / "talk.wav")
        write_silence_wav(folders.inbox / "quiet.wav", 5.0)
        wait_until(lambda: (folders.done / "talk.wav").exists() and (folders.done / "quiet.wav").exists(),
                   180, "both files in done/")
        assert daemon.stop() == 0
    talk = json.loads((folders.outbox / "talk.json").read_text())
    text = " ".join(s["text"] for s in talk["segments"])
    assert word_error_rate(clip(SPEECH).reference, text, "en") < 0.25, text
    assert json.loads((folders.outbox / "quiet.json").read_text())["segments"] == []
    printed = [e.get("text", "") for e in daemon.events() if e["event"] == "library.print"]
    # whisperx says so when it is handed a VAD and loads none of its own (no pyannote model)
    assert any("manually assigned vad_model" in line for line in printed), printed
