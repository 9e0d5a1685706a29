"""Accuracy: the daemon's word error rate against the corpus references, beside a plain whisperx
loop's with the same model and settings, and the Whisper paper's figure where one exists.

Both sides are normalised before scoring: Whisper's English normaliser for English, lower-case
and punctuation stripping (Whisper's basic normaliser) for other languages, characters for zh and
ja. WER is corpus-level per group (total errors / total reference words). The daemon must not be
less accurate than the engine it wraps: daemon - loop <= 0.5 points.

    .venv/bin/python bench/accuracy.py                   # bundled tiny.en, English clips
    .venv/bin/python bench/accuracy.py --model DIR       # a multilingual model: every language
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (Item, bench_sections, checked, corpus_items, corpus_wer, describe, engine_settings,
                    machine, normalise, parser, print_table, require_corpus, scratch_dir)
from harness import DaemonWay, PlainWay, Way, compare

#: Issue 6: the daemon's WER may exceed the plain loop's by at most this many points.
MAX_DIFFERENCE_POINTS = 0.5
#: Whisper paper (Radford et al. 2022), LibriSpeech test-clean WER %, for the models given in issue 6.
PAPER_LIBRISPEECH_TEST_CLEAN = {"tiny.en": 5.6, "base.en": 4.2}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    require_corpus()
    sections = bench_sections(args.model, {"model": {"beam_size": args.beam_size}} if args.beam_size else {})
    config = checked(sections)
    model, language = "fake", "en"
    print(f"machine: {machine()}")
    if args.engine == "whisperx":
        settings = engine_settings(config)
        model, language = settings.model, "en" if _english_only(Path(settings.model_path)) else None
        print(f"settings: {describe(config, settings)}")
    items = [i for i in corpus_items(language, args.max_seconds) if not args.sets or i.set_name in args.sets]
    items = items[: args.limit] if args.limit else items
    if not items:
        raise SystemExit("no corpus clips match")
    print(f"clips: {len(items)}, {sum(i.seconds for i in items):.1f} s of audio")
    with scratch_dir(args.keep) as scratch:
        ways: list[Way] = [DaemonWay("daemon", Path(scratch) / "daemon", sections, args.engine)]
        if args.engine == "whisperx":  # the fake engine has no plain loop to compare with
            ways.append(PlainWay("plain", Path(scratch) / "plain", sections))
        measured = compare(ways, items[0], [items], runs=1)
    daemon = {path: done.text for path, done in measured.done["daemon"].items()}
    loop = {path: done.text for path, done in measured.done.get("plain", measured.done["daemon"]).items()}
    return _report(items, daemon, loop, model, args.strict)


def _english_only(path: Path) -> bool:
    import ctranslate2

    return not ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8").is_multilingual


def _group(item: Item) -> str:
    return item.set_name if item.language == "en" else f"{item.set_name}/{item.language}"


def _report(items: list[Item], daemon: dict[Path, str], loop: dict[Path, str], model: str,
            strict: bool) -> int:
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(_group(item), []).append(item)
    paper = PAPER_LIBRISPEECH_TEST_CLEAN.get(model)
    rows = []
    for name, members in sorted(groups.items()):
        d = 100 * corpus_wer([(i, daemon[i.path]) for i in members])
        lp = 100 * corpus_wer([(i, loop[i.path]) for i in members])
        same = sum(normalise(daemon[i.path], i.language) == normalise(loop[i.path], i.language) for i in members)
        note = f"{paper} (test-clean)" if name == "librispeech" and paper is not None else ""
        rows.append([name, len(members), round(sum(i.seconds for i in members), 1), round(d, 2),
                     round(lp, 2), round(d - lp, 2), f"{same}/{len(members)}", note])
    english = [i for i in items if i.language == "en"]
    totals = []
    for label, members in [("all English", english), ("all", items)]:
        if members and (label == "all English" or len(members) != len(english)):
            d = 100 * corpus_wer([(i, daemon[i.path]) for i in members if i.language not in ("zh", "ja")])
            lp = 100 * corpus_wer([(i, loop[i.path]) for i in members if i.language not in ("zh", "ja")])
            same = sum(normalise(daemon[i.path], i.language) == normalise(loop[i.path], i.language)
                       for i in members)
            totals.append([label, len(members), round(sum(i.seconds for i in members), 1), round(d, 2),
                           round(lp, 2), round(d - lp, 2), f"{same}/{len(members)}", ""])
    print()
    print_table(["set", "clips", "audio s", "daemon WER %", "plain loop WER %", "difference",
                 "same text", f"paper WER % ({model})"], rows + totals)
    worst = max(row[5] for row in rows + totals)
    met = worst <= MAX_DIFFERENCE_POINTS
    print(f"\ndaemon - plain loop: at most {worst:+.2f} points per row (target <= "
          f"{MAX_DIFFERENCE_POINTS}): {'met' if met else 'MISSED'}")
    if paper is not None:
        print(f"paper: Whisper {model}, LibriSpeech test-clean {paper} %. The corpus 'librispeech' set is "
              "9 clips (dev-clean, train-clean-5 and one test-clean): a small sample, not test-clean.")
    return 1 if strict and not met else 0


def _parser() -> argparse.ArgumentParser:
    result = parser(__doc__, model=None, max_seconds=None, engine="whisperx", keep=None, strict=False)
    result.add_argument("--beam-size", type=int, help="default: the config's model.beam_size")
    result.add_argument("--sets", nargs="+", help="only these corpus sets (e.g. librispeech ljspeech)")
    result.add_argument("--limit", type=int, help="only the first N clips")
    return result


if __name__ == "__main__":
    sys.exit(main())
