"""A result put beside a library's media across filesystems (/dev/shm against the temp folder):
never over a file there, and finished by a second call after a crash."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from transcribed.durable import copy_no_clobber

SHM = Path("/dev/shm")


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A folder on another filesystem than tmp_path."""
    if not SHM.is_dir() or os.stat(SHM).st_dev == os.stat(tmp_path).st_dev:
        if IN_CI:
            pytest.fail("/dev/shm (another filesystem than the temp folder) is needed")
        pytest.skip("no second filesystem")
    folder = SHM / f"transcribed-test-{os.getpid()}-{tmp_path.name}"
    folder.mkdir()
    yield folder
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


def test_copied_across_then_the_staged_file_goes(tmp_path: Path, elsewhere: Path) -> None:
    staged = tmp_path / "Movie.srt"
    staged.write_text("1\n")
    dst = elsewhere / "Movie.en.srt"
    assert copy_no_clobber(staged, dst)
    assert dst.read_text() == "1\n" and not staged.exists()
    assert [p.name for p in elsewhere.iterdir()] == ["Movie.en.srt"]  # no temporary name left
    assert copy_no_clobber(staged, dst)  # called again (after a crash): finished already


def test_a_subtitle_there_is_never_replaced(tmp_path: Path, elsewhere: Path) -> None:
    staged = tmp_path / "Movie.srt"
    staged.write_text("ours\n")
    dst = elsewhere / "Movie.en.srt"
    dst.write_text("the user's\n")
    assert not copy_no_clobber(staged, dst)
    assert dst.read_text() == "the user's\n" and staged.read_text() == "ours\n"


def test_a_crash_after_the_link_is_finished_by_the_next_call(tmp_path: Path, elsewhere: Path) -> None:
    staged = tmp_path / "Movie.srt"
    staged.write_text("ours\n")
    dst = elsewhere / "Movie.en.srt"
    dst.write_text("ours\n")  # linked, then the process died before the staged file was removed
    assert copy_no_clobber(staged, dst)
    assert not staged.exists() and dst.read_text() == "ours\n"
