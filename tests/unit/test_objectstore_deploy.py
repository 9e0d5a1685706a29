"""The object-store deployment files agree with each other and with the daemon: the Compose file
runs nats-server, SeaweedFS and two daemons on config/objectstore.yaml; the Kubernetes manifests'
KEDA ScaledObject scales the Deployment on the consumer the config names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from transcribed.config import load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "objectstore"


def _kubernetes() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for doc in yaml.safe_load_all(path.read_text()):
                found[doc["kind"]] = doc
    return found


def test_compose_runs_the_queue_the_store_and_two_daemons_on_the_shipped_config() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    daemons = [name for name, s in services.items() if s.get("command", [None])[0] == "run"]
    assert len(daemons) == 2 and {"nats", "seaweedfs"} <= set(services)
    assert "-js" in services["nats"]["command"]
    config = load_config(ROOT / "config" / "objectstore.yaml")
    assert config.objectstore.enabled
    assert config.objectstore.endpoint == "http://seaweedfs:8333"
    assert config.objectstore.nats_url == "nats://nats:4222"
    assert f"-bucket={config.objectstore.bucket}" in services["seaweedfs"]["command"]
    for name in daemons:
        mounts = services[name]["volumes"]
        assert "../../config/objectstore.yaml:/etc/transcribed/transcribed.yaml:ro" in mounts
        assert (DEPLOY / "../../config/objectstore.yaml").resolve().is_file()
        grace = float(services[name]["stop_grace_period"].rstrip("s"))
        assert grace > config.daemon.shutdown_grace_seconds
    assert len({tuple(services[name]["volumes"]) for name in daemons}) == 2, "each daemon its own work folder"


def test_keda_scales_the_deployment_on_the_consumer_the_config_names() -> None:
    objects = _kubernetes()
    config = parse_config(yaml.safe_load(objects["ConfigMap"]["data"]["transcribed.yaml"]))
    scaled, deployment = objects["ScaledObject"], objects["Deployment"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    trigger, = scaled["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"]["stream"] == config.objectstore.stream
    assert trigger["metadata"]["consumer"] == config.objectstore.consumer
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > config.daemon.shutdown_grace_seconds
    container, = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["envFrom"] == [{"secretRef": {"name": "transcribed-s3"}}]
    assert pod["volumes"][0]["emptyDir"], "no shared volume: each pod stages its own jobs"
    assert all("namespace" not in doc["metadata"] for doc in objects.values())
