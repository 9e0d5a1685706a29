"""The deployment files (Docker, Compose, systemd, Kubernetes, scripts) checked by real tools.

No Docker engine, systemd or cluster runs here, so each file is checked by the strongest offline
tool there is: hadolint for the Dockerfile, `systemd-analyze verify` for the units,
kubernetes-validate's bundled OpenAPI schemas for the manifests, `bash -n` for the scripts.
What the tools cannot see (a base image tag, a stop timeout agreeing with the daemon's grace)
is checked on the text, with the reason beside each check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
UNITS = ROOT / "systemd"
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASH_SCRIPTS = ["docker-build", "docker-run", "check-gpu"]
POWERSHELL_SCRIPTS = [f"{name}.ps1" for name in BASH_SCRIPTS]


def venv_tool(name: str) -> str:
    """The path of a tool installed next to this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable} nor on PATH; it is a declared "
                    "test dependency: run `make install` (or pip install -e '.[test]')")
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text."""
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def seconds(duration: str) -> float:
    """Seconds in a duration written like systemd's or Compose's: 45, 45s, 1m30s, 2min."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|min|m|s)?", str(duration).strip())
    scale = {"h": 3600, "min": 60, "m": 60, "s": 1, "": 1}
    return sum(float(number) * scale[unit] for number, unit in parts)


def unit_directives(path: Path) -> list[tuple[str, str, str]]:
    """The (section, key, value) lines of a systemd unit, comments left out, in order."""
    section, lines = "", []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        lines.append((section, key.strip(), value.strip()))
    return lines


def unit_value(path: Path, key: str) -> str:
    """The value of the one `key=` line of a unit."""
    values = [value for _, k, value in unit_directives(path) if k == key]
    assert len(values) == 1, f"{path.name}: expected one {key}= line, got {values}"
    return values[0]


def grace_seconds(config_text: str) -> float:
    """daemon.shutdown_grace_seconds from a config file's text."""
    return float(yaml.safe_load(config_text)["daemon"]["shutdown_grace_seconds"])


def kubernetes_documents() -> list[tuple[str, dict]]:
    """Every Kubernetes object in deploy/kubernetes, with its file name (kustomization aside)."""
    documents = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue  # kustomize's own file, not an API object: checked separately below
        documents += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


# --- Docker --------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    """hadolint finds nothing in the Dockerfile (ignores carry a comment saying why)."""
    result = run(venv_tool("hadolint"), "--no-color", str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_installs_through_the_makefile():
    """The image installs with the same `make install` target the tests exercise."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^\s*(&&\s*)?make install VENV=/opt/transcribed EDITABLE= EXTRAS=\s",
                     text, re.MULTILINE), "no `make install VENV=/opt/transcribed EDITABLE= EXTRAS=`"


def test_dockerfile_defaults_to_a_cuda12_cudnn9_base():
    """The default base is an NVIDIA CUDA 12.8+ cuDNN runtime image, overridable for CPU."""
    text = DOCKERFILE.read_text()
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert match, "no `ARG BASE_IMAGE=<default>` (the CPU build overrides it)"
    # torch 2.8 from PyPI is built for CUDA 12.8; NVIDIA's tags say "-cudnn-" without a number
    # since cuDNN 9, which is what CTranslate2 4.x loads.
    tag = re.fullmatch(r"nvidia/cuda:12\.(\d+)\.\d+-cudnn-runtime-ubuntu\d+\.\d+", match.group(1))
    assert tag and int(tag.group(1)) >= 8, f"default base {match.group(1)} is not CUDA >= 12.8 + cuDNN"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.MULTILINE)


def test_dockerfile_runs_the_daemon_unprivileged_with_a_health_check():
    """Non-root user, exec-form entrypoint and command, and `status --check` as health check."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^USER 10001(:10001)?$", text, re.MULTILINE)
    assert 'ENTRYPOINT ["transcribed"]' in text
    assert 'CMD ["run", "--config", "/etc/transcribed/transcribed.yaml"]' in text
    assert "COPY config/docker.yaml /etc/transcribed/transcribed.yaml" in text
    assert re.search(r'HEALTHCHECK [^\n]*\\\n\s*CMD \["transcribed", "status", "--check"\]', text)
    for setting in ("PYTHONUNBUFFERED=1", "PYANNOTE_METRICS_ENABLED=false", "HF_HOME=/models"):
        assert setting in text, f"ENV {setting} missing"


