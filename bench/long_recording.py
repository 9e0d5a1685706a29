"""One long recording through the daemon: its memory over time, with malloc settings side by side.

A recording of `--minutes` is built from the English corpus clips (looped, with short pauses
between them) and given to a fresh daemon once per variant: the default, and each `--env`
setting (default: MALLOC_ARENA_MAX=2, glibc's per-thread memory pools limited to 2). For each
variant it prints RSS idle with the model loaded, after decoding and voice detection, at the
end, and the peak (VmHWM), with the job's wall time, realtime factor, the word error rate against
the clips' references and whether the text was the same as the default's. A `--set SECTION.KEY=VALUE` variant is a config override instead
(e.g. `vad.method=silero`); with any --set, no --env variant is added unless given.

    .venv/bin/python bench/long_recording.py                      # 20 minutes, 2 variants
    .venv/bin/python bench/long_recording.py --minutes 120 --env MALLOC_ARENA_MAX=2 --env MALLOC_TRIM_THRESHOLD_=131072
    .venv/bin/python bench/long_recording.py --minutes 120 --set vad.method=silero
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from common import (SAMPLE_RATE, Item, Sections, bench_sections, corpus_items, corpus_wer, machine,
                    override, parser, print_table, proc_status_mib, require_corpus, running_daemon,
                    scratch_dir, text_of, yes)
from tests.support.media import write_wav
from transcribed.transcription.audio import decode


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    print(f"machine: {machine()}")
    envs = args.env if args.env is not None or args.set else ["MALLOC_ARENA_MAX=2"]
    variants: dict[str, tuple[dict[str, str], Sections]] = {"default": ({}, {})}
    variants |= {env: (dict([env.split("=", 1)]), {}) for env in envs or []}
    variants |= {change: ({}, override(change)) for change in args.set}
    rows, texts = [], {}
    with scratch_dir(args.keep) as scratch:
        recording = _build_recording(Path(scratch) / f"long-{args.minutes}min.wav", args.minutes)
        print(f"recording: {recording.path.name}, {recording.path.stat().st_size / 2**20:.0f} MiB as "
              "16 kHz wav", flush=True)
        for name, (env, sections) in variants.items():
            row, texts[name] = _run(Path(scratch) / f"daemon-{len(rows)}", recording.path, env, sections,
                                    args.minutes)
            wer = round(100 * corpus_wer([(recording, texts[name])]), 2)
            rows.append([name, *row, wer, "-" if name == "default" else yes(texts[name] == texts["default"])])
            print(f"  {name}: peak {row[3]} MiB, {row[4]} s, WER {wer} %", flush=True)
    print()
    print_table(["variant", "idle MiB", "after decode+VAD MiB", "at end MiB", "peak MiB (process)", "job s",
                 "realtime", "WER %", "same text"], rows)
    return 0


def _build_recording(path: Path, minutes: float) -> Item:
    """Corpus clips end to end, 0.5 s of silence between them, while they fit in `minutes` (the
    rest silence); its reference is theirs, in the same order."""
    items = corpus_items("en", max_seconds=40.0)
    clips = [decode(item.path).samples for item in items]
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.float32)
    target, parts, references, filled = int(minutes * 60 * SAMPLE_RATE), [], [], 0
    for item, samples in itertools.cycle(list(zip(items, clips, strict=True))):
        if filled + len(samples) > target:
            break
        parts += [samples, pause]
        references.append(item.reference or "")
        filled += len(samples) + len(pause)
    audio = np.concatenate(parts or [pause])[:target]
    audio = np.pad(audio, (0, target - len(audio)))
    return Item(write_wav(path, audio), minutes * 60, "en", " ".join(references), "long recording")


def _run(root: Path, recording: Path, env: dict[str, str], sections: Sections,
         minutes: float) -> tuple[list, str]:
    """The recording through a fresh daemon; RSS sampled every second from another thread."""
    with running_daemon(root, bench_sections(None, sections), env=env,
                        kept=("job.decoded", "job.moved")) as (folders, daemon, events):
        pid = daemon.process.pid
        idle = proc_status_mib(pid)
        samples: list[float] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(1.0):
                samples.append(proc_status_mib(pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        shutil.copy(recording, folders.inbox / recording.name)
        timeout = max(600.0, minutes * 60 * 2)
        events.wait(lambda e: e.get("event") == "job.decoded", timeout)
        vad_started = len(samples)
        moved = events.wait(lambda e: e.get("event") == "job.moved", timeout)
        wall = time.monotonic() - started
        done.set()
        end, peak = proc_status_mib(pid), proc_status_mib(pid, "VmHWM")
        if "failed" in moved:
            raise RuntimeError(f"the daemon failed the recording: {daemon.stderr()[-800:]}")
        result = json.loads((folders.outbox / f"{recording.stem}.json").read_text())
        timings = result["transcribed"]["timings"]
        after_vad_index = vad_started + int(timings.get("vad", 0.0) or 0.0) + 1
        after_vad = samples[min(after_vad_index, len(samples) - 1)] if samples else end
    row = [round(idle), round(after_vad), round(end), round(peak), round(wall), f"{minutes * 60 / wall:.1f}x"]
    return row, text_of(result)


def _parser() -> argparse.ArgumentParser:
    result = parser(__doc__, keep=None)
    result.add_argument("--minutes", type=float, default=20.0, help="length of the recording")
    result.add_argument("--env", action="append", default=None,
                        help="a variant: NAME=VALUE in the daemon's environment (repeatable; "
                             "default MALLOC_ARENA_MAX=2)")
    result.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a variant: this config override (repeatable), e.g. vad.method=silero")
    return result


if __name__ == "__main__":
    sys.exit(main())
