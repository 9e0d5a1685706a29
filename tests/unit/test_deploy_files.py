"""The deployment files (Docker, Compose, systemd, Kubernetes, scripts) checked on their text
for what no tool can see: a base image tag, a stop timeout agreeing with the daemon's grace,
the units' contract with the daemon, one GPU per pod, ports that agree; the reason is beside
each check. The real tools (hadolint, `systemd-analyze verify`, the Kubernetes schemas,
`bash -n`) run in tests/integration/test_packaging.py."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from tests.support.deploy import (
    BASH_SCRIPTS,
    DOCKERFILE,
    KUBERNETES,
    POWERSHELL_SCRIPTS,
    ROOT,
    UNITS,
    grace_seconds,
    kubernetes_documents,
    seconds,
    unit_directives,
    unit_value,
)


def test_dockerfile_installs_through_the_makefile():
    """The image installs with the same `make install` target the tests exercise, with the
    object-store client and without the test extras."""
    text = DOCKERFILE.read_text()
    match = re.search(r"^\s*(&&\s*)?make install VENV=/opt/transcribed EDITABLE= EXTRAS=(\S*)\s",
                      text, re.MULTILINE)
    assert match, "no `make install VENV=/opt/transcribed EDITABLE= EXTRAS=...`"
    assert match.group(2) == "'[objectstore]'"


def test_dockerfile_defaults_to_a_cuda12_base_and_points_ctranslate2_at_torchs_cuda_wheels():
    """The default base is an NVIDIA CUDA 12.8+ image (the small `base` one: cuBLAS and cuDNN come
    from torch's own CUDA wheels, put on the library path), overridable for CPU."""
    text = DOCKERFILE.read_text()
    match = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.MULTILINE)
    assert match, "no `ARG BASE_IMAGE=<default>` (the CPU build overrides it)"
    # torch 2.8 from PyPI is built for CUDA 12.8; the cudnn-runtime base stays a one-argument choice.
    tag = re.fullmatch(r"nvidia/cuda:12\.(\d+)\.\d+-(base|cudnn-runtime)-ubuntu\d+\.\d+", match.group(1))
    assert tag and int(tag.group(1)) >= 8, f"default base {match.group(1)} is not CUDA >= 12.8"
    assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.MULTILINE)
    if tag.group(2) == "base":  # no cuBLAS in it: CTranslate2 must find torch's nvidia-cublas-cu12 wheel
        library_path = re.search(r"LD_LIBRARY_PATH=(\S+)", text)
        assert library_path and "nvidia/cublas/lib" in library_path.group(1), "cuBLAS not on the path"


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


@pytest.mark.parametrize("name", BASH_SCRIPTS + POWERSHELL_SCRIPTS)
def test_script_exists_and_is_executable(name):
    """Each helper script is there and executable."""
    path = ROOT / "scripts" / name
    assert path.is_file() and os.access(path, os.X_OK), f"{path} missing or not executable"


@pytest.mark.parametrize("name", ["docker.yaml", "systemd.yaml"])
def test_deployment_config_parses_as_yaml(name):
    """Each deployment config is a YAML mapping with the folders and model sections."""
    data = yaml.safe_load((ROOT / "config" / name).read_text())
    assert isinstance(data, dict) and {"folders", "model"} <= set(data)


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
