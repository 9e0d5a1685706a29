"""What a hook delivery says: whether a job's outcome fires the hooks, the consumer's note of the
job's end (in its folder, `hook.json`), and where the finish plan puts each of its files."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from ..config import Config, Route
from ..spool.jobs import Job
from ..spool.workers import timestamp
from ..transcription.options import route_for
from .message import first_words

#: The consumer's note of a job's outcome, in the job's folder (removed with the folder).
NOTE_FILE = "hook.json"


def wanted(config: Config, relpath: PurePosixPath, outcome: str) -> bool:
    """Does `outcome` fire the hooks for this inbox file (its route's `hooks_events`, else
    `hooks.events`)? Sidecars have no say: they are parsed without these keys."""
    route = route_for(config, relpath)
    events = config.hooks.events
    if isinstance(route, Route) and route.hooks_events is not None:
        events = route.hooks_events
    return outcome in events


def job_note(job: Job, outcome: str, files: Mapping[str, Path], metadata: Mapping[str, Any],
          error: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the consumer knows of a job's end; the places of its files come from the plan."""
    timings = metadata.get("timings") or {}
    return {
        "job_id": job.id, "outcome": outcome, "file": str(job.relpath),
        "source": relative_to_job(job.dir, job.source), "attempts": job.attempts,
        "formats": {relative_to_job(job.dir, path): suffix.lstrip(".") for suffix, path in files.items()},
        "error": dict(error) if error else None, "language": metadata.get("language"),
        "audio_seconds": metadata.get("audio_seconds"), "wall_seconds": timings.get("total"),
        "realtime_factor": metadata.get("realtime_factor"), "timings": timings or None,
        "model": metadata.get("model"), "device": metadata.get("device"),
        "first_words": first_words(files) or None, "finished_at": timestamp(),
    }


def places_of(note: Mapping[str, Any], job_dir: Path, moves: list[tuple[Path, Path]],
            place: Callable[[Path], dict[str, str]]) -> dict[str, Any]:
    """Where the plan sends each file of the job, as (folder root's name, path under it)."""
    places: dict[str, Any] = {"source": None, "results": [], "error_report": None, "log": None,
                              "sidecars": []}
    formats = note.get("formats", {})
    if Path(note["source"]).is_absolute():  # a library job: its media is not moved, it is there
        places["in_place"] = place(Path(note["source"]))
    for src, dst in moves:
        inside, where = relative_to_job(job_dir, src), place(dst)
        if inside == note["source"]:
            places["source"] = where
        elif inside == "error.json":
            places["error_report"] = where
        elif inside == "log.jsonl":
            places["log"] = where
        elif where["root"] == "outbox" or inside in formats:  # a library's: beside its media
            fmt = formats.get(inside) or dst.name.rpartition(".")[2]
            places["results"].append({"format": fmt, **where})
        else:
            places["sidecars"].append(where)
    return places


def relative_to_job(job_dir: Path, path: Path) -> str:
    try:
        return path.relative_to(job_dir).as_posix()
    except ValueError:
        return str(path)


def delivery_body(record: Mapping[str, Any], roots: Mapping[str, Path]) -> dict[str, Any]:
    """The JSON a delivery sends: the note's fields, each file relative (to the folder root
    `roots` names) and absolute."""
    note, places = record["note"], record["places"]

    def located(entry: Mapping[str, str] | None) -> dict[str, str] | None:
        if not entry:
            return None
        root = roots.get(entry["root"])  # none: a library's absolute path, an object's URI
        return {"relative": entry["relative"],
                "path": str(root / entry["relative"]) if root is not None else entry["relative"]}

    body: dict[str, Any] = {"version": 1}
    body.update((key, value) for key, value in note.items() if key not in ("source", "formats"))
    body.update({
        "source": located(places["source"] or places.get("in_place")),
        "results": [{"format": r["format"], **(located(r) or {})} for r in places["results"]],
        "error_report": located(places["error_report"]), "log": located(places["log"]),
        "sidecars": [located(s) for s in places["sidecars"]],
    })
    return body


def ended(state: Mapping[str, Any]) -> str | None:
    """How one target's delivery ended ("delivered", "gave_up"), None while it is still tried.
    Records written before this key was named `ended` say `settled`."""
    how = state.get("ended") or state.get("settled")
    return str(how) if how else None
