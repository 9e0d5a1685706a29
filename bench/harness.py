"""One harness for side-by-side comparisons: a switch is a config override, not a new script.

A *way* is something that transcribes a chunk of recordings: a daemon with some config
(`DaemonWay`, fed through its inbox, timed until the last result has landed), the plain
whisperx loop built from the engine's settings (`PlainWay`), or the whisperx command line once
per file (`CliWay`). Every way is started before the clock runs (daemons side by side, idle
when not fed) and warmed up with one file. Then each chunk goes through every way `runs` times,
the order reversed from one pass to the next (A B, B A, ...), which cancels drift in the host's
load; a way's time for a chunk is the least of its runs. `report` prints, per way, audio
seconds per wall second, the ratio against each reference way, WER where the recordings have
references, how many texts equal the first way's, peak RSS and GPU memory, and where each
way's time went as it reports it.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml
from common import (Folders, Item, Sections, checked, corpus_wer, engine_settings, event_time,
                    gpu_mib, median, merged, normalise, print_table, proc_status_mib, start_daemon,
                    text_of, yes)
from plain import PlainLoop, cli_environment, run_cli

#: Switches by name: the config key and its values, the first the baseline.
PRESETS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "overlap": ("overlap.enabled", (False, True)),
    "batching": ("batching.enabled", (False, True)),
    "packing": ("packing.enabled", (False, True)),
    "vad.method": ("vad.method", ("pyannote", "silero")),
    "vad.step": ("vad.step_seconds", (0.5, 2.5)),
    "beam": ("model.beam_size", (5, 1)),
}
#: The daemon events a DaemonWay reads: where a job's time went between its stages.
DAEMON_EVENTS = ("job.claimed", "job.started", "job.done", "job.moved")


# --- what is compared ------------------------------------------------------------------------

@dataclass(frozen=True)
class Switch:
    """A config key (section.key) and the values to compare, the first the baseline."""

    key: str
    values: tuple[Any, ...]

    @classmethod
    def parse(cls, text: str) -> Switch:
        """A preset name (overlap, batching, vad.method, ...) or `section.key=V1,V2[,...]`."""
        if text in PRESETS:
            return cls(*PRESETS[text])
        key, sep, values = text.partition("=")
        if not sep or "." not in key or "," not in values:
            raise SystemExit(f"--switch {text!r}: a preset ({', '.join(PRESETS)}) or "
                             "section.key=V1,V2 (e.g. vad.step_seconds=0.5,2.5)")
        return cls(key.strip(), tuple(yaml.safe_load(v) for v in values.split(",")))


@dataclass(frozen=True)
class Variant:
    """One daemon configuration: its name in the tables and its config sections."""

    name: str
    sections: Sections


def variants(switches: list[Switch], one_at_a_time: bool = False) -> list[Variant]:
    """Every combination of the switches' values (the first: all baselines), or with
    `one_at_a_time` the baseline (named so) and then each other value of each switch alone."""
    if not switches:
        return [Variant("daemon", {})]
    base = {s.key: s.values[0] for s in switches}
    if one_at_a_time:
        combos = [base] + [{**base, s.key: v} for s in switches for v in s.values[1:]]
    else:
        combos = [dict(zip(base, values)) for values in itertools.product(*(s.values for s in switches))]
    result = []
    for number, combo in enumerate(combos):
        shown = combo if not one_at_a_time else {k: v for k, v in combo.items() if v != base[k]}
        name = ", ".join(f"{key}={_plain(value)}" for key, value in shown.items()) or "baseline"
        result.append(Variant(name, merged(*({key.split(".", 1)[0]: {key.split(".", 1)[1]: value}}
                                             for key, value in combo.items()))))
    return result


def _plain(value: Any) -> str:
    return str(yaml.safe_dump(value, default_flow_style=True)).strip().removesuffix("...").strip()


# --- the ways --------------------------------------------------------------------------------

@dataclass
class Done:
    """One file through one way: its text, and the seconds of each stage the way reports."""

    text: str
    stages: dict[str, float] = field(default_factory=dict)


class Way(Protocol):
    """Something that transcribes chunks of recordings, started once and closed at the end."""

    name: str
    kind: str

    def start(self) -> None:
        """Load what it needs (blocking until ready); not timed."""

    def run(self, items: list[Item], tag: str) -> dict[Path, Done]:
        """Every item transcribed (returns when all are done); `tag` makes names unique."""

    def peaks(self) -> tuple[float | None, float | None]:
        """Peak RSS MiB and peak GPU MiB (None where not known)."""

    def close(self) -> None:
        """Stop and release it (also after a failed start)."""


class DaemonWay:
    """A daemon with these config sections; a chunk is copied into its inbox at once."""

    kind = "daemon"

    def __init__(self, name: str, root: Path, sections: Sections, engine: str = "whisperx",
                 env: dict[str, str] | None = None) -> None:
        self.name, self.root, self.sections, self.engine, self.env = name, root, sections, engine, env
        self.started: tuple[Any, ...] | None = None
        self.gpu_peak: float | None = None

    def start(self) -> None:
        self.started = start_daemon(self.root, self.sections, self.engine, DAEMON_EVENTS, self.env)

    def run(self, items: list[Item], tag: str) -> dict[Path, Done]:
        assert self.started is not None
        folders, _daemon, events = self.started
        names = {f"{tag}-{item.path.name}": item for item in items}
        for name, item in names.items():
            shutil.copy(item.path, folders.inbox / name)
        seen: dict[str, dict[str, float]] = {name: {} for name in names}
        results: dict[Path, Done] = {}
        while len(results) < len(names):
            event = events.wait(lambda e: e.get("file") in names, timeout=900)
            name = event["file"]
            seen[name][event["event"]] = event_time(event)
            if event["event"] == "job.moved":
                if "failed" in event:
                    raise RuntimeError(f"{self.name}: the daemon failed {name}; see its log")
                results[names[name].path] = self._done(folders, name, seen[name])
        self._sample_gpu()
        return results

    @staticmethod
    def _done(folders: Folders, name: str, at: dict[str, float]) -> Done:
        """The text of the outbox .json, its stage timings, and the daemon's own steps between."""
        result = json.loads((folders.outbox / f"{Path(name).stem}.json").read_text(encoding="utf-8"))
        timings = result.get("transcribed", {}).get("timings", {})
        stages = {stage: float(seconds) for stage, seconds in timings.items() if stage != "total"}
        if {"job.claimed", "job.started"} <= at.keys():
            stages["claimed -> started"] = at["job.started"] - at["job.claimed"]
        if {"job.done", "job.moved"} <= at.keys():
            stages["done -> moved"] = at["job.moved"] - at["job.done"]
        return Done(text_of(result), stages)

    def _sample_gpu(self) -> None:
        if self.started is not None and (used := gpu_mib(self.started[1].process.pid)) is not None:
            self.gpu_peak = max(self.gpu_peak or 0.0, used)

    def peaks(self) -> tuple[float | None, float | None]:
        assert self.started is not None
        return proc_status_mib(self.started[1].process.pid, "VmHWM"), self.gpu_peak

    def close(self) -> None:
        if self.started is None:
            return
        daemon = self.started[1]
        try:
            daemon.stop(timeout=120)
        finally:
            daemon.kill()


