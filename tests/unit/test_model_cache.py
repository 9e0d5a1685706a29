"""Finding a named model in `model.download_dir` without the network: what counts as cached.

The caches here are laid out by hand as huggingface_hub lays them out (blobs named by their
hash, snapshot links, refs/main), with small files standing in for a model: the hash check does
not care how large they are. Downloading is tests/integration/test_model_download.py's.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from transcribed.engine.hub_cache import HubCache
from transcribed.engine.models import resolve_model
from transcribed.errors import ConfigError

NAME = "large-v3-turbo"
REPO_ID = "mobiuslabsgmbh/faster-whisper-large-v3-turbo"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILES = {"model.bin": b"weights " * 1000, "config.json": b'{"a": 1}', "tokenizer.json": b'{"t": 2}',
         "vocabulary.txt": b"a\nb\n"}


def etag(name: str, data: bytes) -> str:
    """The hub's name for a file: the sha256 of an LFS file (model.bin), else its git blob id."""
    if name.endswith(".bin"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lay_out(root: Path, files: dict[str, bytes], ref: bool = True) -> Path:
    """A cache as huggingface_hub leaves it; the snapshot folder."""
    storage = root / ("models--" + REPO_ID.replace("/", "--"))
    snapshot = storage / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (storage / "blobs").mkdir()
    for name, data in files.items():
        (storage / "blobs" / etag(name, data)).write_bytes(data)
        (snapshot / name).symlink_to(Path("../../blobs") / etag(name, data))
    if ref:
        (storage / "refs").mkdir()
        (storage / "refs" / "main").write_text(COMMIT)
    return snapshot


def test_a_complete_cache_another_tool_filled_is_used_with_its_files_checked(tmp_path: Path) -> None:
    snapshot = lay_out(tmp_path, FILES)
    model = resolve_model(NAME, tmp_path, download=False)
    assert (model.source, model.path) == ("cached", snapshot)
    assert model.origin is not None and model.origin.commit == COMMIT and model.origin.endpoint is None
    assert "(found in the cache)" in model.origin.describe()


def test_a_snapshot_a_killed_download_left_without_model_bin_is_not_cached(tmp_path: Path) -> None:
    """huggingface_hub writes refs/main first and returns this half snapshot as if complete."""
    lay_out(tmp_path, {k: v for k, v in FILES.items() if k != "model.bin"})
    part = tmp_path / f"models--{REPO_ID.replace('/', '--')}" / "blobs" / f"{'e' * 64}.incomplete"
    part.write_bytes(b"x" * 1234)
    model = resolve_model(NAME, tmp_path, download=False)
    assert (model.source, model.partial_bytes) == ("not downloaded yet", 1234)


def test_a_snapshot_no_ref_names_is_not_cached(tmp_path: Path) -> None:
    """A download killed before its end leaves no refs/main (it is written last)."""
    lay_out(tmp_path, FILES, ref=False)
    assert resolve_model(NAME, tmp_path, download=False).source == "not downloaded yet"


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_cached_file_is_reported_and_left_alone_without_download(
        tmp_path: Path, damage: str) -> None:
    """The doctor's look (download=False): the file and what is wrong with it, nothing deleted.
    Without our record the blob's name is what it must hash to (a shorter one too)."""
    snapshot = lay_out(tmp_path, FILES)
    blob = (snapshot / "model.bin").resolve()
    data = bytearray(blob.read_bytes())
    if damage == "flip":
        data[10] ^= 0x01
    blob.write_bytes(data if damage == "flip" else data[:-1])
    model = resolve_model(NAME, tmp_path, download=False)
    assert model.source == "not downloaded yet"
    assert model.damaged is not None and model.damaged.startswith("model.bin: sha256 ")
    assert blob.exists()


def test_a_damaged_small_file_is_found_by_its_git_blob_id(tmp_path: Path) -> None:
    snapshot = lay_out(tmp_path, FILES)
    (snapshot / "tokenizer.json").resolve().write_bytes(b'{"t": 3}')  # the same size
    model = resolve_model(NAME, tmp_path, download=False)
    assert model.damaged is not None and "tokenizer.json: git blob id" in model.damaged


def test_a_file_that_passed_is_stamped_so_later_starts_do_not_read_it_again(tmp_path: Path) -> None:
    snapshot = lay_out(tmp_path, FILES)
    resolve_model(NAME, tmp_path, download=False)
    stamps = HubCache(tmp_path, REPO_ID).read_record()["verified"]
    blob = (snapshot / "model.bin").resolve()
    assert stamps[blob.name] == {"size": blob.stat().st_size, "mtime_ns": blob.stat().st_mtime_ns}


def test_a_name_that_is_no_size_repo_or_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.name: 'huge-v9' is neither a known model size"):
        resolve_model("huge-v9", tmp_path)
