"""Soak: N files, W daemons on one inbox, random SIGKILLs and restarts; then count everything.

    .venv/bin/python bench/soak.py                       # 300 files, 3 daemons, fake engine
    .venv/bin/python bench/soak.py --files 40 --daemons 2 --engine whisperx
    .venv/bin/python bench/soak.py --seed 7 --kill-every 1.0 --json soak.json

The inputs are short real recordings from the shared corpus (copied under unique names, 1 in 10
inside a sub-folder), delivered into the inbox in bursts while the daemons run. A killer picks a
random daemon at random moments (exponential, mean `--kill-every` s), sends it SIGKILL and
starts a new one in its place. When every input is accounted for (or `--timeout` passes) the
daemons are stopped with SIGTERM and the folders are checked:

- each input must be exactly once in done/ or failed/ (a name like `x.2.wav` for input `x.wav`
  is a duplicate), with its bytes unchanged;
- each one in done/ must have exactly one complete result set in the outbox;
- nothing may be left in the inbox or in state/work.

It prints a table (inputs, done, failed, duplicates, missing, ...) and exits 1 on any loss,
duplicate or leftover. Killed daemons can legitimately fail an innocent file as poison (it was
running when the daemon died `max_attempts` times); those count as failed, not lost, and are
listed by kind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.corpus import clips  # noqa: E402 - after the path is set

RESULTS = (".json", ".txt", ".srt", ".vtt", ".log.jsonl")
BESIDE_FAILED = (".error.json", ".log.jsonl")


@dataclass
class Slot:
    """One daemon position: the process now in it and how many it has had."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0


