"""Translation: the language a transcript's text is in, and the English translation a job may
add beside its transcript (`also_english`).

Whisper's `translate` task writes English whatever the spoken language; the result still says
the spoken language (`language`, what Whisper was given or detected), and `text_language` says
what the text is in. A translation is never word-aligned: its English words were never spoken,
so forcing them onto the speech times nothing (docs/languages.md has the measurement); whisperX's
CLI turns alignment off for translation too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..config import Config
from ..engine.base import Request, Transcript
from . import filters
from .diarization import assign_speakers
from .options import Effective
from .outputs import plain_result

#: What Whisper's translate task writes.
TRANSLATION_LANGUAGE = "en"
#: The metadata's `alignment` for a translation.
NOT_ALIGNED = "off: translated text is not aligned"


def text_language(spoken: str | None, task: str) -> str | None:
    """The language of the text: English for a translation, else the spoken one."""
    return TRANSLATION_LANGUAGE if task == "translate" else spoken


def wants_english_too(options: Effective, spoken: Transcript) -> bool:
    """`also_english`, for a transcript with text whose spoken language is not English already."""
    return (options.also_english and options.task == "transcribe" and bool(spoken["segments"])
            and spoken["language"] != TRANSLATION_LANGUAGE)


def translation_request(request: Request, spoken: Transcript) -> Request:
    """The job's request, translating from the transcript's spoken language (detected once)."""
    return dataclasses.replace(request, language=spoken["language"], task="translate")


def finish_translation(english: Transcript, config: Config, options: Effective,
                       speaker_turns: Any) -> tuple[Transcript, dict[str, Any]]:
    """The translation filtered like the transcript, labelled as English, given the
    transcript's speaker turns; and what the metadata says of it."""
    english, counts = filters.apply(plain_result(english), filters.FilterRules.of(config.filters, options))
    english["text_language"] = TRANSLATION_LANGUAGE
    if speaker_turns is not None:
        english = assign_speakers(speaker_turns, english)
    return english, {"segments": len(english["segments"]), "filters": counts}


def english_outputs(written: dict[str, Path]) -> dict[str, Path]:
    """The translation's staged files under their own suffixes (`.en.srt`), beside the
    transcript's (`.srt`): the outbox gets `<stem>.en.srt`, a library `<stem>.en.srt` too."""
    return {f".{TRANSLATION_LANGUAGE}{suffix}": path for suffix, path in written.items()}