def test_dockerignore_lets_through_everything_the_dockerfile_copies():
    """Each COPY source is re-included by the allow-list .dockerignore."""
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    sources = [src.rstrip("/") for line in DOCKERFILE.read_text().splitlines()
               if line.startswith("COPY ") for src in line.split()[1:-1] if not src.startswith("--")]
    assert sources, "the Dockerfile copies nothing?"
    assert not set(sources) - allowed, f"left out by .dockerignore: {set(sources) - allowed}"


def test_compose_file_reserves_one_nvidia_gpu():
    """docker-compose.yml parses, and its default service reserves one NVIDIA GPU."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["transcribed"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]} in devices
    assert "profiles" not in service, "the GPU service must start with a plain `docker compose up`"
    assert any(volume.startswith("./data:/data") for volume in service["volumes"])
    assert "models:/models" in service["volumes"] and "models" in compose["volumes"]


# --- stopping in time ----------------------------------------------------------------------------

def test_every_stop_timeout_exceeds_the_daemons_shutdown_grace():
    """systemd, Compose and Kubernetes wait longer than the grace the daemon takes on SIGTERM."""
    docker_grace = grace_seconds((ROOT / "config" / "docker.yaml").read_text())
    systemd_grace = grace_seconds((ROOT / "config" / "systemd.yaml").read_text())
    configmap = yaml.safe_load((KUBERNETES / "configmap.yaml").read_text())
    kube_grace = grace_seconds(configmap["data"]["transcribed.yaml"])

    for unit in ("transcribed.service", "transcribed@.service"):
        assert seconds(unit_value(UNITS / unit, "TimeoutStopSec")) > systemd_grace, unit
    for name, service in yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"].items():
        assert seconds(service["stop_grace_period"]) > docker_grace, name
    deployment = next(doc for _, doc in kubernetes_documents() if doc["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > kube_grace
    assert "--stop-timeout 45" in (ROOT / "scripts" / "docker-run").read_text()
    assert docker_grace < 45


# --- systemd -------------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", ["transcribed.service", "transcribed@.service"])
def test_systemd_unit_passes_systemd_analyze_verify(unit, tmp_path):
    """`systemd-analyze verify` accepts the unit without a single warning.

    verify parses every line (unknown keys and bad values are only warnings, hence the empty
    stderr), checks that ExecStart's binary exists and is executable, and loads the units it
    depends on. It does not check that User= exists, nor start anything. ExecStart is pointed
    at this venv's `transcribed`, since /opt/transcribed exists only on an installed host.
    """
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze not found: apt-get install systemd")
    binary = venv_tool("transcribed")
    text = (UNITS / unit).read_text()
    assert "ExecStart=/opt/transcribed/bin/transcribed " in text
    (tmp_path / unit).write_text(text.replace("ExecStart=/opt/transcribed/bin/transcribed ",
                                              f"ExecStart={binary} "))
    target = tmp_path / unit
    if unit.endswith("@.service"):
        # A template is verified through an instance: GPU 0's.
        target = tmp_path / unit.replace("@.", "@0.")
        target.symlink_to(tmp_path / unit)
    result = run(analyze, "verify", str(target), cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr.strip(), result.stdout + result.stderr


def test_systemd_units_keep_the_daemon_contract():
    """Both units use sd_notify, the watchdog, and never restart after a configuration error."""
    for unit in ("transcribed.service", "transcribed@.service"):
        path = UNITS / unit
        assert unit_value(path, "Type") == "notify"
        assert unit_value(path, "NotifyAccess") == "main"
        assert seconds(unit_value(path, "WatchdogSec")) > 0
        assert unit_value(path, "Restart") == "on-failure"
        assert unit_value(path, "RestartPreventExitStatus") == "2"
        assert unit_value(path, "User") == unit_value(path, "Group") == "transcribed"
        assert unit_value(path, "ExecStart").startswith("/opt/transcribed/bin/transcribed run ")


def test_template_unit_differs_only_by_pinning_one_gpu():
    """transcribed@.service is transcribed.service plus CUDA_VISIBLE_DEVICES=%i."""
    single = unit_directives(UNITS / "transcribed.service")
    template = unit_directives(UNITS / "transcribed@.service")
    assert ("[Service]", "Environment", "CUDA_VISIBLE_DEVICES=%i") in template
    differing = {line[1] for line in set(single) ^ set(template)}
    assert differing == {"Description", "Environment"}, sorted(set(single) ^ set(template))


# --- Kubernetes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [min(kubernetes_validate.utils.all_versions(),
                                         key=lambda v: tuple(map(int, v.split(".")))),
                                     kubernetes_validate.latest_version()])
def test_kubernetes_manifests_validate_strictly(version):
    """Every object validates against the Kubernetes schemas, unknown fields rejected."""
    documents = kubernetes_documents()
    assert {doc["kind"] for _, doc in documents} >= {"ConfigMap", "Deployment", "PersistentVolumeClaim"}
    for name, doc in documents:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
        assert "namespace" not in doc["metadata"], f"{name}: manifests stay namespace-agnostic"


def test_kustomization_lists_every_manifest():
    """kustomization.yaml names exactly the manifest files beside it."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    files = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_deployment_gives_each_pod_one_gpu_and_shared_storage():
    """One nvidia.com/gpu per pod, probes on /healthz, and ReadWriteMany data."""
    objects = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in kubernetes_documents()}
    pod = objects[("Deployment", "transcribed")]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
    assert pod["securityContext"]["runAsNonRoot"] is True
    for volume in pod["volumes"]:
        if "persistentVolumeClaim" in volume:
            claim = objects[("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])]
            assert claim["spec"]["accessModes"] == ["ReadWriteMany"], claim["metadata"]["name"]


# --- scripts and configs -------------------------------------------------------------------------

@pytest.mark.parametrize("name", BASH_SCRIPTS + POWERSHELL_SCRIPTS)
def test_script_exists_and_is_executable(name):
    """Each helper script is there and executable."""
    path = ROOT / "scripts" / name
    assert path.is_file() and os.access(path, os.X_OK), f"{path} missing or not executable"


@pytest.mark.parametrize("name", BASH_SCRIPTS)
def test_bash_script_parses_and_fails_fast(name):
    """`bash -n` parses each bash script, and each sets -euo pipefail."""
    path = ROOT / "scripts" / name
    result = run("bash", "-n", str(path))
    assert result.returncode == 0, result.stderr
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in path.read_text()


@pytest.mark.parametrize("name", ["docker.yaml", "systemd.yaml"])
def test_deployment_config_parses_as_yaml(name):
    """Each deployment config is a YAML mapping with the folders and model sections."""
    data = yaml.safe_load((ROOT / "config" / name).read_text())
    assert isinstance(data, dict) and {"folders", "model"} <= set(data)


# --- health and metrics wiring -------------------------------------------------------------------

def test_healthcheck_command_is_a_real_subcommand():
    """The HEALTHCHECK's `transcribed status --check` exists in the installed CLI."""
    result = run(venv_tool("transcribed"), "status", "--help")
    assert result.returncode == 0, result.stderr
    assert "--check" in result.stdout and "--json" in result.stdout


def test_metrics_port_agrees_across_config_probes_and_scrape_annotations():
    """The port the daemon listens on is the one the probes, Prometheus and EXPOSE point at."""
    configmap = yaml.safe_load((KUBERNETES / "configmap.yaml").read_text())
    kube_listen = yaml.safe_load(configmap["data"]["transcribed.yaml"])["metrics"]["listen"]
    kube_port = int(kube_listen.rpartition(":")[2])
    pod = next(doc for _, doc in kubernetes_documents() if doc["kind"] == "Deployment")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        named = container[probe]["httpGet"]["port"]
        assert ports.get(named, named) == kube_port, probe
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == kube_port
    assert annotations["prometheus.io/path"] == "/metrics"

    docker_listen = yaml.safe_load((ROOT / "config" / "docker.yaml").read_text())["metrics"]["listen"]
    exposed = re.search(r"^EXPOSE (\d+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert exposed and int(exposed.group(1)) == int(docker_listen.rpartition(":")[2])


def test_systemd_config_keeps_the_metrics_listener_off():
    """config/systemd.yaml is shared by transcribed@ instances: one port cannot serve them all."""
    data = yaml.safe_load((ROOT / "config" / "systemd.yaml").read_text())
    assert data["metrics"]["listen"] is None
