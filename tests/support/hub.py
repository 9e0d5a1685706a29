"""A local model hub for tests: the bundled tiny.en served as the repo a model name maps to.

`local_hub("large-v3-turbo")` starts tests/support/hub_server.py on 127.0.0.1 serving the bundled
tiny.en files as `mobiuslabsgmbh/faster-whisper-large-v3-turbo`, the repo faster-whisper maps
that name to. A daemon given `hub.env()` downloads the named model from it over the hub's
protocol, as it would from the hub: nothing leaves the machine. The weights are English-only, so
configs set `model.language: en`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.hub_server import HubServer, Served
from tests.support.models import bundled_tiny_en

#: The named model the tests download: the first name a GPU owner sets.
NAMED_MODEL = "large-v3-turbo"


def repo_of(name: str) -> str:
    """The repo faster-whisper downloads model `name` from (its own table)."""
    from faster_whisper.utils import _MODELS

    return str(_MODELS[name])


@dataclass
class LocalHub:
    """A running local hub and the repo it serves."""

    server: HubServer
    repo_id: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def commit(self) -> str:
        return self.server.repo(self.repo_id).commit

    @property
    def model_bin_sha256(self) -> str:
        return str(self.server.repo(self.repo_id).files["model.bin"].sha256)

    @property
    def model_bin_size(self) -> int:
        return self.server.repo(self.repo_id).files["model.bin"].size

    def env(self, home: Path) -> dict[str, str]:
        """A daemon's environment for this hub, with a huggingface home of its own."""
        return {"HF_ENDPOINT": self.url, "HF_HOME": str(home), "HF_HUB_OFFLINE": "0"}

    def model_bin_gets(self) -> list[Served]:
        """The GET requests for model.bin's bytes (its LFS object), in order."""
        return self.server.served(f"/lfs/{self.model_bin_sha256}", "GET")


@contextmanager
def local_hub(name: str = NAMED_MODEL, **switches: Any) -> Iterator[LocalHub]:
    """Serve the bundled tiny.en as the repo of model `name` for the duration of the block."""
    repo_id = repo_of(name)
    server = HubServer({repo_id: bundled_tiny_en()}, **switches).start()
    try:
        yield LocalHub(server, repo_id)
    finally:
        server.stop()


# --- the download folder, as huggingface_hub lays it out -----------------------------------------

def storage(download_dir: Path, repo_id: str) -> Path:
    """The repo's folder in the cache: models--owner--name (blobs/, snapshots/, refs/)."""
    return download_dir / ("models--" + repo_id.replace("/", "--"))


def partial_bytes(download_dir: Path, repo_id: str) -> int:
    """The bytes in `.incomplete` files: what an interrupted download left."""
    blobs = storage(download_dir, repo_id) / "blobs"
    return sum(p.stat().st_size for p in blobs.glob("*.incomplete")) if blobs.is_dir() else 0


def wait_for_partial(download_dir: Path, repo_id: str, at_least: int, timeout: float) -> int:
    """Wait until `.incomplete` files hold `at_least` bytes; how many they hold."""
    deadline = time.monotonic() + timeout
    while (got := partial_bytes(download_dir, repo_id)) < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {got} of {at_least} bytes downloaded")
        time.sleep(0.05)
    return got


def blob_names(download_dir: Path, repo_id: str) -> list[str]:
    """The names in blobs/ (whole blobs are named by their hash; parts end in .incomplete)."""
    blobs = storage(download_dir, repo_id) / "blobs"
    return sorted(p.name for p in blobs.iterdir()) if blobs.is_dir() else []
