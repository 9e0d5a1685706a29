"""A local server that speaks the model hub's file protocol, for tests (the standard library only).

Why not a mirror from PyPI: olah, the self-hosted hub mirror, serves a local repo but ignores
Range requests (a resume is always a redo), has no way to throttle, cut or damage a download, and
needs huggingface_hub>=1.27 where this project pins <1.0 (transformers and whisperx). What
huggingface_hub 0.36 asks when HF_ENDPOINT points here is small, and answered as the hub does:

- `GET /api/models/{repo}[/revision/{rev}]`: the repo info (`sha`, `siblings`; with
  `?blobs=true` each file's size, git blob id and LFS sha256);
- `HEAD|GET /{repo}/resolve/{rev}/{path}`: a regular file answers 200 with `ETag: "<git blob
  id>"`; an LFS file (model.bin) answers 302 to `/lfs/{sha256}` with `X-Linked-Etag` and
  `X-Linked-Size`, and `X-Xet-Hash` with `X-Xet-Refresh-Route` as the hub sends for a file in Xet
  storage (that route is not served: a client that tried Xet would fail). The redirect names
  `localhost`, another origin than 127.0.0.1, as the hub's CDN is another host. Both carry
  `X-Repo-Commit`;
- `HEAD|GET /lfs/{sha256}`: the LFS object, `Range: bytes=N-` answered 206 (416 past the end);
- 404 with the hub's `X-Error-Code` (RepoNotFound, RevisionNotFound, EntryNotFound).

Switches, settable while it runs: `rate` (bytes per second per response: slow enough to kill a
download half-way), `stop_after` (cut each response body after this many bytes, as a dropped
connection does), `corrupt` (file names served with one byte flipped at the right size, while the
listing still announces the good file), `down` (503 to everything). Each request is recorded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: Files the hub keeps in LFS: by the default .gitattributes suffixes, or by size.
LFS_SUFFIXES = (".bin", ".safetensors", ".pt", ".onnx")
LFS_MIN_BYTES = 10 * 1024 * 1024
#: Bytes written at a time (and the granularity of `rate` and `stop_after`).
CHUNK = 64 * 1024
BRANCH = "main"


@dataclass(frozen=True)
class ServedFile:
    """One file of a served repo: where it lies, its size, and the ids the hub gives it."""

    name: str
    path: Path
    size: int
    git_sha1: str
    #: Set for an LFS file: its ETag, and the name of its blob in a client's cache.
    sha256: str | None

    @classmethod
    def of(cls, name: str, path: Path) -> ServedFile:
        size = path.stat().st_size
        lfs = name.endswith(LFS_SUFFIXES) or size >= LFS_MIN_BYTES
        data = path.read_bytes()
        git_sha1 = hashlib.sha1(b"blob %d\0" % size + data, usedforsecurity=False).hexdigest()
        return cls(name, path, size, git_sha1, hashlib.sha256(data).hexdigest() if lfs else None)


@dataclass(frozen=True)
class Repo:
    """A folder served as a model repo at one commit (a hash of its content), on branch `main`."""

    repo_id: str
    files: dict[str, ServedFile]
    commit: str

    @classmethod
    def of_folder(cls, repo_id: str, folder: Path) -> Repo:
        files = {p.name: ServedFile.of(p.name, p) for p in sorted(folder.iterdir()) if p.is_file()}
        digest = hashlib.sha1(repo_id.encode(), usedforsecurity=False)
        for f in files.values():
            digest.update(f"{f.name}\0{f.sha256 or f.git_sha1}\0".encode())
        return cls(repo_id, files, digest.hexdigest())

    def info(self, blobs: bool) -> dict[str, Any]:
        siblings = []
        for f in self.files.values():
            item: dict[str, Any] = {"rfilename": f.name}
            if blobs:
                item.update(size=f.size, blobId=f.git_sha1)
                if f.sha256:
                    item["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
            siblings.append(item)
        return {"_id": self.commit[:24], "id": self.repo_id, "modelId": self.repo_id,
                "sha": self.commit, "private": False, "gated": False, "disabled": False,
                "lastModified": "2024-01-01T00:00:00.000Z", "tags": [], "siblings": siblings}


@dataclass
class Served:
    """One request as the server answered it."""

    method: str
    path: str
    range: str | None
    status: int = 0
    #: Body bytes written, and whether the body was cut short (stop_after, stop(), a gone client).
    sent: int = 0
    cut: bool = False


@dataclass
class HubServer:
    """Serves `repos` (repo id -> folder): `start()` on a free port of 127.0.0.1, `url`, `stop()`."""

    repos: dict[str, Path]
    port: int = 0
    rate: int | None = None
    stop_after: int | None = None
    corrupt: set[str] = field(default_factory=set)
    down: bool = False
    requests: list[Served] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.served_repos = {rid: Repo.of_folder(rid, Path(folder)) for rid, folder in self.repos.items()}
        self.objects = {f.sha256: f for repo in self.served_repos.values()
                        for f in repo.files.values() if f.sha256}
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def repo(self, repo_id: str) -> Repo:
        return self.served_repos[repo_id]

    def start(self) -> HubServer:
        """Listen (again, on the same port after a `stop()`)."""
        httpd = ThreadingHTTPServer(("127.0.0.1", self.port), type("Handler", (_Handler,), {"hub": self}))
        httpd.daemon_threads = False  # server_close() joins the handler threads
        self._httpd, self.port = httpd, httpd.server_address[1]
        self.closing.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"hub-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening (connections are refused) and end every response in flight."""
        if self._httpd is None:
            return
        self.closing.set()
        self._httpd.shutdown()
        with self.lock:  # idle keep-alive connections too, or server_close() would wait on them
            for connection in self.connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._httpd = self._thread = None

    def record(self, served: Served) -> None:
        with self.lock:
            self.requests.append(served)

    def served(self, path_part: str = "", method: str | None = None) -> list[Served]:
        """The requests so far whose path holds `path_part` (and of that method)."""
        with self.lock:
            return [r for r in self.requests if path_part in r.path and method in (None, r.method)]


