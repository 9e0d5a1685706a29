"""The commit: a job's outcome becomes true with one conditional write of its manifest.

Every queue delivers at least once, and a worker thought dead may still finish (a zombie: paused,
its lease gone, the job delivered to another). So the ack is not the commit point. Each attempt
uploads its results under a prefix of its own, `<outbox_prefix><path-stem>/<attempt>/`, and then
writes the job's manifest, `<state_prefix>manifests/<job key>.json`, with `If-None-Match: *`. The
first writer wins and its manifest names its attempt (outcome, results, attempts, worker); a 412
means another attempt already committed, which is success: the loser removes its own prefix and
acks. A reader follows the manifest, never a listing of the outbox.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import ObjectStore
from ..logs import get_logger
from .identity import ObjectRef
from .store import Store

#: Content types of the results, so a browser or a CDN serves them right.
CONTENT_TYPES = {".json": "application/json", ".txt": "text/plain; charset=utf-8",
                 ".srt": "application/x-subrip", ".vtt": "text/vtt", ".tsv": "text/tab-separated-values",
                 ".log.jsonl": "application/x-ndjson", ".error.json": "application/json"}
MANIFEST_VERSION = 1

log = get_logger()


@dataclass(frozen=True)
class Committed:
    """What the commit found: this attempt's manifest written, or another's there first."""

    won: bool
    manifest: str
    #: Where this attempt's files went (suffix -> key); removed again when it lost.
    results: dict[str, str]


class Manifests:
    """Manifests and attempt prefixes of one bucket."""

    def __init__(self, store: Store, section: ObjectStore) -> None:
        self.store = store
        self.section = section

    def key_of(self, job_key: str) -> str:
        return f"{self.section.state_prefix}manifests/{job_key}.json"

    @property
    def prefix(self) -> str:
        return f"{self.section.state_prefix}manifests/"

    def is_committed(self, ref: ObjectRef) -> bool:
        return self.store.exists(self.key_of(ref.job_key))

    def committed_keys(self) -> set[str]:
        """The job keys of every manifest (one listing: the reconciler's other half)."""
        start = len(self.prefix)
        return {key[start:].removesuffix(".json") for key, _ in self.store.listing(self.prefix)}

    def attempt_prefix(self, rel: PurePosixPath, attempt: str) -> str:
        stem = rel.name[: -len(rel.suffix)] if rel.suffix else rel.name
        return f"{self.section.outbox_prefix}{(rel.parent / stem).as_posix()}/{attempt}/"

    def commit(self, ref: ObjectRef, rel: PurePosixPath, attempt: str, outcome: str,
               files: dict[str, Path], record: dict[str, Any]) -> Committed:
        """Upload this attempt's files under its own prefix, then write the manifest if none is
        there. `files` maps a suffix (`.json`, `.error.json`, `.log.jsonl`) to a local file."""
        prefix = self.attempt_prefix(rel, attempt)
        stem = rel.name[: -len(rel.suffix)] if rel.suffix else rel.name
        results: dict[str, str] = {}
        for suffix, path in files.items():
            if not path.is_file():
                continue
            key = f"{prefix}{stem}{suffix}"
            self.store.upload(path, key, CONTENT_TYPES.get(suffix))
            results[suffix] = key
        manifest = {
            "version": MANIFEST_VERSION, "outcome": outcome, "object": ref.describe(),
            "attempt": attempt, "prefix": prefix, "results": results, **record,
            "committed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        key = self.key_of(ref.job_key)
        won = self.store.put_if_absent(key, json.dumps(manifest, indent=2).encode())
        if not won:
            removed = self.store.delete_prefix(prefix)
            log.info("objectstore.commit_lost", manifest=key, attempt=attempt, removed=removed,
                     reason="another attempt committed this job first (412): its outcome stands")
        return Committed(won=won, manifest=key, results=results)

    def commit_dead_letter(self, ref: ObjectRef, deliveries: int, worker: str) -> bool:
        """The failed record of a job the queue gave up on (it crashed every worker that took it
        `deliveries` times, before the daemon's own poison rule could write its report)."""
        report = {"file": ref.key, "error_kind": "poison", "stage": "queue", "attempts": deliveries,
                  "error": f"the queue delivered this job {deliveries} times without an outcome "
                           "(each worker died or was stopped while on it); given up",
                  "worker": worker}
        manifest = {"version": MANIFEST_VERSION, "outcome": "failed", "object": ref.describe(),
                    "attempt": None, "prefix": None, "results": {}, "report": report,
                    "attempts": deliveries, "worker": worker,
                    "committed_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        return self.store.put_if_absent(self.key_of(ref.job_key), json.dumps(manifest, indent=2).encode())