class PlainWay:
    """The plain whisperx loop (plain.py), reading the config file a daemon would read."""

    kind = "plain"

    def __init__(self, name: str, root: Path, sections: Sections, decoder: str = "whisperx") -> None:
        self.name, self.root, self.sections, self.decoder = name, root, sections, decoder
        self.loop: PlainLoop | None = None
        self.gpu_peak: float | None = None

    def start(self) -> None:
        folders = Folders(self.root)
        folders.write_config(**self.sections)
        self.loop = PlainLoop(folders.config, self.root / "plain-loop.log", self.decoder)
        print(f"{self.name}: audio decoded by {self.loop.decoder}", flush=True)

    def run(self, items: list[Item], tag: str) -> dict[Path, Done]:
        assert self.loop is not None
        results = {}
        for item in items:
            answer = self.loop.transcribe(item.path)
            results[item.path] = Done(answer["text"], {
                "decode": answer["decode_s"], "vad + transcribe": answer["wall_s"] - answer["decode_s"]})
        if (used := gpu_mib(self.loop.process.pid)) is not None:
            self.gpu_peak = max(self.gpu_peak or 0.0, used)
        return results

    def peaks(self) -> tuple[float | None, float | None]:
        assert self.loop is not None
        return self.loop.peak_rss_mib(), self.gpu_peak

    def close(self) -> None:
        if self.loop is not None:
            self.loop.close()


