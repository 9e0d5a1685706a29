"""A library job: the record of a media file claimed in place, and the options it runs with.

Its folder in the work area is a job folder like any other (`job.json`: attempts, history), plus
`library.json`, the reference to the media where it stays: its path, its library, its content
id and the subtitles wanted. Its record names the library source (`"intake": "library"`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .. import durable
from ..config import Config, Route
from ..spool.jobs import RECORD_FILE, Job

#: The reference to the media in a library job's folder (its presence makes it a library job).
LIBRARY_RECORD = "library.json"
#: The formats a library writes beside its media when it names none.
DEFAULT_FORMATS = ("srt",)


@dataclass
class LibraryJob(Job):
    """A job whose source stays where it is, in a library."""

    origin: Path = Path()
    library: Path = Path()
    content_id: str = ""
    key: tuple[int, int] = (0, 0)
    #: The library's languages this file had no subtitle for when it was claimed.
    languages: tuple[str, ...] = ()
    tag: str | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS

    @property
    def source(self) -> Path:
        return self.origin

    def sidecars(self) -> dict[str, Path]:
        return {}  # nothing travels with a library file

    def reference(self) -> dict[str, Any]:
        return {"origin": str(self.origin), "library": str(self.library), "content_id": self.content_id,
                "key": list(self.key), "languages": list(self.languages), "tag": self.tag,
                "formats": list(self.formats)}


def read_library_job(job_dir: Path) -> LibraryJob:
    """A library job back from its folder (after a restart, or adopted)."""
    ref, record = durable.read_json(job_dir / LIBRARY_RECORD), durable.read_json(job_dir / RECORD_FILE)
    return LibraryJob(
        id=record["id"], relpath=PurePosixPath(record["relpath"]), dir=job_dir, intake="library",
        attempts=record.get("attempts", 0), claimed_at=record.get("claimed_at", ""),
        history=record.get("history", []), origin=Path(ref["origin"]), library=Path(ref["library"]),
        content_id=ref["content_id"], key=(int(ref["key"][0]), int(ref["key"][1])),
        languages=tuple(ref["languages"]), tag=ref.get("tag"), formats=tuple(ref["formats"]))


def library_routes(config: Config) -> Config:
    """The config the pipeline and hooks read: each library is a route over its absolute folder
    (inbox routes are relative, so they never meet), with the library's formats plus the JSON
    transcript (kept in the state folder), and its one language given to Whisper (the language
    of a transcript's text is the spoken one; a translation's is English, whatever is spoken)."""
    routes = dict(config.routes)
    for lib in config.libraries:
        fields = {f.name: getattr(lib, f.name) for f in dataclasses.fields(Route)}
        fields["formats"] = (*(lib.formats or DEFAULT_FORMATS), "json")
        translates = (lib.task or config.model.task) == "translate"
        if fields["language"] is None and len(lib.languages) == 1 and not translates:
            fields["language"] = lib.languages[0]
        routes[str(lib.path)] = Route(**fields)
    return dataclasses.replace(config, routes=routes)
