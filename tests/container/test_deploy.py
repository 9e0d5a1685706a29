"""The deployment files run for real on the image: scripts/check-gpu, the Compose file, the manifests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.container.conftest import REPO, BuiltImage, podman_compose
from tests.container.podman import JOB_TIMEOUT, START_TIMEOUT, Container, drop, podman, transcribed, unique
from tests.support.corpus import Clip
from tests.support.daemon import wait_until

KUBERNETES = REPO / "deploy" / "kubernetes"


def test_check_gpu_says_cpu_only_with_exit_code_4(image: BuiltImage) -> None:
    """No GPU here: the doctor in the image transcribes on the CPU, check-gpu says so and exits 4."""
    env = {**os.environ, "CONTAINER_ENGINE": "podman", "TRANSCRIBED_IMAGE": image.name}
    result = subprocess.run([str(REPO / "scripts" / "check-gpu")], env=env, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "READY: transcribes on the CPU" in result.stdout  # the doctor's own verdict
    assert "ok    Transcription" in result.stdout  # it really transcribed its sample clip
    assert "CPU only" in result.stderr


def free_port() -> int:
    """A port free on 127.0.0.1 now, for the published metrics port (9108 may be taken)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def compose_project(tmp_path: Path, image: BuiltImage) -> Iterator[tuple[Path, dict[str, str]]]:
    """docker-compose.yml in a folder of its own (./data beside it), torn down with its volume."""
    shutil.copy(REPO / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / "data").mkdir()
    os.chown(tmp_path / "data", 10001, 10001)  # the compose file's comment: hand the folder over
    env = {**os.environ, "TRANSCRIBED_IMAGE": image.name, "TRANSCRIBED_METRICS_PORT": str(free_port()),
           "COMPOSE_PROJECT_NAME": unique("transcribed-compose")}
    yield tmp_path, env
    subprocess.run([podman_compose(), "--profile", "cpu", "down", "--volumes"], cwd=tmp_path,
                   env=env, capture_output=True, timeout=180, check=False)


def compose(project: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    folder, env = project
    result = subprocess.run([podman_compose(), "--profile", "cpu", *args], cwd=folder, env=env,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"podman-compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def test_the_compose_file_runs_with_podman_compose(compose_project, recording: Clip) -> None:
    """`podman-compose --profile cpu up -d transcribed-cpu` transcribes ./data/inbox; stop is clean."""
    folder, env = compose_project
    compose(compose_project, "up", "-d", "transcribed-cpu")
    container = podman("ps", "--all", "--format", "{{.Names}}", "--filter",
                       f"label=com.docker.compose.project={env['COMPOSE_PROJECT_NAME']}").stdout.split()
    assert len(container) == 1, container
    assert podman("inspect", "--format", "{{.HostConfig.Init}}", container[0]).stdout.strip() == "true"
    daemon = Container(env["TRANSCRIBED_IMAGE"], name=container[0])
    daemon.wait_for("daemon.started", START_TIMEOUT)

    name = drop(recording, folder / "data", (10001, 10001))
    assert transcribed(folder / "data", name, daemon).strip()
    compose(compose_project, "stop", "transcribed-cpu")  # with stop_grace_period's 45 s
    assert podman("inspect", "--format", "{{.State.ExitCode}}", container[0]).stdout.strip() == "0"


def kube_manifest(image: str) -> str:
    """The ConfigMap, the claims and the Deployment in one file, the image pointed at the test's
    (what kustomization.yaml's `images:` does for a registry)."""
    documents = []
    for name in ("configmap.yaml", "pvc.yaml", "deployment.yaml"):
        documents += [d for d in yaml.safe_load_all((KUBERNETES / name).read_text()) if d]
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return yaml.safe_dump_all(documents)


@pytest.fixture
def kube_file(tmp_path: Path, image: BuiltImage) -> Iterator[Path]:
    """The manifests for `podman kube play`; the pod and every volume it made removed after."""
    path = tmp_path / "transcribed.yaml"
    path.write_text(kube_manifest(image.name))
    volumes = ["transcribed-data", "transcribed-models", "transcribed-config"]
    podman("volume", "rm", "--force", *volumes, check=False)  # leftovers of an interrupted run
    yield path
    podman("kube", "down", str(path), check=False, timeout=180)
    podman("volume", "rm", "--force", *volumes, check=False)


def test_podman_kube_play_runs_a_pod_that_transcribes_a_file(
        image: BuiltImage, kube_file: Path, recording: Clip) -> None:
    """The manifests as they are (image aside): the pod runs as 10001 with the ConfigMap's config."""
    podman("kube", "play", str(kube_file), timeout=300)
    containers = podman("ps", "--format", "{{.Names}}", "--filter", "pod=transcribed-pod-0").stdout.split()
    daemon = Container(image.name, name=next(name for name in containers if name.endswith("-transcribed")))
    assert daemon.inspect("{{.Config.User}}") == "10001:10001"
    config = daemon.exec("cat", "/etc/transcribed/transcribed.yaml").stdout
    assert "ReadWriteMany" in config  # the ConfigMap's file, not the image's

    mountpoint = podman("volume", "inspect", "--format", "{{.Mountpoint}}", "transcribed-data").stdout
    volume = Path(mountpoint.strip())
    wait_until((volume / "inbox").is_dir, JOB_TIMEOUT, "the pod's daemon to make its folders")
    name = drop(recording, volume, (10001, 10001))
    assert transcribed(volume, name, daemon).strip()
