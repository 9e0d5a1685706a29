"""Should a translation be word-aligned, and as English? Measured on the corpus's non-English
recordings with the multilingual base model (docs/languages.md has the figures and the decision).

whisperX aligns text to speech by forcing the text's letters through a wav2vec2 model of one
language. No trained wav2vec2 model can be had offline here (the tests' aligners have random
weights), so the forced alignment measured is Whisper's own (CTranslate2's `align`, what
faster-whisper's word timestamps use: cross-attention heads over the same audio, given the text
to force). The question is the same: given text and audio, where is each word?

For each recording, per Whisper segment (as whisperX aligns per segment):
- the transcript in the spoken language, forced in that language: the control, words that
  were spoken;
- its English translation (task translate), forced as English (language token en).
Each forced word gets Whisper's probability of that word there (how well text and audio agree),
and its place against the speech: the words of the control, merged over pauses under 0.3 s, are
where someone speaks; a word whose middle falls outside is timed in a pause. The English corpus
recordings, forced as English, are a second control.

    .venv/bin/python bench/translation_alignment.py            # the corpus, base model
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from tests.support.corpus import clips  # noqa: E402
from tests.support.models import multilingual_base  # noqa: E402

#: Words shorter than this were squeezed to nothing by the forced alignment.
COLLAPSED_SECONDS = 0.05
#: Pauses shorter than this between spoken words count as speech.
MERGE_GAP_SECONDS = 0.3
SAMPLE_RATE = 16_000


def forced_words(model: Any, audio: Any, start: float, end: float, text: str,
                 language: str) -> list[dict[str, float]]:
    """`text` forced onto audio[start:end] as a transcript in `language`: words with absolute times."""
    from faster_whisper.tokenizer import Tokenizer

    piece = audio[int(start * SAMPLE_RATE): int(end * SAMPLE_RATE)]
    features = model.feature_extractor(piece)
    frames = features.shape[-1]
    padded = features[:, :3000] if frames >= 3000 else np.pad(features, ((0, 0), (0, 3000 - frames)))
    encoded = model.encode(padded)
    tokenizer = Tokenizer(model.hf_tokenizer, True, task="transcribe", language=language)
    tokens = tokenizer.encode(" " + text.strip())
    (words,) = model.find_alignment(tokenizer, [tokens], encoded, min(frames, 3000))
    return [{"start": start + w["start"], "end": start + w["end"], "p": float(w["probability"])}
            for w in words if w["word"].strip()]


def speech_spans(words: list[dict[str, float]]) -> list[tuple[float, float]]:
    """The control's words merged over short pauses: where someone speaks."""
    spans: list[tuple[float, float]] = []
    for w in sorted(words, key=lambda w: w["start"]):
        if spans and w["start"] - spans[-1][1] < MERGE_GAP_SECONDS:
            spans[-1] = (spans[-1][0], max(spans[-1][1], w["end"]))
        else:
            spans.append((w["start"], w["end"]))
    return spans


def figures(words: list[dict[str, float]], spans: list[tuple[float, float]]) -> dict[str, float]:
    """Mean probability, share of collapsed words, share of words timed in a pause."""
    if not words:
        return {"words": 0, "p": float("nan"), "collapsed": float("nan"), "in_pause": float("nan")}
    middles = [(w["start"] + w["end"]) / 2 for w in words]
    in_pause = sum(1 for m in middles if not any(a <= m <= b for a, b in spans))
    return {"words": len(words), "p": statistics.mean(w["p"] for w in words),
            "collapsed": sum(1 for w in words if w["end"] - w["start"] < COLLAPSED_SECONDS) / len(words),
            "in_pause": in_pause / len(words)}


def measure(model: Any, path: Path, language: str) -> dict[str, Any]:
    """The control and, for a non-English recording, its translation forced as English."""
    from faster_whisper import decode_audio

    audio = decode_audio(str(path))
    common = {"language": language, "beam_size": 5, "condition_on_previous_text": False}
    spoken = list(model.transcribe(audio, task="transcribe", **common)[0])
    control = [w for s in spoken for w in forced_words(model, audio, s.start, s.end, s.text, language)]
    spans = speech_spans(control)
    row = {"file": path.name, "language": language, "seconds": round(len(audio) / SAMPLE_RATE, 1),
           "control": figures(control, spans)}
    if language != "en":
        english = list(model.transcribe(audio, task="translate", **common)[0])
        forced = [w for s in english for w in forced_words(model, audio, s.start, s.end, s.text, "en")]
        row["translation"] = figures(forced, spans)
        row["translation_text"] = " ".join(s.text.strip() for s in english)
        row["cue_seconds"] = statistics.mean(s.end - s.start for s in english) if english else 0.0
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--english", type=int, default=4, help="English recordings as a second control")
    args = parser.parse_args()
    from faster_whisper import WhisperModel

    model = WhisperModel(str(multilingual_base()), device="cpu", compute_type="int8", cpu_threads=2)
    foreign = [c for c in clips() if c.language not in ("en", "zh", "ja")]  # no spaces: no words
    english = clips(language="en", max_duration=20, sets={"librispeech"})[: args.english]
    rows = [measure(model, c.path, c.language) for c in [*foreign, *english]]
    print("| recording | lang | s | control p | control in pause | translation p | translation collapsed "
          "| translation in pause | cue s | translation |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c, t = r["control"], r.get("translation")
        tail = (f"{t['p']:.2f} | {t['collapsed']:.0%} | {t['in_pause']:.0%} | {r['cue_seconds']:.1f} | "
                f"{r['translation_text'][:60]}") if t else "| | | |"
        print(f"| {r['file']} | {r['language']} | {r['seconds']} | {c['p']:.2f} | {c['in_pause']:.0%} | {tail} |")
    for part in ("control", "translation"):
        got = [r[part] for r in rows if part in r and r["language"] != "en" and r[part]["words"]]
        if got:
            print(f"{part} (non-English recordings, mean): p {statistics.mean(g['p'] for g in got):.2f}, "
                  f"collapsed {statistics.mean(g['collapsed'] for g in got):.0%}, "
                  f"in pause {statistics.mean(g['in_pause'] for g in got):.0%}")
    got = [r["control"] for r in rows if r["language"] == "en"]
    if got:
        print(f"English control (mean): p {statistics.mean(g['p'] for g in got):.2f}, "
              f"in pause {statistics.mean(g['in_pause'] for g in got):.0%}")


if __name__ == "__main__":
    main()
