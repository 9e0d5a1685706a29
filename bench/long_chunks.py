"""One long recording's speech cut into windows three ways, in process, with the engine as it is
(issue 24's candidate "a long file's own speech chunks packed into full windows as short files
are"):

- **the engine's way**: pyannote's stretches merged as whisperx merges them, into chunks spanning
  at most 30 s (pauses kept), each chunk its own window, then the recheck (engine/chunks.py);
- **pieces of L s**: the same stretches merged into pieces spanning at most `L` s, each its own
  window (what packing needs first: two 23 s chunks do not fit one window);
- **pieces of L s, packed**: those pieces laid side by side into shared windows as short files'
  speech is (engine/packing.py: `--gap` s of silence at least, up to 8 a window), each window
  encoded once and each piece decoded on its own from it (engine/shared_window.py).

The VAD is run once per recording (the same for every way); each way's time is its decoding,
the least of `--rounds` rounds, the ways interleaved, the order reversed round by round. It
prints the windows each way encodes, its time, its WER per recording against the clips'
references, and its time over the engine's.

    .venv/bin/python bench/long_chunks.py                          # dev + heldout, pieces 15 and 20 s
    .venv/bin/python bench/long_chunks.py --recordings dev --pieces 10 --rounds 1
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (SAMPLE_RATE, Item, bench_sections, checked, commit, corpus_wer, engine_settings, machine,
                    print_table, require_corpus, scratch_dir, text_of)
from long_recording import recording_named

#: Pieces that may share one window (`packing.max_files` for short files; 4 by default).
MAX_PIECES = 8
#: Windows per model call: the daemon's CPU batch (`model.batch_size: auto` on this CPU).
BATCH = 4


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", default="dev,heldout", help="as bench/long_recording.py names them")
    parser.add_argument("--minutes", type=float, default=8.5, help="dev's length")
    parser.add_argument("--pieces", default="15,20", help="the pieces' longest spans (s), comma-separated")
    parser.add_argument("--gap", type=float, help="the least silence between packed pieces (the config's "
                        "packing.gap_seconds)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    require_corpus()
    from transcribed.engine.whisperx_engine import WhisperXEngine

    config = checked(bench_sections(None))
    gap = config.packing.gap_seconds if args.gap is None else args.gap
    engine = WhisperXEngine(config, engine_settings(config))
    engine.load()
    print(f"machine: {machine()}")
    print(f"commit: {commit()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; least of {args.rounds} "
          f"rounds; packed pieces at least {gap:g} s apart, up to {MAX_PIECES} a window")
    ways: dict[str, Callable[[Any, Any], tuple[str, int]]] = {"the engine's way": _engines_way(engine)}
    for limit in (float(size) for size in args.pieces.split(",")):
        ways[f"pieces of {limit:g} s"] = _pieces_way(engine, limit, None)
        ways[f"pieces of {limit:g} s, packed"] = _pieces_way(engine, limit, gap)
    with scratch_dir(None) as scratch:
        items = [recording_named(Path(scratch), name, args.minutes) for name in args.recordings.split(",")]
        best = {(item.set_name, way): result for item in items
                for way, result in _interleaved(engine, item, ways, args.rounds).items()}
    engines = sum(best[item.set_name, "the engine's way"][0] for item in items)
    rows = []
    for way in ways:
        seconds = sum(best[item.set_name, way][0] for item in items)
        rows.append([way, *(best[item.set_name, way][1] for item in items), round(seconds, 2),
                     round(engines / seconds, 3), *(best[item.set_name, way][2] for item in items)])
    print()
    print_table(["way", *(f"windows, {item.set_name}" for item in items), "decoding s (all)",
                 "x the engine's way", *(f"WER % {item.set_name}" for item in items)], rows)
    return 0


def _interleaved(engine: Any, item: Item, ways: dict[str, Callable[[Any, Any], tuple[str, int]]],
                 rounds: int) -> dict[str, tuple[float, int, float]]:
    """Every way on one recording, round by round, the order reversed each round; per way its
    least seconds, its windows and its WER."""
    from transcribed.transcription.audio import decode

    samples = decode(item.path).samples
    speech = engine.find_speech(samples)
    results: dict[str, tuple[float, int, float]] = {}
    for round_ in range(rounds):
        for way in list(ways) if round_ % 2 == 0 else list(ways)[::-1]:
            started = time.perf_counter()
            text, windows = ways[way](samples, speech)
            seconds = time.perf_counter() - started
            wer = round(100 * corpus_wer([(item, text)]), 2)
            results[way] = (min(seconds, results.get(way, (seconds,))[0]), windows, wer)
            print(f"  {item.set_name}, round {round_ + 1}: {way}: {seconds:.2f} s, {windows} windows, "
                  f"WER {wer} %", flush=True)
    return results


def _engines_way(engine: Any) -> Callable[[Any, Any], tuple[str, int]]:
    from transcribed.engine.base import Request, SpeechOf

    def run(samples: Any, speech: Any) -> tuple[str, int]:
        request = Request(language="en")
        transcript = engine.transcribe_speech([SpeechOf(samples, speech)], request, BATCH, _quiet)[0]
        return text_of(transcript), len(speech)

    return run


def _pieces_way(engine: Any, limit: float, gap: float | None) -> Callable[[Any, Any], tuple[str, int]]:
    """Pieces of at most `limit` s, each decoded alone (gap None) or packed `gap` s apart."""
    from transcribed.engine import packing
    from transcribed.engine.base import Request, SpeechChunk, SpeechOf
    from transcribed.engine.silero import merge_into_chunks

    request = Request(language="en")

    def run(samples: Any, speech: Any) -> tuple[str, int]:
        # The stretches joined while a piece spans at most `limit` s, as the engine joins them at 30 s.
        pieces = merge_into_chunks([stretch for chunk in speech for stretch in chunk["stretches"]], limit)
        items = [SpeechOf(samples[int(piece["start"] * SAMPLE_RATE):int(piece["end"] * SAMPLE_RATE)],
                          [SpeechChunk(start=0.0, end=piece["end"] - piece["start"])]) for piece in pieces]
        if gap is None:
            alone_each = engine.transcribe_speech(items, request, BATCH, _quiet)
            return " ".join(text_of(t) for t in alone_each), len(items)
        transcripts = engine.transcribe_packed(items, request, BATCH, _quiet, gap, MAX_PIECES)
        alone = [i for i, transcript in enumerate(transcripts) if transcript is None]
        rest = engine.transcribe_speech([items[i] for i in alone], request, BATCH, _quiet)
        for i, transcript in zip(alone, rest, strict=True):
            transcripts[i] = transcript
        windows = len(packing.layout([item.speech for item in items], gap, MAX_PIECES)) + len(alone)
        return " ".join(text_of(t) for t in transcripts if t is not None), windows

    return run


def _quiet(_percent: float) -> None:
    """Progress is not reported here."""


if __name__ == "__main__":
    sys.exit(main())
