"""Overlap on and off, in one run: the daemon with the next file decoded ahead, and without.

Two daemons with the same model and settings run side by side (idle when not fed), one with
`overlap.enabled: true`, one with `false`. The same recordings go through each, chunk by chunk,
in the order off, on, on, off (then on, off, off, on), which cancels drift in the host's load.
Prints audio seconds per wall second for each, the ratio on/off, how many files came out with
the same text both ways, and peak RSS. `overlap.enabled: auto` turns it on only on a GPU: run
this there to see why (on a 2-core CPU, decoding ahead competes with the model for the cores).

    .venv/bin/python bench/overlap.py                  # 20 short corpus clips
    .venv/bin/python bench/overlap.py --folder DIR     # your own recordings
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from common import (Item, daemon_settings, describe, machine, median, print_table, proc_status_mib,
                    running_daemon, scratch_dir, text_of, warmup_and_chunks)

WAYS = {"off": False, "on": True}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warmup, chunks = warmup_and_chunks(args.folder, args.files, args.max_seconds, args.chunks)
    timed = [item for chunk in chunks for item in chunk]
    settings = daemon_settings(args.model)
    print(f"machine: {machine()}")
    print(f"settings: {describe(settings)}; batching off in both")
    print(f"files: {len(timed)} timed, {sum(i.seconds for i in timed):.1f} s of audio, in "
          f"{len(chunks)} chunks; warm-up file {warmup.path.name}", flush=True)
    walls: dict[str, list[tuple[int, float]]] = {way: [] for way in WAYS}
    texts: dict[str, dict[str, str]] = {way: {} for way in WAYS}
    peaks: dict[str, float] = {}
    with scratch_dir(args.keep) as scratch, \
            _daemon(Path(scratch) / "off", settings, False) as off, \
            _daemon(Path(scratch) / "on", settings, True) as on:
        daemons = {"off": off, "on": on}
        for way, daemon in daemons.items():
            _feed(daemon, [warmup], "warmup", {})
        for index, chunk in enumerate(chunks):
            order = ("off", "on", "on", "off") if index % 2 == 0 else ("on", "off", "off", "on")
            for number, way in enumerate(order):
                started = time.perf_counter()
                _feed(daemons[way], chunk, f"c{index}p{number}", texts[way])
                walls[way].append((index, time.perf_counter() - started))
            print(f"  chunk {index + 1}/{len(chunks)} ({len(chunk)} files, {' '.join(order)}): " +
                  ", ".join(f"{w} {' '.join(f'{s:.1f}' for i, s in walls[w] if i == index)} s"
                            for w in WAYS), flush=True)
        for way, (_folders, daemon, _events) in daemons.items():
            peaks[way] = proc_status_mib(daemon.process.pid, "VmHWM")
    return _report(chunks, walls, texts, peaks)


def _daemon(root: Path, settings, overlap: bool):
    return running_daemon(root, settings=settings, transcribe_only=True,
                          config={"overlap": {"enabled": overlap}, "batching": {"enabled": False}},
                          kept=("job.moved",))


def _feed(daemon, chunk: list[Item], tag: str, texts: dict[str, str]) -> None:
    """Copy the chunk into the daemon's inbox; wait until every file has landed; keep its text."""
    folders, _process, events = daemon
    names = {f"{tag}-{item.path.name}": item for item in chunk}
    for name, item in names.items():
        shutil.copy(item.path, folders.inbox / name)
    for _ in names:
        event = events.wait(lambda e: e.get("file") in names, timeout=600)
        name = event["file"]
        if "failed" in event:
            raise RuntimeError(f"the daemon failed {name}: see its log")
        result = json.loads((folders.outbox / f"{Path(name).stem}.json").read_text())
        texts.setdefault(names[name].path.name, text_of(result))


def _report(chunks: list[list[Item]], walls: dict[str, list[tuple[int, float]]],
            texts: dict[str, dict[str, str]], peaks: dict[str, float]) -> int:
    audio = [sum(i.seconds for i in chunk) for chunk in chunks]
    speed = {w: sum(audio[i] for i, _ in walls[w]) / sum(s for _, s in walls[w]) for w in WAYS}
    per_chunk = {w: [audio[i] * 2 / sum(s for j, s in walls[w] if j == i) for i in range(len(chunks))]
                 for w in WAYS}
    print()
    print_table(["overlap", "passes", "wall s", "audio s / wall s", "peak RSS MiB"],
                [[w, len(walls[w]), round(sum(s for _, s in walls[w]), 1), round(speed[w], 2),
                  round(peaks[w])] for w in WAYS])
    ratios = [a / b for a, b in zip(per_chunk["on"], per_chunk["off"])]
    same = sum(texts["on"].get(name) == text for name, text in texts["off"].items())
    print()
    print(f"on/off: {speed['on'] / speed['off']:.3f} (median of chunks {median(ratios):.3f}; "
          f"chunks {' '.join(f'{r:.3f}' for r in ratios)})")
    print(f"same text both ways: {same}/{len(texts['off'])}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20, help="timed files (one more warms up)")
    parser.add_argument("--chunks", type=int, default=2, help="chunks, each run four times")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longest corpus clip used")
    parser.add_argument("--folder", type=Path, help="your own recordings instead of the corpus")
    parser.add_argument("--model", type=Path, help="a CTranslate2 model directory (default: tiny.en)")
    parser.add_argument("--keep", type=Path, help="keep the daemons' folders here")
    return parser


if __name__ == "__main__":
    sys.exit(main())
