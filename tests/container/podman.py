"""Driving podman from the container tests: builds, containers, their logs and their exit codes.

Every container a test starts gets a unique name and is removed at the end of the test, whatever
happened, so a failed run leaves nothing running and nothing on disk but the cached base image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.corpus import Clip
from tests.support.daemon import wait_until

#: The base image tests/container/prepare-host makes (Debian from debootstrap + this machine's CA).
BASE_IMAGE = os.environ.get("TRANSCRIBED_TEST_BASE", "localhost/transcribed-test-base:bookworm")
#: This machine's container quirks: crun fails here (runc is set in containers.conf), builds need
#: chroot isolation and the host network.
BUILD_FLAGS = ["--isolation", "chroot", "--network", "host"]
#: The CLI of the image's daemon with its own config (the image's CMD), for `--engine` variants.
DAEMON_COMMAND = ["run", "--config", "/etc/transcribed/transcribed.yaml"]
#: Start-up with the real engine takes about 20 s here (imports, the model); 2 shared cores.
START_TIMEOUT = 240
#: A short recording through the real engine, start-up aside, takes seconds.
JOB_TIMEOUT = 240


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS`, output captured as text; a failure says the command and its stderr."""
    result = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def unique(prefix: str) -> str:
    """A name no other run (or other engineer's run) on this machine uses at the same time."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def missing_prerequisite() -> str | None:
    """Why the container tests cannot run here, or None when they can."""
    if shutil.which("podman") is None:
        return "podman is not installed (tests/container/prepare-host installs it)"
    if os.geteuid() != 0:
        return "the container tests run podman as root (rootless podman is not set up here)"
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        return f"the base image {BASE_IMAGE} is missing: run tests/container/prepare-host"
    return None


def image_size_bytes(image: str) -> int:
    """The image's size as podman reports it (uncompressed, all layers)."""
    return int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())


@dataclass
class Container:
    """One detached `podman run` of the image; removed (with -f) when the test ends."""

    image: str
    args: list[str] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    name: str = field(default_factory=lambda: unique("transcribed-test"))

    def start(self) -> Container:
        podman("run", "--detach", "--name", self.name, *self.args, self.image, *self.command)
        return self

    def logs(self) -> list[str]:
        """Every line the container wrote to stdout and stderr so far."""
        result = podman("logs", self.name, check=False)
        return (result.stdout + result.stderr).splitlines()

    def events(self) -> list[dict[str, Any]]:
        """The log lines parsed as JSON; a line that is not JSON fails the test, naming it."""
        events = []
        for line in self.logs():
            try:
                events.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"a log line of {self.name} is not JSON: {line!r}") from None
        return events

    def has_logged(self, event: str) -> dict[str, Any] | None:
        return next((e for e in self.events() if e.get("event") == event), None)

    def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        """The first log event named `event`; fails early when the container has exited."""
        def logged() -> dict[str, Any] | None:
            found = self.has_logged(event)
            if found is None and not self.running():
                raise AssertionError(f"{self.name} exited ({self.exit_code()}) before {event}:\n"
                                     + "\n".join(self.logs()[-30:]))
            return found
        return wait_until(logged, timeout, f"{event} in the logs of {self.name}", interval=0.5)

    def inspect(self, template: str) -> str:
        return podman("inspect", "--format", template, self.name).stdout.strip()

    def running(self) -> bool:
        return self.inspect("{{.State.Running}}") == "true"

    def exit_code(self) -> int:
        return int(self.inspect("{{.State.ExitCode}}"))

    def stop(self, timeout: int = 45) -> tuple[int, float]:
        """`podman stop -t TIMEOUT`: the exit code and the seconds the stop took."""
        started = time.monotonic()
        podman("stop", "--time", str(timeout), self.name, timeout=timeout + 60)
        return self.exit_code(), time.monotonic() - started

    def healthcheck(self) -> str:
        """`podman healthcheck run`: "healthy" (exit 0) or its message, e.g. "unhealthy"."""
        result = podman("healthcheck", "run", self.name, check=False, timeout=90)
        output = (result.stdout + result.stderr).strip()
        return "healthy" if result.returncode == 0 else output or f"exit {result.returncode}"

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False)

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", "--time", "0", self.name, check=False, timeout=120)

    def __enter__(self) -> Container:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()


def files_in(folder: Path) -> list[str]:
    """Relative paths of the plain files below `folder`, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def drop(clip: Clip, data: Path, owner: tuple[int, int]) -> str:
    """Put `clip` into DATA/inbox the way a careful producer does (whole file, one rename)."""
    staging = data / f".{clip.path.name}.part"
    shutil.copyfile(clip.path, staging)
    os.chown(staging, *owner)
    staging.rename(data / "inbox" / clip.path.name)
    return clip.path.name


def transcribed(data: Path, name: str, daemon: Container) -> str:
    """Wait until the recording's source is in done/ and its transcript in outbox/; the text.

    Fails at once, with the daemon's last lines, when its container has exited meanwhile.
    """
    stem = Path(name).stem

    def finished() -> bool:
        if (data / "done" / name).exists() and (data / "outbox" / f"{stem}.txt").exists():
            return True
        if not daemon.running():
            raise AssertionError(f"{daemon.name} exited ({daemon.exit_code()}) before {name} was done:\n"
                                 + "\n".join(daemon.logs()[-10:]))
        return False
    wait_until(finished, JOB_TIMEOUT, f"{name} in done/ and {stem}.txt in outbox/", interval=0.5)
    return (data / "outbox" / f"{stem}.txt").read_text(encoding="utf-8")
