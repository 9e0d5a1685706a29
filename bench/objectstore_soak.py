"""Object-store soak: N objects, W daemons on one bucket and one JetStream queue, random SIGKILLs
and restarts; then every object's manifests are counted.

    .venv/bin/python bench/objectstore_soak.py                  # 300 objects, 3 daemons, fake engine
    .venv/bin/python bench/objectstore_soak.py --objects 60 --kill-every 2 --json soak.json

The servers are the real ones (nats-server with JetStream, SeaweedFS's S3 gateway), started on
127.0.0.1 for the run. Objects (short generated WAVs, 1 in 10 under a sub-prefix) are uploaded
into the inbox prefix in bursts while the daemons run; only the reconciler announces them (no
notifications), so a lost announcement would show as a missing object. A killer SIGKILLs a random
daemon at random moments (exponential, mean `--kill-every` s) and starts another in its place
(each daemon position has its folders, as a node would). When every object has a manifest (or
`--timeout` passes) the daemons get SIGTERM and the bucket is checked:

- each object must have exactly one manifest (done, or failed with a report): 0 lost, 0 doubled;
- each done manifest's results must be there and hold the object's transcript;
- no manifest may name an object that was not uploaded.

Attempt prefixes that no manifest names (a worker killed between its upload and its commit) are
counted as `orphan_prefixes`: garbage a lifecycle rule can remove, never a second outcome.
Exit 1 on any loss, duplicate or wrong result.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.objectstore import BUCKET, Deployment, open_deployment  # noqa: E402
from tests.support.servers import CREDENTIALS  # noqa: E402


@dataclass
class Slot:
    index: int
    process: subprocess.Popen[bytes] | None = None
    generation: int = 0


@dataclass
class Soak:
    deployment: Deployment
    args: argparse.Namespace
    rng: random.Random
    keys: list[str] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    kills: int = 0
    crashes: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start_daemon(self, slot: Slot) -> None:
        slot.generation += 1
        config = self.deployment.config(f"node{slot.index}", jobs={"max_attempts": self.args.max_attempts},
                                        ack_wait_seconds=self.args.ack_wait, reconcile_seconds=2)
        log = self.deployment.root / "logs" / f"node{slot.index}-{slot.generation:03d}.jsonl"
        log.parent.mkdir(exist_ok=True)
        env = {**os.environ, **CREDENTIALS, "PYTHONUNBUFFERED": "1",
               "TRANSCRIBED_FAKE": json.dumps({"delay": self.args.fake_delay})}
        with open(log, "wb") as out:
            slot.process = subprocess.Popen(
                [sys.executable, "-m", "transcribed", "run", "--config", str(config), "--engine", "fake"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=config.parent)

    def upload(self) -> None:
        for start in range(0, self.args.objects, self.args.burst):
            for n in range(start, min(start + self.args.burst, self.args.objects)):
                name = f"batch{n % 7}/o{n:04d}.wav" if n % 10 == 9 else f"o{n:04d}.wav"
                self.keys.append(self.deployment.upload(name, seconds=0.5 + (n % 5) * 0.3))
            if self.stop.wait(self.args.burst_every):
                return

    def killer(self) -> None:
        while not self.stop.wait(self.rng.expovariate(1 / self.args.kill_every)):
            slot = self.rng.choice(self.slots)
            with self.lock:
                if self.stop.is_set():
                    return
                if slot.process is not None and slot.process.poll() is None:
                    slot.process.send_signal(signal.SIGKILL)
                    slot.process.wait()
                    self.kills += 1
                self.start_daemon(slot)

    def keeper(self) -> None:
        while not self.stop.wait(0.5):
            with self.lock:
                for slot in self.slots:
                    if not self.stop.is_set() and slot.process is not None and slot.process.poll() is not None:
                        self.crashes += 1
                        self.start_daemon(slot)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        self.slots = [Slot(i) for i in range(self.args.daemons)]
        for slot in self.slots:
            self.start_daemon(slot)
        threads = [threading.Thread(target=self.upload, daemon=True),
                   threading.Thread(target=self.killer, daemon=True),
                   threading.Thread(target=self.keeper, daemon=True)]
        for thread in threads:
            thread.start()
        deadline = started + self.args.timeout
        while time.monotonic() < deadline:
            if len(self.keys) == self.args.objects and len(self.deployment.manifests()) >= self.args.objects:
                break
            time.sleep(1.0)
        self.stop.set()
        for thread in threads:
            thread.join()
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGTERM)
        exits = [slot.process.wait(timeout=60) if slot.process else None for slot in self.slots]
        report = self.check()
        report.update(wall_s=round(time.monotonic() - started, 1), kills=self.kills, crashes=self.crashes,
                      daemon_starts=sum(s.generation for s in self.slots), clean_exits=exits)
        return report

    def check(self) -> dict[str, Any]:
        manifests = self.deployment.manifests()
        per_key = Counter(m["object"]["key"] for m in manifests)
        uploaded = set(self.keys)
        wrong_results = []
        for manifest in manifests:
            if manifest["outcome"] != "done":
                continue
            name = manifest["object"]["key"].rpartition("/")[2]
            text = self.deployment.read(manifest["results"][".txt"]).decode()
            if f"fake transcript of {name}" not in text:
                wrong_results.append(manifest["object"]["key"])
        named = {m["prefix"] for m in manifests if m.get("prefix")}
        prefixes = set()
        for page in self.deployment.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="outbox/"):
            for item in page.get("Contents", []):
                prefixes.add(item["Key"].rsplit("/", 1)[0] + "/")
        return {
            "objects": len(uploaded), "manifests": len(manifests),
            "done": sum(1 for m in manifests if m["outcome"] == "done"),
            "failed": sum(1 for m in manifests if m["outcome"] == "failed"),
            "failed_kinds": dict(Counter(m.get("report", {}).get("error_kind") for m in manifests
                                         if m["outcome"] == "failed")),
            "lost": len(uploaded - set(per_key)),
            "doubled": sum(n - 1 for n in per_key.values() if n > 1),
            "unexpected": len(set(per_key) - uploaded), "wrong_results": len(wrong_results),
            "orphan_prefixes": len(prefixes - named),
            "max_delivery": max((m.get("attempts", 0) for m in manifests), default=0),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--daemons", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=4.0, help="mean seconds between SIGKILLs")
    parser.add_argument("--fake-delay", type=float, default=0.2, help="seconds the fake engine takes per file")
    parser.add_argument("--ack-wait", type=float, default=3.0, help="objectstore.ack_wait_seconds")
    parser.add_argument("--max-attempts", type=int, default=5, help="jobs.max_attempts")
    parser.add_argument("--burst", type=int, default=25)
    parser.add_argument("--burst-every", type=float, default=2.0)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="objectstore-soak-") as tmp:
        deployment = open_deployment(Path(tmp))
        try:
            report = Soak(deployment, args, random.Random(args.seed)).run()
        finally:
            deployment.close()
            deployment.s3_server.stop(signal.SIGKILL)
            if deployment.nats is not None:
                deployment.nats.stop(signal.SIGKILL)
    for key, value in report.items():
        print(f"{key:>16}: {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    bad = report["lost"] or report["doubled"] or report["unexpected"] or report["wrong_results"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
