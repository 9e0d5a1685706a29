"""Compare: daemons with a switch on and off (or any config values), side by side in one run,
optionally beside the plain whisperx loop and the whisperx command line.

A switch is a config override. Presets: overlap, batching, packing, vad.method, vad.step, beam (off or
the default first); or any key with its values, the first the baseline:
`--switch vad.step_seconds=0.5,1.0,2.5`. Several switches give every combination (or, with
`--one-at-a-time`, the baseline and each value alone). One daemon per variant runs, idle
when not fed; the same recordings go through each, chunk by chunk, in an order reversed from
pass to pass, each chunk `--runs` times, and the least of the runs counts. See harness.py.
The plain loop decodes as whisperx's README does (`whisperx.load_audio`, the ffmpeg command);
`--plain-decoder faster-whisper` (or `both`) gives it faster-whisper's in-process decoder too.

    .venv/bin/python bench/compare.py --switch overlap             # overlap off and on
    .venv/bin/python bench/compare.py --switch batching --set model.batch_size=8 --max-seconds 8
    .venv/bin/python bench/compare.py --switch vad.step --switch beam   # 4 daemons
    .venv/bin/python bench/compare.py --plain --cli --target plain=0.97 --target cli=5 --strict
    .venv/bin/python bench/compare.py --switch vad.method --plain --target plain=1.4
    .venv/bin/python bench/compare.py --switch packing --plain --files 40 --max-seconds 8 --target plain=1.5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (bench_sections, checked, describe, engine_settings, machine, merged, override,
                    parser, scratch_dir, warmup_and_chunks)
from harness import CliWay, DaemonWay, PlainWay, Switch, Way, compare, report, save, variants
from plain import DECODERS


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    common = merged(*(override(text) for text in args.set))
    base = bench_sections(args.model, common)
    chosen = variants([Switch.parse(text) for text in args.switch], args.one_at_a_time)
    for variant in chosen:
        checked(merged(base, variant.sections))  # a wrong key fails here, not in a daemon
    if args.engine == "fake" and (args.plain or args.cli):
        raise SystemExit("--plain and --cli run the real whisperx; not with --engine fake")
    warmup, chunks = warmup_and_chunks(args.folder, args.files, args.max_seconds, args.chunks)
    timed = [item for chunk in chunks for item in chunk]
    print(f"machine: {machine()}")
    if args.engine == "whisperx":
        config = checked(base)
        print(f"settings: {describe(config, engine_settings(config))}")
    print(f"files: {len(timed)} timed, {sum(i.seconds for i in timed):.1f} s of audio, in {len(chunks)} "
          f"chunks, each through every way {args.runs} time(s); warm-up file {warmup.path.name}")
    with scratch_dir(args.keep) as scratch:
        root = Path(scratch)
        ways: list[Way] = [DaemonWay(v.name, root / f"daemon-{n}", merged(base, v.sections), args.engine)
                           for n, v in enumerate(chosen)]
        decoders = DECODERS if args.plain_decoder == "both" else (args.plain_decoder,)
        ways += [PlainWay("plain" if n == 0 else f"plain, {decoder}", root / f"plain-{n}", base, decoder)
                 for n, decoder in enumerate(decoders)] if args.plain else []
        ways += [CliWay("cli", root / "cli", base)] if args.cli else []
        print("ways: " + ", ".join(f"{way.name} ({way.kind})" for way in ways), flush=True)
        if chosen[0].name == "baseline":
            print(f"baseline: {chosen[0].sections}", flush=True)
        measured = compare(ways, warmup, chunks, args.runs)
    references = [chosen[0].name] + (["plain"] if args.plain else [])
    met = report(measured, references, dict(_target(t) for t in args.target))
    if args.save:
        save(measured, args.save)
    return 1 if args.strict and not met else 0


def _target(text: str) -> tuple[str, float]:
    name, sep, value = text.rpartition("=")
    if not sep:
        raise SystemExit(f"--target {text!r}: expected WAY=RATIO, e.g. plain=0.97")
    return name, float(value)


def _parser() -> argparse.ArgumentParser:
    result = parser(__doc__, files=20, max_seconds=30.0, folder=None, model=None, engine="whisperx",
                    keep=None, strict=False)
    result.add_argument("--switch", action="append", default=[],
                        help="a preset (overlap, batching, packing, vad.method, vad.step, beam) or "
                             "section.key=V1,V2; repeatable")
    result.add_argument("--one-at-a-time", action="store_true",
                        help="with several switches: the baseline and each value alone, not every combination")
    result.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="config for every way (e.g. model.batch_size=8); repeatable")
    result.add_argument("--plain", action="store_true", help="also the plain in-process whisperx loop")
    result.add_argument("--plain-decoder", choices=(*DECODERS, "both"), default="whisperx",
                        help="how the plain loop decodes: whisperx.load_audio (its README's loop), "
                             "faster_whisper.decode_audio, or both side by side")
    result.add_argument("--cli", action="store_true", help="also the whisperx command line, once per file")
    result.add_argument("--chunks", type=int, default=2, help="chunks the files are dealt into")
    result.add_argument("--runs", type=int, default=2, help="passes of each chunk through each way")
    result.add_argument("--target", action="append", default=[], metavar="WAY=RATIO",
                        help="each daemon's speed over WAY's at least RATIO (with --strict: exit 1 if not)")
    result.add_argument("--save", type=Path, help="write every way's walls, texts and stages here (JSON)")
    return result


if __name__ == "__main__":
    sys.exit(main())
