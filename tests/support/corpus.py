"""The shared speech corpus (real recordings with reference transcripts) and WER scoring."""

from __future__ import annotations

import csv
import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Languages written without spaces between words: score them by characters (CER).
CHARACTER_SCORED_LANGUAGES = frozenset({"zh", "ja"})

# A turn or stream label at the start of a multi-speaker reference line ("Diane: ", "A: ", "left: ").
_SPEAKER_PREFIX = re.compile(r"^[\w.-]+:\s*")


@dataclass(frozen=True)
class Clip:
    """One corpus recording with its reference transcript."""

    path: Path
    duration_s: float
    language: str
    speakers: int
    reference: str
    set_name: str  # the top-level corpus folder, e.g. "librispeech" or "multilingual"
    rttm: Path | None = None  # the diarization reference, on multi-speaker clips only


def corpus_dir() -> Path:
    """The corpus folder: $TRANSCRIBED_CORPUS, or `shared/corpus` next to the repository."""
    configured = os.environ.get("TRANSCRIBED_CORPUS")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "corpus"


def corpus_available() -> bool:
    """Whether the corpus and its MANIFEST.tsv are present."""
    return (corpus_dir() / "MANIFEST.tsv").is_file()


def clips(
    language: str | None = None,
    max_duration: float | None = None,
    speakers: int | None = 1,
    sets: set[str] | list[str] | tuple[str, ...] | None = None,
) -> list[Clip]:
    """Corpus clips matching every filter given (None means any), in manifest order."""
    return [
        clip
        for clip in _all_clips(corpus_dir())
        if (language is None or clip.language == language)
        and (max_duration is None or clip.duration_s <= max_duration)
        and (speakers is None or clip.speakers == speakers)
        and (sets is None or clip.set_name in sets)
    ]


def clip(relative_path: str) -> Clip:
    """The clip whose manifest path is `relative_path`, e.g. "multilingual/ru_deepspeech_sample.wav"."""
    for candidate in _all_clips(corpus_dir()):
        if candidate.path == corpus_dir() / relative_path:
            return candidate
    raise KeyError(f"{relative_path} is not in {corpus_dir() / 'MANIFEST.tsv'}")


@functools.lru_cache(maxsize=None)
def _all_clips(root: Path) -> tuple[Clip, ...]:
    """Every row of MANIFEST.tsv as a Clip, read once per corpus folder."""
    with open(root / "MANIFEST.tsv", encoding="utf-8", newline="") as manifest:
        return tuple(_clip_from_row(root, row) for row in csv.DictReader(manifest, delimiter="\t"))


def _clip_from_row(root: Path, row: dict[str, str]) -> Clip:
    """Build a Clip from one manifest row; `reference` is `x.txt` or `x.txt;x.rttm`."""
    reference_files = [root / name for name in row["reference"].split(";")]
    text_file = next(f for f in reference_files if f.suffix == ".txt")
    rttm = next((f for f in reference_files if f.suffix == ".rttm"), None)
    speakers = int(row["speakers"])
    return Clip(
        path=root / row["path"],
        duration_s=float(row["duration_s"]),
        language=row["language"],
        speakers=speakers,
        reference=_reference_text(text_file, strip_speakers=speakers > 1),
        set_name=row["path"].split("/", 1)[0],
        rttm=rttm,
    )


def _reference_text(text_file: Path, strip_speakers: bool) -> str:
    """The reference lines joined by spaces, without speaker labels on multi-speaker files."""
    lines = [line.strip() for line in text_file.read_text(encoding="utf-8").splitlines()]
    if strip_speakers:
        # Only multi-speaker files carry labels; a German long-form line like "Das ist:" must stay.
        lines = [_SPEAKER_PREFIX.sub("", line, count=1) for line in lines]
    return " ".join(line for line in lines if line)


def normalise(text: str, language: str) -> str:
    """Whisper's text normaliser: the English one for "en", the basic one for other languages."""
    normaliser = _english_normaliser() if language == "en" else _basic_normaliser()
    return " ".join(normaliser(text).split())  # the basic normaliser leaves runs of spaces


def word_error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER of `hypothesis` against `reference` after normalising both; CER for zh and ja."""
    import jiwer

    ref, hyp = normalise(reference, language), normalise(hypothesis, language)
    if language in CHARACTER_SCORED_LANGUAGES:
        # The basic normaliser turns punctuation into spaces; spaces are not characters of these scripts.
        return jiwer.cer(ref.replace(" ", ""), hyp.replace(" ", ""))
    return jiwer.wer(ref, hyp)


@functools.lru_cache(maxsize=1)
def _english_normaliser():
    """Whisper's EnglishTextNormalizer, without the British-to-American spelling map."""
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    # The spelling map is Whisper's `normalizer.json`. Neither transformers nor the bundled model
    # dirs in this venv ship it, and it is only on the hub, so British spellings ("colour") are
    # not unified here and count as errors against American references.
    return EnglishTextNormalizer({})


@functools.lru_cache(maxsize=1)
def _basic_normaliser():
    """Whisper's BasicTextNormalizer: lower-case, bracketed text and punctuation removed."""
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer()
