"""Cross-file batching, on and off, in one run: short clips one at a time vs sharing model calls.

Same loaded engine, same clips, interleaved rounds. Prints wall time and audio seconds per wall
second for (b) the serial limit (voice detection and decoding per file, batch 4) and for shared
calls at several batch sizes (voice detection per file, then one decoding call for all), the
ratios against (b), how many files kept exactly their own text, and the time voice detection
alone takes. `batching.enabled: auto` turns sharing on only on a GPU: run this there to see why.

    .venv/bin/python bench/batching.py [--clips 50] [--rounds 2] [--batch-sizes 8,16]

The issue's target: shared calls at least 1.5x the one-at-a-time loop on 50 clips of about 5 s
(the 31 English corpus clips of 3-8 s, average 5.3 s, repeated in order to make 50).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.corpus import clips  # noqa: E402
from transcribed.audio import decode  # noqa: E402
from transcribed.config import Config  # noqa: E402
from transcribed.engine.base import Request  # noqa: E402
from transcribed.engine.hardware import choose, probe  # noqa: E402
from transcribed.engine.models import bundled_model_path  # noqa: E402
from transcribed.engine.whisperx_engine import WhisperXEngine  # noqa: E402


#: Issue 6: shared calls at least this much faster than one file at a time (50 clips of ~5 s).
TARGET = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=50,
                        help="short English corpus clips (3-8 s), repeated in order when more are asked")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-sizes", default="8,16")
    args = parser.parse_args()

    config = Config()
    hardware = probe(0)
    engine = WhisperXEngine(config, choose(config.model, hardware, bundled_model_path(), "bundled"))
    engine.load()
    short = [c for c in clips(language="en", max_duration=8) if c.duration_s >= 3]
    chosen = list(itertools.islice(itertools.cycle(short), args.clips))
    audios = [decode(c.path).samples for c in chosen]
    audio_seconds = sum(len(a) for a in audios) / 16_000
    request = Request(language="en")
    serial_batch = engine.settings.batch_size

    def texts(results: list[dict]) -> list[str]:
        return [" ".join(s["text"] for s in r["segments"]) for r in results]

    def serial() -> list[str]:
        return texts([engine.transcribe(a, request, serial_batch, lambda _p: None) for a in audios])

    def shared(batch_size: int) -> list[str]:
        speech = [engine.find_speech(a) for a in audios]
        return texts(engine.transcribe_speech(list(zip(audios, speech)), request, batch_size,
                                              lambda _p: None))

    def vad_only() -> None:
        for a in audios:
            engine.find_speech(a)

    ways = {f"(b) one file at a time, batch {serial_batch}": serial}
    for size in (int(s) for s in args.batch_sizes.split(",")):
        ways[f"shared calls, batch {size}"] = lambda size=size: shared(size)
    ways["voice detection alone"] = vad_only
    times: dict[str, list[float]] = {name: [] for name in ways}
    same: dict[str, int] = {}
    reference: list[str] = []
    for _round in range(args.rounds):
        for name, way in ways.items():
            started = time.perf_counter()
            out = way()
            times[name].append(time.perf_counter() - started)
            if name.startswith("(b)"):
                reference = out
            elif out is not None:
                same[name] = sum(a == b for a, b in zip(reference, out))

    print(f"{len(audios)} clips, {audio_seconds:.1f} s of audio; {engine.settings.device}, "
          f"{engine.settings.compute_type}, {engine.settings.cpu_threads} threads; median of {args.rounds}")
    base = statistics.median(times[next(iter(ways))])
    print(f"{'way':38} {'wall s':>8} {'audio s/s':>10} {'vs (b)':>7} {'same text':>10}")
    for name, runs in times.items():
        wall = statistics.median(runs)
        same_text = f"{same[name]}/{len(audios)}" if name in same else ""
        print(f"{name:38} {wall:8.2f} {audio_seconds / wall:10.2f} {base / wall:7.2f} {same_text:>10}")
    best = max(base / statistics.median(runs) for name, runs in times.items() if name.startswith("shared"))
    print(f"best shared call vs (b): {best:.2f}x; target >= {TARGET:g}x: {'met' if best >= TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