@dataclass
class Soak:
    """The run: folders, options, daemons, and what happened."""

    root: Path
    args: argparse.Namespace
    rng: random.Random
    inputs: dict[str, str] = field(default_factory=dict)  # relpath -> sha256
    slots: list[Slot] = field(default_factory=list)
    kills: int = 0
    delivered: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    #: Killer and keeper both replace daemons: one at a time, or a slot gets two (one orphaned).
    lock: threading.Lock = field(default_factory=threading.Lock)
    crashes: int = 0

    # --- set-up ----------------------------------------------------------------------------------

    def folders(self) -> dict[str, Path]:
        return {name: self.root / name for name in ("inbox", "outbox", "done", "failed", "state")}

    def write_config(self) -> Path:
        for path in self.folders().values():
            path.mkdir(parents=True, exist_ok=True)
        config = {
            "folders": {name: str(path) for name, path in self.folders().items()},
            "watch": {"settle_seconds": 0.3, "rescan_seconds": 2.0},
            "jobs": {"retry_delay_seconds": 0.2, "max_attempts": self.args.max_attempts},
            "daemon": {"shutdown_grace_seconds": 30},
            "outputs": {"formats": ["json", "txt", "srt", "vtt"]},
            "overlap": {"enabled": self.args.overlap},
        }
        path = self.root / "transcribed.yaml"
        path.write_text(json.dumps(config, indent=2))
        return path

    def prepare_inputs(self) -> list[tuple[Path, str]]:
        """Unique names for N copies of short corpus clips; returns (clip, relpath) pairs."""
        pool = [c.path for c in clips(max_duration=self.args.max_clip_seconds, speakers=None)]
        if not pool:
            raise SystemExit("soak: no corpus clips found (../shared/corpus)")
        pairs = []
        for n in range(self.args.files):
            clip = pool[n % len(pool)]
            name = f"f{n:04d}-{clip.stem}{clip.suffix}"
            relpath = f"batch{n % 7}/{name}" if n % 10 == 9 else name
            pairs.append((clip, relpath))
            self.inputs[relpath] = _sha256(clip)
        return pairs

    # --- the run ---------------------------------------------------------------------------------

    def start_daemon(self, slot: Slot, config: Path) -> None:
        slot.generation += 1
        log_path = self.root / "logs" / f"daemon{slot.index}-{slot.generation:03d}.jsonl"
        log_path.parent.mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "TRANSCRIBED_FAKE": json.dumps({"delay": self.args.fake_delay})}
        command = [sys.executable, "-m", "transcribed", "run", "--config", str(config)]
        if self.args.engine == "fake":
            command += ["--engine", "fake"]
        with open(log_path, "wb") as log:
            slot.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.root)

    def deliver(self, pairs: list[tuple[Path, str]]) -> None:
        """Copy beside the inbox and rename in, in bursts, while the daemons run."""
        staging = self.root / "staging"
        staging.mkdir(exist_ok=True)
        inbox = self.folders()["inbox"]
        for start in range(0, len(pairs), self.args.burst):
            for clip, relpath in pairs[start:start + self.args.burst]:
                tmp = staging / Path(relpath).name
                shutil.copyfile(clip, tmp)
                (inbox / relpath).parent.mkdir(parents=True, exist_ok=True)
                os.rename(tmp, inbox / relpath)
                self.delivered += 1
            if self.stop.wait(self.args.burst_every):
                return

    def killer(self, config: Path) -> None:
        """SIGKILL a random daemon at random moments and start another in its place."""
        while not self.stop.wait(self.rng.expovariate(1 / self.args.kill_every)):
            if self.args.max_kills is not None and self.kills >= self.args.max_kills:
                return
            slot = self.rng.choice(self.slots)
            with self.lock:
                if self.stop.is_set():
                    return
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.send_signal(signal.SIGKILL)
                    slot.process.wait()
                    self.kills += 1
                self.start_daemon(slot, config)

    def keeper(self, config: Path) -> None:
        """A daemon that exits by itself (a crash) is restarted too, and counted."""
        while not self.stop.wait(0.5):
            with self.lock:
                for slot in self.slots:
                    if not self.stop.is_set() and slot.process is not None \
                            and slot.process.poll() is not None:
                        self.crashes += 1
                        self.start_daemon(slot, config)

    def accounted(self) -> int:
        folders = self.folders()
        return sum((folders["done"] / rel).exists() or (folders["failed"] / rel).exists()
                   for rel in self.inputs)

    def jobs_in_work(self) -> list[Path]:
        work = self.folders()["state"] / "work"
        if not work.exists():
            return []
        return [job for worker in work.iterdir() if worker.is_dir()
                for job in worker.iterdir() if job.is_dir()]

    def run(self) -> dict[str, object]:
        config = self.write_config()
        pairs = self.prepare_inputs()
        started = time.monotonic()
        self.slots = [Slot(i) for i in range(self.args.daemons)]
        for slot in self.slots:
            self.start_daemon(slot, config)
        threads = [threading.Thread(target=self.deliver, args=(pairs,), daemon=True),
                   threading.Thread(target=self.killer, args=(config,), daemon=True)]
        for thread in threads:
            thread.start()
        keeper = threading.Thread(target=self.keeper, args=(config,), daemon=True)
        keeper.start()
        deadline = started + self.args.timeout
        while time.monotonic() < deadline:
            if self.delivered == len(pairs) and self.accounted() == len(pairs) and not self.jobs_in_work():
                break
            time.sleep(0.5)
        self.stop.set()
        for thread in [*threads, keeper]:
            thread.join()
        exits = self.stop_daemons()
        wall = time.monotonic() - started
        report = self.check()
        report.update(wall_s=round(wall, 1), kills=self.kills, crashes=self.crashes,
                      daemon_starts=sum(s.generation for s in self.slots), clean_exits=exits,
                      events=self.count_events())
        return report

    def stop_daemons(self) -> list[int | None]:
        """SIGTERM every daemon and wait for it (none may outlive the run)."""
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)
        codes = []
        for slot in self.slots:
            try:
                codes.append(slot.process.wait(timeout=60) if slot.process else None)
            except subprocess.TimeoutExpired:
                slot.process.kill()
                codes.append(None)
        return codes

    # --- the check -------------------------------------------------------------------------------

    def check(self) -> dict[str, object]:
        folders = self.folders()
        seen: Counter[str] = Counter()
        unexpected, changed, incomplete, failed_kinds = [], [], [], Counter()
        for place in ("done", "failed"):
            for path in _files(folders[place]):
                rel = path.relative_to(folders[place]).as_posix()
                if place == "failed" and rel.endswith(BESIDE_FAILED):
                    continue
                original = _input_of(rel, self.inputs)
                if original is None:
                    unexpected.append(f"{place}/{rel}")
                    continue
                seen[original] += 1
                if _sha256(path) != self.inputs[original]:
                    changed.append(f"{place}/{rel}")
                if place == "failed":
                    failed_kinds[_failed_kind(path)] += 1
                elif not _results_complete(folders["outbox"], rel):
                    incomplete.append(rel)
        extra_results = [p.relative_to(folders["outbox"]).as_posix() for p in _files(folders["outbox"])
                         if re.search(r"\.\d+\.(json|txt|srt|vtt|log\.jsonl)$", p.name)]
        done = sum(1 for p in _files(folders["done"]))
        failed = sum(1 for p in _files(folders["failed"]) if not p.name.endswith(BESIDE_FAILED))
        missing = sorted(rel for rel in self.inputs if seen[rel] == 0)
        duplicates = sum(n - 1 for n in seen.values() if n > 1) + len(extra_results)
        leftovers = [p.relative_to(self.root).as_posix() for p in _files(folders["inbox"])] + [
            str(j.relative_to(self.root)) for j in self.jobs_in_work()]
        return {
            "inputs": len(self.inputs), "done": done, "failed": failed,
            "failed_kinds": dict(failed_kinds), "duplicates": duplicates, "missing": len(missing),
            "leftovers": len(leftovers), "changed_bytes": len(changed),
            "incomplete_results": len(incomplete), "unexpected": len(unexpected),
            "examples": {"missing": missing[:5], "duplicates": extra_results[:5],
                         "leftovers": leftovers[:5], "unexpected": unexpected[:5],
                         "incomplete": incomplete[:5]},
        }

    def count_events(self) -> dict[str, int]:
        wanted = ("job.done", "job.failed", "job.adopted", "job.retry_later", "job.move_refused",
                  "spool.worker_gone", "daemon.consumer_crashed")
        counts: Counter[str] = Counter()
        for log in (self.root / "logs").glob("*.jsonl"):
            for line in log.read_bytes().splitlines():
                try:
                    event = json.loads(line).get("event")
                except ValueError:
                    continue
                if event in wanted:
                    counts[event] += 1
        return dict(counts)


