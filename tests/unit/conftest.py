"""The unit tier's rule: a unit test starts no process (tests/integration/ is where processes run).

Python's audit hooks see every process start (`subprocess.Popen`, `os.posix_spawn`, `os.fork`,
`os.exec*`, `os.system`, `os.spawn*`) wherever it comes from: the code under test, a library, or
the test itself. A hook cannot be removed once added, so it is added once and only records while
a unit test runs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.exec",
                            "os.system", "os.spawn"})

#: Unit test files that still start a process, each with what it starts: they belong in
#: tests/integration/ (or need a seam that runs no process) and are left to their owners to move.
#: Do not add to this list; move the test instead.
STILL_STARTING_PROCESSES = {
    "test_hook_queue.py": "runs hooks.command (a Python child) to deliver completion hooks",
    "test_library_scan.py": "ffmpeg writes a media file with a subtitle stream for the test",
}

_started: list[str] = []
_watching = [False]


def _record_process_starts(event: str, args: tuple[Any, ...]) -> None:
    if _watching[0] and event in PROCESS_EVENTS:
        _started.append(f"{event}({str(args[0])[:80]})" if args else event)


sys.addaudithook(_record_process_starts)


@pytest.fixture(autouse=True)
def no_process_started(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a unit test that started a process (a child, a fork, an exec)."""
    _started.clear()
    _watching[0] = True
    try:
        yield
    finally:
        _watching[0] = False
    if _started and Path(str(request.node.path)).name not in STILL_STARTING_PROCESSES:
        pytest.fail(f"{request.node.nodeid} started a process, which a unit test may not "
                    f"(move it to tests/integration/): {', '.join(_started[:3])}", pytrace=False)