class CliWay:
    """`whisperx FILE` once per file with the engine's settings: start-up paid every time."""

    kind = "cli"

    def __init__(self, name: str, root: Path, sections: Sections) -> None:
        self.name, self.root, self.sections = name, root, sections
        self.rss_peak = 0.0

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config = checked(self.sections)
        self.settings = engine_settings(self.config)
        self.env, self.ffmpeg = cli_environment(self.root)

    def run(self, items: list[Item], tag: str) -> dict[Path, Done]:
        results = {}
        for item in items:
            wall, peak, text = run_cli(item.path, self.config, self.settings, self.root / "out",
                                       self.env, self.root / "cli.log")
            self.rss_peak = max(self.rss_peak, peak)
            results[item.path] = Done(text, {"whole process": wall})
        return results

    def peaks(self) -> tuple[float | None, float | None]:
        return self.rss_peak, None

    def close(self) -> None:
        pass


# --- the run ---------------------------------------------------------------------------------

@dataclass
class Measured:
    """What every way did: wall seconds per chunk and run, the first run's results, stages."""

    names: list[str]
    kinds: dict[str, str]
    chunks: list[list[Item]]
    walls: dict[str, list[list[float]]]
    done: dict[str, dict[Path, Done]]
    stages: dict[str, dict[str, list[float]]]
    peaks: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)

    def chunk_seconds(self, name: str) -> list[float]:
        """The least of the runs, chunk by chunk."""
        return [min(runs) for runs in self.walls[name]]

    def speed(self, name: str) -> float:
        """Audio seconds per wall second over all chunks (each at its least of the runs)."""
        return sum(_audio(c) for c in self.chunks) / sum(self.chunk_seconds(name))


def compare(ways: list[Way], warmup: Item, chunks: list[list[Item]], runs: int) -> Measured:
    """Start every way side by side, warm each up with `warmup`, then every chunk through every
    way `runs` times, the order reversed pass by pass; every way is closed at the end."""
    measured = Measured([w.name for w in ways], {w.name: w.kind for w in ways}, chunks,
                        {w.name: [[] for _ in chunks] for w in ways}, {w.name: {} for w in ways},
                        {w.name: {} for w in ways})
    try:
        with ThreadPoolExecutor(max_workers=len(ways), thread_name_prefix="bench-start") as pool:
            list(pool.map(lambda way: way.start(), ways))
        for way in ways:
            way.run([warmup], "warmup")
        for index, chunk in enumerate(chunks):
            for run in range(runs):
                for way in ways if (index + run) % 2 == 0 else ways[::-1]:
                    started = time.perf_counter()
                    done = way.run(chunk, f"c{index}r{run}")
                    measured.walls[way.name][index].append(time.perf_counter() - started)
                    _keep(measured, way.name, done)
            print(f"  chunk {index + 1}/{len(chunks)} ({len(chunk)} files, {_audio(chunk):.0f} s): " +
                  ", ".join(f"{w.name} {min(measured.walls[w.name][index]):.1f} s" for w in ways),
                  flush=True)
        measured.peaks = {way.name: way.peaks() for way in ways}
    finally:
        for way in ways:
            way.close()
    return measured