def _stragglers(config: Path) -> list[int]:
    """Daemons of this run still alive after it (there must be none): their pids."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(config).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _input_of(rel: str, inputs: dict[str, str]) -> str | None:
    """The input a file in done/ or failed/ came from: itself, or `x.N.ext` for `x.ext`."""
    if rel in inputs:
        return rel
    match = re.fullmatch(r"(.*)\.\d+(\.[^./]+)", rel)
    if match and match.group(1) + match.group(2) in inputs:
        return match.group(1) + match.group(2)
    return None


def _results_complete(outbox: Path, rel: str) -> bool:
    stem = rel.rsplit(".", 1)[0]
    try:
        json.loads((outbox / f"{stem}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return all((outbox / f"{stem}{suffix}").exists() for suffix in RESULTS)


def _failed_kind(path: Path) -> str:
    try:
        return json.loads(path.with_name(path.name + ".error.json").read_text())["error_kind"]
    except (OSError, ValueError, KeyError):
        return "no report"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def print_table(report: dict[str, object], args: argparse.Namespace, seed: int) -> None:
    rows = [("engine", args.engine), ("daemons", args.daemons), ("seed", seed),
            ("wall s", report["wall_s"]), ("SIGKILLs", report["kills"]),
            ("daemon starts", report["daemon_starts"]),
            ("exits not caused by the killer", report["crashes"]), ("inputs", report["inputs"]),
            ("done", report["done"]), ("failed", report["failed"]),
            ("failed by kind", report["failed_kinds"] or "-"), ("duplicates", report["duplicates"]),
            ("missing", report["missing"]), ("left in inbox/work", report["leftovers"]),
            ("bytes changed", report["changed_bytes"]), ("incomplete results", report["incomplete_results"]),
            ("jobs adopted", report["events"].get("job.adopted", 0)),
            ("daemons left running", report["stragglers"])]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--engine", choices=["fake", "whisperx"], default="fake")
    parser.add_argument("--kill-every", type=float, default=1.5, help="mean seconds between SIGKILLs")
    parser.add_argument("--max-kills", type=int, default=None)
    parser.add_argument("--max-attempts", type=int, default=3, help="jobs.max_attempts of the daemons")
    parser.add_argument("--overlap", action="store_true",
                        help="overlap.enabled: true (files claimed and decoded ahead, given back on stop)")
    parser.add_argument("--fake-delay", type=float, default=0.05, help="seconds per file, fake engine")
    parser.add_argument("--max-clip-seconds", type=float, default=4.0)
    parser.add_argument("--burst", type=int, default=10, help="files delivered at a time")
    parser.add_argument("--burst-every", type=float, default=0.3)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--root", type=Path, default=None, help="folder for the run (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the folders afterwards")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    root = args.root or Path(tempfile.mkdtemp(prefix="transcribed-soak-"))
    root.mkdir(parents=True, exist_ok=True)
    soak = Soak(root, args, random.Random(seed))
    try:
        report = soak.run()
    finally:
        for slot in soak.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.kill()
    stragglers = _stragglers(root / "transcribed.yaml")
    for pid in stragglers:
        os.kill(pid, signal.SIGKILL)
    report["seed"], report["stragglers"] = seed, len(stragglers)
    print_table(report, args, seed)
    bad = report["missing"] or report["duplicates"] or report["leftovers"] or report["changed_bytes"] \
        or report["incomplete_results"] or report["unexpected"] or report["stragglers"]
    if bad:
        print("FAIL: " + json.dumps(report["examples"]), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.keep or bad:
        print(f"folders kept in {root}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
