"""Object-store scale, measured: what the queue and the store add to each job, and throughput with
1, 2 and 4 daemons, with the fake engine (so the figures are the intake's, not Whisper's).

    .venv/bin/python bench/objectstore_throughput.py                     # 100 objects; 1, 2, 4 daemons
    .venv/bin/python bench/objectstore_throughput.py --objects 200 --daemons 1 2 --json scale.json

Each run starts fresh servers (nats-server with JetStream, SeaweedFS's S3 gateway) on 127.0.0.1,
uploads N short WAVs into the inbox prefix, then starts D daemons (`--engine fake`, no delay) and
times from the first daemon's start to the last manifest. From the daemons' logs, per job:
`download_s` (the claim's object download), `commit_s` (results uploaded, the manifest's
conditional write, the ack) and the pipeline's own `wall_s`. The same N files through the shared
folder with one daemon are the baseline. Everything runs on this machine, servers included, so
more daemons than cores measure contention, not scale: docs/scale.md says what limits it at 100
nodes and how to measure it there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.daemon import Folders, wait_until  # noqa: E402
from tests.support.media import write_wav  # noqa: E402
from tests.support.objectstore import open_deployment, tone  # noqa: E402
from tests.support.servers import CREDENTIALS  # noqa: E402


def _events(logs: list[Path]) -> list[dict[str, Any]]:
    found = []
    for log in logs:
        for line in log.read_bytes().splitlines():
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 4),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 4)}


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRANSCRIBED_FAKE": "{}"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "transcribed", "run", "--config", str(config),
                                 "--engine", "fake"], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=config.parent)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=60)


def objectstore_run(root: Path, objects: int, daemons: int) -> dict[str, Any]:
    deployment = open_deployment(root)
    try:
        for n in range(objects):
            deployment.upload(f"o{n:04d}.wav", seconds=1.0)
        logs = [root / f"node{i}.jsonl" for i in range(daemons)]
        configs = [deployment.config(f"node{i}", reconcile_seconds=1) for i in range(daemons)]
        started = time.monotonic()
        processes = [_start(config, log) for config, log in zip(configs, logs, strict=True)]
        try:
            wait_until(lambda: len(deployment.manifests()) >= objects, 900, f"{objects} manifests",
                       interval=0.5)
            wall = time.monotonic() - started
        finally:
            _stop(processes)
        events = _events(logs)
        claimed = [e["download_s"] for e in events if e.get("event") == "job.claimed" and "download_s" in e]
        committed = [e["commit_s"] for e in events if e.get("event") == "objectstore.committed"]
        pipeline = [e["wall_s"] for e in events if e.get("event") == "job.done"]
        ready = [e for e in events if e.get("event") == "daemon.started"]
        return {"mode": "objectstore", "daemons": daemons, "objects": objects, "wall_s": round(wall, 2),
                "jobs_per_s": round(objects / wall, 2), "download_s": _spread(claimed),
                "commit_s": _spread(committed), "pipeline_s": _spread(pipeline),
                "daemons_ready": len(ready)}
    finally:
        deployment.close()
        deployment.s3_server.stop(signal.SIGKILL)
        if deployment.nats is not None:
            deployment.nats.stop(signal.SIGKILL)


def folder_run(root: Path, objects: int) -> dict[str, Any]:
    """The baseline: the same files through the shared folder, one daemon."""
    folders = Folders(root / "folder")
    config = folders.write_config(watch={"settle_seconds": 0.3, "rescan_seconds": 1})
    staging = root / "staging"
    staging.mkdir()
    for n in range(objects):
        write_wav(staging / f"o{n:04d}.wav", tone(1.0))
    log = root / "folder.jsonl"
    started = time.monotonic()
    process = _start(config, log)
    try:
        wait_until(lambda: '"daemon.started"' in log.read_text(errors="replace"), 120, "the daemon")
        for path in sorted(staging.iterdir()):
            shutil.move(str(path), folders.inbox / path.name)
        wait_until(lambda: len(folders.files(folders.done)) >= objects, 900, f"{objects} done")
        wall = time.monotonic() - started
    finally:
        _stop([process])
    pipeline = [e["wall_s"] for e in _events([log]) if e.get("event") == "job.done"]
    return {"mode": "folder", "daemons": 1, "objects": objects, "wall_s": round(wall, 2),
            "jobs_per_s": round(objects / wall, 2), "pipeline_s": _spread(pipeline)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--daemons", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--no-folder", action="store_true", help="skip the shared-folder baseline")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    os.environ.update(CREDENTIALS)  # the servers' test identity (tests/support/servers.py)
    results = []
    if not args.no_folder:
        with tempfile.TemporaryDirectory(prefix="os-bench-") as tmp:
            results.append(folder_run(Path(tmp), args.objects))
            print(json.dumps(results[-1]), flush=True)
    for daemons in args.daemons:
        with tempfile.TemporaryDirectory(prefix="os-bench-") as tmp:
            results.append(objectstore_run(Path(tmp), args.objects, daemons))
            print(json.dumps(results[-1]), flush=True)
    print(f"{'mode':<12} {'daemons':>7} {'jobs':>5} {'wall s':>7} {'jobs/s':>7} {'download s':>18} "
          f"{'commit s':>18} {'pipeline s':>18}")
    for r in results:
        def cell(name: str, r: dict[str, Any] = r) -> str:
            spread = r.get(name) or {}
            return f"{spread.get('median', '-')} / {spread.get('p95', '-')}"
        print(f"{r['mode']:<12} {r['daemons']:>7} {r['objects']:>5} {r['wall_s']:>7} {r['jobs_per_s']:>7} "
              f"{cell('download_s'):>18} {cell('commit_s'):>18} {cell('pipeline_s'):>18}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