def _keep(measured: Measured, name: str, done: dict[Path, Done]) -> None:
    for path, result in done.items():
        measured.done[name].setdefault(path, result)
        for stage, seconds in result.stages.items():
            measured.stages[name].setdefault(stage, []).append(seconds)


def _audio(chunk: list[Item]) -> float:
    return sum(item.seconds for item in chunk)


# --- the report ------------------------------------------------------------------------------

def report(measured: Measured, references: list[str], targets: dict[str, float]) -> bool:
    """The tables; True when every target is met (each daemon way's speed over the named
    reference way's at least the figure given)."""
    m, first = measured, measured.names[0]
    items = [item for chunk in m.chunks for item in chunk]
    gpu = any(p[1] is not None for p in m.peaks.values())
    rows = []
    for name in m.names:
        texts = m.done[name]
        same = sum(normalise(texts[i.path].text, i.language) == normalise(m.done[first][i.path].text, i.language)
                   for i in items)
        rows.append([name, round(sum(m.chunk_seconds(name)), 1), round(m.speed(name), 2),
                     *(round(m.speed(name) / m.speed(ref), 3) for ref in references),
                     round(100 * corpus_wer([(i, texts[i.path].text) for i in items]), 2),
                     f"{same}/{len(items)}", _round(m.peaks[name][0])] + ([_round(m.peaks[name][1])] if gpu else []))
    runs = len(m.walls[first][0])
    print()
    print_table([f"way (least of {runs} run{'s' * (runs > 1)} per chunk)", "wall s", "audio s / wall s",
                 *(f"x {ref}" for ref in references), "WER %", f"same text as {first}", "peak RSS MiB"]
                + (["peak GPU MiB"] if gpu else []), rows)
    for ref in references:
        for name in m.names:
            if name != ref and m.kinds[name] == "daemon":
                ratios = [r / w for r, w in zip(m.chunk_seconds(ref), m.chunk_seconds(name))]
                print(f"{name} / {ref}, chunk by chunk: {' '.join(f'{r:.3f}' for r in ratios)} "
                      f"(median {median(ratios):.3f})")
    _stages(m)
    return _targets(m, targets)


def _stages(m: Measured) -> None:
    stages = list(dict.fromkeys(s for name in m.names for s in m.stages[name]))
    print()
    print_table(["ms per job, mean (as each way reports it)", *m.names],
                [[stage, *(_ms(m.stages[name].get(stage)) for name in m.names)] for stage in stages])
    print("(a shared model call's seconds count for each file it carried; with overlap, decode and "
          "vad run beside the previous job's transcription)")


def _targets(m: Measured, targets: dict[str, float]) -> bool:
    rows, met = [], True
    for ref, minimum in targets.items():
        if ref not in m.names:
            raise SystemExit(f"--target {ref}: no such way (ways: {', '.join(m.names)})")
        for name in m.names:
            if name != ref and m.kinds[name] == "daemon":
                ratio = m.speed(name) / m.speed(ref)
                met = met and ratio >= minimum
                rows.append([f"{name} / {ref}", round(ratio, 3), f">= {minimum}", yes(ratio >= minimum)])
    if rows:
        print()
        print_table(["target", "ratio", "wanted", "met"], rows)
    return met


def save(m: Measured, path: Path) -> None:
    """Every way's walls, texts and stages, for a later look."""
    path.write_text(json.dumps({
        "chunks": [[str(i.path) for i in chunk] for chunk in m.chunks], "walls": m.walls,
        "peaks": m.peaks, "files": {name: {str(p): {"text": d.text, "stages": d.stages}
                                           for p, d in m.done[name].items()} for name in m.names},
    }, indent=1), encoding="utf-8")


def _ms(values: list[float] | None) -> int | None:
    return round(1000 * sum(values) / len(values)) if values else None


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)
