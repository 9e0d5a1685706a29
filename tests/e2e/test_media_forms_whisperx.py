"""The conformance matrix through the real daemon (WhisperX, the bundled tiny.en, the CPU): every
form this machine can make (tests/support/media_forms.py: 5.2 s of one corpus speaker in each
container, codec, layout, rate and stream layout) ends in done/, its text within a small word error
rate of the same speech given as a 16 kHz WAV, and its first segment where the speech is heard in a
player: the WAV's first segment plus the form's `speech_at` (the audio stream's start on the
media's clock, and any silence inside the stream). Decoding alone, and the fake engine's outputs:
tests/integration/test_media_forms.py.

One daemon (one model load) takes every form; packing is off so that each file's text is its own
(packed, one form of 68 lost a word here, and which files share a window depends on timing),
alignment is off so that a segment's start is the
speech the voice activity step found, not a random test aligner's guess.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.corpus import clip, word_error_rate
from tests.support.daemon import DaemonProcess, Folders, wait_until
from tests.support.media_forms import BY_NAME, FORMS, SPEECH_CLIP, Matrix, drop_every_form

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("corpus")]

#: The form every other is compared with: the speech as a 16 kHz 16-bit mono WAV.
REFERENCE_FORM = "wav_s16_16k_mono"
#: Word error rate against the WAV's own text (measured here: 0.0 for every form).
MAX_WER = 0.1
#: The first segment's start against the WAV's plus `speech_at`, in seconds: the voice activity
#: step's timing (measured here: within 0.22 s, the 8 kHz forms latest); the decoder's own error
#: is under 0.12 s.
FIRST_SEGMENT_TOLERANCE = 0.4


@dataclass
class Transcribed:
    """The daemon's results for every built form."""

    folders: Folders
    matrix: Matrix

    def result(self, name: str) -> dict[str, Any]:
        path = self.matrix.form_file(name)
        if path is None:
            pytest.skip(f"this machine cannot make {name}: {self.matrix.unbuilt[name]}")
        assert (self.folders.done / path.name).exists(), _failure(self.folders, path.name)
        return json.loads((self.folders.outbox / f"{path.stem}.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def transcribed(media_matrix: Matrix, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Transcribed]:
    folders = Folders(tmp_path_factory.mktemp("media-forms-e2e") / "t")
    folders.write_config(packing={"enabled": False}, align={"enabled": False})
    with DaemonProcess(folders.config) as daemon:
        names = drop_every_form(media_matrix, folders.inbox)
        wait_until(lambda: all((folders.done / n).exists() or (folders.failed / n).exists() for n in names),
                   900, "every form in done/ or failed/")
        assert daemon.stop() == 0
    yield Transcribed(folders, media_matrix)


def _text(result: dict[str, Any]) -> str:
    return " ".join(segment["text"].strip() for segment in result["segments"])


@pytest.mark.parametrize("name", [form.name for form in FORMS])
def test_each_form_is_transcribed_like_the_wav_and_timed_on_the_media_clock(
        transcribed: Transcribed, name: str) -> None:
    form, reference = BY_NAME[name], transcribed.result(REFERENCE_FORM)
    result = transcribed.result(name)
    assert reference["segments"] and result["segments"], _text(result)
    wer = word_error_rate(_text(reference), _text(result), "en")
    assert wer <= MAX_WER, (wer, _text(reference), _text(result))
    expected = reference["segments"][0]["start"] + form.speech_at
    assert abs(result["segments"][0]["start"] - expected) <= FIRST_SEGMENT_TOLERANCE, (
        result["segments"][0]["start"], expected, result["transcribed"]["audio_offset_seconds"])


def _failure(folders: Folders, name: str) -> str:
    report = folders.failed / f"{name}.error.json"
    return report.read_text(encoding="utf-8") if report.exists() else f"{name} is not in done/"


def test_the_wavs_text_is_the_speech(transcribed: Transcribed) -> None:
    """The comparison means something: the WAV's own text is the corpus reference's, nearly."""
    text = _text(transcribed.result(REFERENCE_FORM))
    assert word_error_rate(clip(SPEECH_CLIP).reference, text, "en") <= 0.1, text
