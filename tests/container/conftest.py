"""The container tier: the image built from a clean checkout with podman, then run for real.

Collected only when named on the command line (`make container-test` runs
`pytest tests/container`): a build takes minutes and about 9 GB, which `make test` must not spend.
Needs root, podman and the local base image that tests/container/prepare-host makes; in CI a
missing one is a failure with its reason, elsewhere a skip with it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.conftest import IN_CI
from tests.container.podman import (
    BASE_IMAGE,
    BUILD_FLAGS,
    image_size_bytes,
    missing_prerequisite,
    podman,
    unique,
)
from tests.support.corpus import Clip, clips

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: prepare-host's wheel folder, mounted where the base's PIP_FIND_LINKS points.
WHEELS = Path(os.environ.get("TRANSCRIBED_CI_CACHE", Path.home() / ".cache" / "transcribed-ci")) \
    / "container-base" / "wheels"


#: The session's image, for the summary line at the end; a failed build's message.
BUILT: list[BuiltImage] = []
BUILD_FAILED: list[str] = []
#: pytest-timeout counts fixture set-up: the first test also waits for the build (minutes).
TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.timeout(TIMEOUT_S))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The measured build time and image size (docs/container.md quotes the size)."""
    for built in BUILT:
        took = "not built here" if built.build_seconds is None else f"built in {built.build_seconds:.0f} s"
        terminalreporter.write_line(f"container image {built.name}: {took}, {built.size_bytes / 1e9:.2f} GB")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Ignore this folder unless a command-line argument points into it."""
    named = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    if any(path == HERE or HERE in path.parents for path in named):
        return None
    return True


@dataclass(frozen=True)
class BuiltImage:
    """The image under test, how long it took to build, and its size."""

    name: str
    build_seconds: float | None  # None: $TRANSCRIBED_TEST_IMAGE, built elsewhere
    size_bytes: int


@pytest.fixture(scope="session")
def image() -> Iterator[BuiltImage]:
    """The image, built once per session from `git archive HEAD` by scripts/docker-build.

    $TRANSCRIBED_TEST_IMAGE names an existing image to use instead (the build test then skips).
    """
    reason = missing_prerequisite()
    if reason:
        if IN_CI:
            pytest.fail(f"the container tests cannot run: {reason}")
        pytest.skip(reason)
    given = os.environ.get("TRANSCRIBED_TEST_IMAGE")
    if given:  # a developer's shortcut while changing the tests: no build, nothing removed
        yield BuiltImage(given, None, image_size_bytes(given))
        return
    if BUILD_FAILED:
        pytest.fail(f"the image did not build (see the first error): {BUILD_FAILED[0][:300]}")
    name = f"localhost/{unique('transcribed-test')}:latest"
    with tempfile.TemporaryDirectory(prefix="transcribed-checkout-") as checkout:
        export_head(Path(checkout))
        started = time.monotonic()
        try:
            try:
                build(Path(checkout), name)
            except AssertionError as failure:
                BUILD_FAILED.append(str(failure))  # pytest would build again for every test
                raise
            built = BuiltImage(name, round(time.monotonic() - started, 1), image_size_bytes(name))
            BUILT.append(built)
            yield built
        finally:
            podman("rmi", "--force", name, check=False)


def export_head(target: Path) -> None:
    """The committed tree, as a clean clone has it: nothing untracked, nothing uncommitted."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "HEAD"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)


def build(checkout: Path, name: str) -> None:
    """scripts/docker-build with podman on the local base; no intermediate images kept."""
    args = ["--build-arg", f"BASE_IMAGE={BASE_IMAGE}", *BUILD_FLAGS, "--layers=false", "--force-rm"]
    if WHEELS.is_dir():
        args += ["--volume", f"{WHEELS}:/var/cache/transcribed-wheels:ro"]
    env = {**os.environ, "CONTAINER_ENGINE": "podman", "TRANSCRIBED_IMAGE": name}
    result = subprocess.run([str(checkout / "scripts" / "docker-build"), *args], cwd=checkout,
                            env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, (
        f"the image did not build:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """An empty host folder for /data, handed to the image's uid as the docs say to."""
    folder = tmp_path / "data"
    folder.mkdir()
    os.chown(folder, 10001, 10001)
    return folder


def podman_compose() -> str:
    """podman-compose from the venv (pyproject's test extras), else from PATH."""
    beside = Path(sys.executable).parent / "podman-compose"
    found = str(beside) if beside.is_file() else shutil.which("podman-compose")
    if found is None:
        pytest.fail("podman-compose is missing: it is a test dependency (make install)")
    return found


@pytest.fixture
def recording(corpus: None) -> Clip:
    """A short real English recording with its reference text."""
    return clips(language="en", max_duration=6, sets=["librispeech"])[0]
