"""The media forms of the conformance matrix: the same speech in the containers, codecs, channel
layouts, sample rates and stream layouts that libraries, phones, DVRs, camcorders and conference
tools produce, each built from one speech WAV with the ffmpeg binary (argument lists, no shell).

A form is data (`Form`): the ffmpeg arguments (inputs and output options, with placeholders the
builder fills in), and what decoding it must give: which audio stream is chosen, where on the
media's clock (the player's time 0 is the earliest start of any stream) the speech's first
sample lands, which channel carries the speech. The matrix test transcribes each form and checks
that it ends done, that its text is within a small WER of the plain WAV's, and that its first
segment starts at `speech_at` plus the speech's own onset in the WAV.

Here: the catalogue (the audio forms in media_forms_audio.py, the video forms in
media_forms_video.py) and what the tests allow a decoded form. The `Form` type and the ffmpeg
input snippets: media_form.py; building, the built matrix and `speech_position`: media_build.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .media_build import Matrix, build_matrix, speech_position
from .media_form import Form
from .media_forms_audio import AUDIO_FORMS
from .media_forms_video import VIDEO_FORMS

__all__ = ["BY_NAME", "FORMS", "LENGTH_LONG_BY", "LENGTH_SHORT_BY", "OFFSET_TOLERANCE", "SPEECH_CLIP",
           "Form", "Matrix", "build_matrix", "sidecar_text", "speech_position"]

#: The corpus clip every form carries: 5.2 s of one LibriSpeech speaker, speaking from the
#: first tenth of a second, which tiny.en transcribes word for word.
SPEECH_CLIP = "librispeech/1988-24833-0003.flac"
#: How far the measured start of the speech on the media's clock may be from `Form.speech_at`:
#: codec priming (AAC 1024 samples, Opus 312), MPEG-TS's 1.4 s base with frame-aligned video.
OFFSET_TOLERANCE = 0.12
#: Every form, audio first.
FORMS: tuple[Form, ...] = (*AUDIO_FORMS, *VIDEO_FORMS)
BY_NAME = {form.name: form for form in FORMS}
#: A form's decoded audio may be this much shorter or longer than its speech (plus its lead):
#: codec priming and padding (AAC, Opus, CAF's 4096-sample packets, ADTS's estimate), WMA's delay.
LENGTH_SHORT_BY, LENGTH_LONG_BY = 0.05, 0.15


def sidecar_text(form: Form) -> str | None:
    """The sidecar (`<file>.yaml`) that gives the form's job its `audio_track`, None for auto."""
    if form.track == "auto":
        return None
    if isinstance(form.track, tuple):
        return f"audio_track: [{', '.join(form.track)}]\n"
    return f"audio_track: {form.track}\n"


def drop_every_form(matrix: Matrix, inbox: Path) -> list[str]:
    """Copy every built form into `inbox` (its sidecar first where its job needs an audio_track);
    the names dropped."""
    for name, path in matrix.built.items():
        sidecar = sidecar_text(BY_NAME[name])
        if sidecar is not None:
            (inbox / f"{path.name}.yaml").write_text(sidecar, encoding="utf-8")
        shutil.copy(path, inbox / path.name)
    return [path.name for path in matrix.built.values()]
