"""What one job, one inbox subfolder or one media library may set: a sidecar's keys (`JobOptions`),
a route's (`Route`: those plus what only the daemon's own config may say), a library's (`Library`:
a route over a folder of media). The daemon-wide sections are `schema`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..languages import Language
from .models import ModelOptions

Auto = Literal["auto"]


@dataclass(frozen=True)
class JobOptions:
    """Options one job may override, from an inbox subfolder's route or a sidecar file."""

    #: The spoken language: a code (de) or whisperX's name of it (German); null: detected.
    language: Language | None = None
    #: translate: English text from speech in any language (Whisper's translation).
    task: Literal["transcribe", "translate"] | None = None
    #: Also an English translation beside the transcript (`<stem>.en.<format>`), when the
    #: spoken language is not English: a film's own subtitles and English ones in one job.
    also_english: bool | None = None
    initial_prompt: str | None = None
    hotwords: str | None = None
    diarize: bool | None = None
    #: Word timestamps for this file: true (a missing model fails the job, the plain transcript
    #: kept), false (none); null: `align.enabled`.
    align: bool | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    formats: tuple[str, ...] | None = None
    #: As `audio.track`.
    audio_track: Auto | int | tuple[Language, ...] | None = None
    #: As the `model` keys of the same names.
    no_speech_threshold: float | None = None
    log_prob_threshold: float | None = None
    compression_ratio_threshold: float | None = None
    temperature_fallback: bool | None = None
    condition_on_previous_text: bool | None = None
    #: The subtitle writers' layout, as the `outputs` keys of the same names.
    max_line_width: int | None = None
    max_line_count: int | None = None
    highlight_words: bool | None = None
    #: Another Whisper model for these files: {name, compute_type, beam_size} (a sidecar may name
    #: only a model the daemon's config offers: docs/configuration.md#several-models).
    model: ModelOptions | None = None


@dataclass(frozen=True)
class Route(JobOptions):
    """An inbox subfolder's options: a job's options plus what only the daemon's own config may
    say (a sidecar is parsed as plain JobOptions, so it cannot name these)."""

    #: Which outcomes fire the hooks for files in this folder (null: `hooks.events`; []: none).
    hooks_events: tuple[str, ...] | None = None
    #: A file of words for these files, one a line, joined after `hotwords` (as
    #: `model.hotwords_file`; a path, so never from a sidecar).
    hotwords_file: Path | None = None


@dataclass(frozen=True)
class Library(Route):
    """A media library folder (Plex, Jellyfin, Emby): subtitles are written beside its media,
    which is never moved or changed (docs/libraries.md). Its job options are a route's."""

    #: The folder: absolute, or relative to the config file's folder.
    path: Path | None = None
    #: The subtitle languages wanted. A file with a subtitle in each is passed by; with one
    #: language, it is also Whisper's (unless `language` says otherwise); with several, Whisper
    #: detects the spoken one and that subtitle is written.
    languages: tuple[Language, ...] = ("en",)
    #: A word between the language and the extension: `transcribed` gives Movie.en.transcribed.srt
    #: (told apart from others' subtitles), `forced` gives Movie.en.forced.srt.
    tag: str | None = None
    #: Opt-in: a subtitle stream in a wanted language inside the container counts too (PyAV
    #: reads the header once per file; the answer is kept in the ledger).
    check_streams: bool = False
    #: The file extensions taken here (null: `watch.extensions`), e.g. video only: [mkv, mp4, avi],
    #: so a show's theme.mp3 gets no subtitle.
    extensions: tuple[str, ...] | None = None
