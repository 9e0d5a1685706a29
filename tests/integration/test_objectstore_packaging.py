"""The object-store Kubernetes manifests against the Kubernetes schemas (kubernetes-validate's
bundled OpenAPI schemas, offline), as tests/integration/test_packaging.py checks the others."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

FOLDER = Path(__file__).resolve().parents[2] / "deploy" / "objectstore" / "kubernetes"


@pytest.mark.parametrize("version", [min(kubernetes_validate.utils.all_versions(),
                                         key=lambda v: tuple(map(int, v.split(".")))),
                                     kubernetes_validate.latest_version()])
def test_object_store_manifests_validate_strictly(version: str) -> None:
    """Every core object validates, unknown fields rejected. KEDA's ScaledObject is a custom
    resource the schemas do not hold: tests/unit/test_objectstore_deploy.py checks it."""
    documents = [(p.name, doc) for p in sorted(FOLDER.glob("*.yaml")) if p.name != "kustomization.yaml"
                 for doc in yaml.safe_load_all(p.read_text()) if doc]
    assert {doc["kind"] for _, doc in documents} == {"ConfigMap", "Deployment", "ScaledObject"}
    for name, doc in documents:
        if doc["kind"] == "ScaledObject":
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((FOLDER / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in FOLDER.glob("*.yaml") if p.name != "kustomization.yaml")