_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?/?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_LFS = re.compile(r"^/lfs/(?P<sha>[0-9a-f]{64})$")


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        with self.hub.lock:
            self.hub.connections.add(self.connection)

    def finish(self) -> None:
        with self.hub.lock:
            self.hub.connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the client may be gone (killed)
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Silent: `HubServer.requests` records what matters."""

    def do_HEAD(self) -> None:
        self._route()

    def do_GET(self) -> None:
        self._route()

    def _route(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        served = Served(self.command, path, self.headers.get("Range"))
        try:
            if self.hub.down:
                self._error(served, 503, None, "the hub is down (test switch)")
            elif m := _API.match(path):
                if (repo := self._find(served, m["repo"], m["rev"] or BRANCH)) is not None:
                    blobs = parse_qs(parts.query).get("blobs", ["false"])[0].lower() in ("1", "true")
                    self._json(served, repo.info(blobs))
            elif m := _RESOLVE.match(path):
                self._resolve(served, m["repo"], m["rev"], m["path"])
            elif (m := _LFS.match(path)) and m["sha"] in self.hub.objects:
                self._send_file(served, self.hub.objects[m["sha"]], {})
            else:
                self._error(served, 404, None, "no such route")
        finally:
            self.hub.record(served)

    def _find(self, served: Served, repo_id: str, rev: str) -> Repo | None:
        repo = self.hub.served_repos.get(repo_id)
        if repo is None:
            self._error(served, 404, "RepoNotFound", f"Repository {repo_id} not found")
        elif rev not in (BRANCH, repo.commit):
            self._error(served, 404, "RevisionNotFound", f"Invalid rev id: {rev}")
            return None
        return repo

    def _resolve(self, served: Served, repo_id: str, rev: str, name: str) -> None:
        if (repo := self._find(served, repo_id, rev)) is None:
            return
        headers = {"X-Repo-Commit": repo.commit}
        if (f := repo.files.get(name)) is None:
            self._error(served, 404, "EntryNotFound", f"{name} does not exist on {rev}", headers)
        elif f.sha256 is None:
            self._send_file(served, f, headers)
        else:
            served.status = 302
            self.send_response(302)
            xet_token = f"{self.hub.url}/api/models/{repo_id}/xet-read-token/{repo.commit}"
            for key, value in {**headers, "ETag": f'"{f.git_sha1}"', "X-Linked-Etag": f'"{f.sha256}"',
                               "X-Linked-Size": str(f.size), "X-Xet-Hash": f.sha256,
                               "X-Xet-Refresh-Route": xet_token,
                               "Location": f"http://localhost:{self.hub.port}/lfs/{f.sha256}",
                               "Content-Length": "0"}.items():
                self.send_header(key, value)
            self.end_headers()

    def _json(self, served: Served, data: Any) -> None:
        body = json.dumps(data).encode()
        served.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)
            served.sent = len(body)

    def _send_file(self, served: Served, f: ServedFile, headers: dict[str, str]) -> None:
        start, wanted = 0, self.headers.get("Range")
        if wanted is not None:
            m = re.fullmatch(r"bytes=(\d+)-", wanted.strip())
            if m is None or int(m[1]) >= f.size:
                self._error(served, 416, None, f"range {wanted} of {f.size} bytes",
                            {"Content-Range": f"bytes */{f.size}"})
                return
            start = int(m[1])
        served.status = 206 if wanted else 200
        self.send_response(served.status)
        for key, value in {**headers, "ETag": f'"{f.sha256 or f.git_sha1}"', "Accept-Ranges": "bytes",
                           "Content-Length": str(f.size - start),
                           "Content-Type": "application/octet-stream"}.items():
            self.send_header(key, value)
        if wanted:
            self.send_header("Content-Range", f"bytes {start}-{f.size - 1}/{f.size}")
        self.end_headers()
        if self.command == "GET":
            self._stream(served, f, start)

    def _stream(self, served: Served, f: ServedFile, start: int) -> None:
        """Write `f` from `start`: throttled, cut or damaged as the switches say."""
        hub, flip = self.hub, (f.size // 2 if f.name in self.hub.corrupt else -1)
        began, position = time.monotonic(), start
        with f.path.open("rb") as fh:
            fh.seek(start)
            while position < f.size:
                size = min(CHUNK, f.size - position)
                if hub.stop_after is not None:
                    size = min(size, hub.stop_after - served.sent)
                if hub.closing.is_set() or size <= 0:
                    served.cut = True
                    self._drop()
                    return
                block = bytearray(fh.read(size))
                if position <= flip < position + len(block):
                    block[flip - position] ^= 0xFF
                try:
                    self.wfile.write(block)
                except OSError:  # the client went away (killed)
                    served.cut, self.close_connection = True, True
                    return
                position += len(block)
                served.sent += len(block)
                if hub.rate and (ahead := served.sent / hub.rate - (time.monotonic() - began)) > 0:
                    hub.closing.wait(ahead)

    def _drop(self) -> None:
        """End the connection mid-body: the client gets fewer bytes than Content-Length said."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    def _error(self, served: Served, status: int, code: str | None, message: str,
               headers: dict[str, str] | None = None) -> None:
        body = json.dumps({"error": message}).encode()
        served.status = status
        self.send_response(status)
        for key, value in {**({"X-Error-Code": code, "X-Error-Message": message} if code else {}),
                           **(headers or {}), "Content-Type": "application/json",
                           "Content-Length": str(len(body))}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)
