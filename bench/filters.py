"""Post-filters (daemon/transcribed/filters.py): what each one changes on the corpus and on
generated hallucination bait, to decide which are on by default (docs/quality.md).

One resident engine (the daemon's own WhisperXEngine and settings) transcribes each English
single-speaker corpus clip once; every filter is then applied to that same transcript, alone and
all together, and the clip's WER is compared with no filter. A filter that makes any clip's WER
worse is not harmless. The engine's decoding is also checked against whisperx's own
`pipe.transcribe` on each clip (the same text: the daemon's decoding is whisperx's, plus the
no-speech probability). Then generated audio (sox pink noise and plucked tones, a phrase looped
by espeak-ng, speech padded with silence) shows what each filter drops where there is no speech
or a loop.

    .venv/bin/python bench/filters.py                      # bundled tiny.en, the corpus + bait
    .venv/bin/python bench/filters.py --limit 10 --no-bait
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from common import (Item, bench_sections, checked, corpus_items, corpus_wer, describe, engine_settings,
                    machine, print_table, require_corpus, text_of)

from transcribed.transcription import filters
from transcribed.transcription.audio import decode
from transcribed.config import Config, Filters
from transcribed.transcription.options import effective_options
from transcribed.engine.base import Request
from transcribed.engine.decoding import Thresholds

#: The filters measured: each alone, then all of them (None: no filter).
VARIANTS: dict[str, filters.FilterRules | None] = {
    "none": None,
    "no_speech": filters.FilterRules(no_speech=True, max_repeats=None),
    "repeats>4": filters.FilterRules(no_speech=False, max_repeats=4),
    "repeats>2": filters.FilterRules(no_speech=False, max_repeats=2),
    "repeats>8": filters.FilterRules(no_speech=False, max_repeats=8),
    "outside_speech>6": filters.FilterRules(no_speech=False, max_repeats=None, max_words_per_speech_second=6.0),
    "outside_speech>4": filters.FilterRules(no_speech=False, max_repeats=None, max_words_per_speech_second=4.0),
    "outside_speech>10": filters.FilterRules(no_speech=False, max_repeats=None, max_words_per_speech_second=10.0),
    "defaults": filters.FilterRules.of(Filters(), effective_options(Config(), PurePosixPath("a.wav"), None)),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    config = checked(bench_sections(args.model))
    settings = engine_settings(config)
    print(f"machine: {machine()}\nsettings: {describe(config, settings)}")
    from transcribed.engine.whisperx_engine import WhisperXEngine

    engine = WhisperXEngine(config, settings)
    engine.load()
    items = corpus_items("en")[: args.limit or None]
    results = {item.path: _transcribe(engine, item.path, settings.batch_size) for item in items}
    if args.save:
        args.save.write_text(json.dumps({str(p): r for p, r in results.items()}, default=float))
    same = _same_as_whisperx(engine, items, results, settings.batch_size)
    print(f"\ncorpus: {len(items)} English clips, {sum(i.seconds for i in items):.1f} s; the engine's "
          f"text equals whisperx's pipe.transcribe on {same}/{len(items)}")
    _report_corpus(items, results)
    if not args.no_bait:
        _report_bait(engine, settings.batch_size)
    return 0


def _parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    result.add_argument("--model", help="model.name (default: the config's, the bundled tiny.en)")
    result.add_argument("--limit", type=int, default=0, help="only the first N clips")
    result.add_argument("--no-bait", action="store_true", help="skip the generated noise/loop set")
    result.add_argument("--save", type=Path, help="write the unfiltered transcripts to this JSON file")
    return result


def _transcribe(engine: Any, path: Path, batch_size: int) -> dict[str, Any]:
    audio = decode(path)
    request = Request(language="en", file=path.name, decoding=Thresholds())
    result = engine.transcribe(audio.samples, request, batch_size, lambda _p: None)
    return dict(result)


def _filtered(result: dict[str, Any], rules: filters.FilterRules | None) -> dict[str, Any]:
    if rules is None:
        return result
    out, _counts = filters.apply(result, rules)  # type: ignore[arg-type]
    return dict(out)


def _same_as_whisperx(engine: Any, items: list[Item], results: dict[Path, dict[str, Any]],
                      batch_size: int) -> int:
    """On how many clips whisperx's own transcribe gives the engine's text, word for word."""
    same = 0
    for item in items:
        audio = decode(item.path)
        theirs = engine.pipeline.transcribe(audio.samples, batch_size=batch_size, language="en")
        same += text_of(theirs) == text_of(results[item.path])
    return same


def _report_corpus(items: list[Item], results: dict[Path, dict[str, Any]]) -> None:
    base = {item.path: _wer(item, text_of(results[item.path])) for item in items}
    rows = []
    for name, rules in VARIANTS.items():
        texts = {item.path: text_of(_filtered(results[item.path], rules)) for item in items}
        wers = {item.path: _wer(item, texts[item.path]) for item in items}
        worse = [item.path.name for item in items if wers[item.path] > base[item.path] + 1e-9]
        better = sum(wers[item.path] < base[item.path] - 1e-9 for item in items)
        changed = sum(texts[item.path] != text_of(results[item.path]) for item in items)
        total = 100 * corpus_wer([(item, texts[item.path]) for item in items])
        rows.append([name, round(total, 2), changed, better, len(worse), ", ".join(worse[:4])])
    print_table(["filter", "WER %", "clips changed", "better", "worse", "worse clips"], rows)


def _wer(item: Item, text: str) -> float:
    return corpus_wer([(item, text)])


def _report_bait(engine: Any, batch_size: int) -> None:
    """Audio that holds no speech, or a loop: what the unfiltered transcript says, and what each
    filter removes."""
    with tempfile.TemporaryDirectory() as folder:
        bait = make_bait(Path(folder))
        rows = []
        for name, path in bait.items():
            started = time.monotonic()
            result = _transcribe(engine, path, batch_size)
            seconds = time.monotonic() - started
            for variant, rules in VARIANTS.items():
                out = _filtered(result, rules)
                rows.append([name, variant, len(out["segments"]), len(text_of(out).split()),
                             text_of(out)[:60], round(seconds, 1) if variant == "none" else ""])
        print()
        print_table(["audio", "filter", "segments", "words", "text", "s"], rows)


def make_bait(folder: Path) -> dict[str, Path]:
    """Generated audio with no speech in it, or a looped phrase, or speech amid silence (sox and
    espeak-ng, as the tests make it)."""
    for tool in ("sox", "espeak-ng"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed for the generated audio")
    out = {"pink noise 20 s": folder / "noise.wav", "plucked tones 20 s": folder / "music.wav",
           "phrase x8": folder / "loop.wav", "speech in 20 s silence": folder / "padded.wav"}
    _run(["sox", "-n", "-r", "16000", str(out["pink noise 20 s"]), "synth", "20", "pinknoise", "vol", "0.5"])
    _run(["sox", "-n", "-r", "16000", str(out["plucked tones 20 s"]), "synth", "0.5", "pluck", "C4",
          "pluck", "E4", "pluck", "G4", "repeat", "39", "remix", "-", "vol", "0.7"])
    phrase = "I will see you tomorrow. " * 8
    _run(["espeak-ng", "-w", str(out["phrase x8"]), phrase])
    speech = folder / "speech.wav"
    _run(["espeak-ng", "-w", str(speech), "The meeting starts at nine in the morning."])
    _run(["sox", str(speech), "-r", "16000", str(out["speech in 20 s silence"]), "pad", "10", "10"])
    out["speech, 20 s tones, speech"] = folder / "between.wav"
    speech16 = folder / "speech16.wav"
    _run(["sox", str(speech), "-r", "16000", "-c", "1", str(speech16)])
    _run(["sox", str(speech16), str(out["plucked tones 20 s"]), str(speech16),
          str(out["speech, 20 s tones, speech"])])
    return out


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True)


if __name__ == "__main__":
    raise SystemExit(main())


