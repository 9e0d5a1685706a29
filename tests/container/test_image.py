"""The image itself: it builds from a clean checkout, its CLI runs, and what the docs say of it holds."""

from __future__ import annotations

import re

import pytest
from tests.container.conftest import REPO, BuiltImage
from tests.container.podman import podman

#: The libraries CTranslate2 (and the doctor) load by name from the linker path on a GPU.
CUDA_LIBRARIES = ("libcublas.so.12", "libcublasLt.so.12", "libcudnn.so.9")

WHICH_FILE_PROVIDES = """
import ctypes, sys
for name in sys.argv[1:]:
    ctypes.CDLL(name)
maps = open("/proc/self/maps").read().split()
for name in sys.argv[1:]:
    print(next(p for p in maps if p.endswith("/" + name)))
"""


def test_the_image_builds_from_a_clean_checkout_and_its_cli_runs(image: BuiltImage) -> None:
    """Built by the session fixture from `git archive HEAD`; `transcribed --help` in it."""
    if image.build_seconds is None:
        pytest.skip(f"$TRANSCRIBED_TEST_IMAGE={image.name}: not built by this session")
    result = podman("run", "--rm", image.name, "--help")
    assert result.stdout.startswith("usage: transcribed"), result.stdout
    for command in ("run", "status", "doctor", "transcribe", "config"):
        assert command in result.stdout


def test_ctranslate2s_cuda_libraries_load_from_torchs_wheels(image: BuiltImage) -> None:
    """By name, as CTranslate2 loads them: found through LD_LIBRARY_PATH in torch's nvidia wheels.

    This is what lets the GPU image use the small CUDA base (no second copy of cuBLAS/cuDNN).
    Loading needs no GPU; only calling into them does.
    """
    result = podman("run", "--rm", "--entrypoint", "python3", image.name, "-c",
                    WHICH_FILE_PROVIDES, *CUDA_LIBRARIES)
    paths = result.stdout.split()
    assert len(paths) == len(CUDA_LIBRARIES), result.stdout + result.stderr
    for path in paths:
        assert re.fullmatch(r"/opt/transcribed/lib/python3\.\d+/site-packages/nvidia/(cublas|cudnn)/lib/"
                            r"lib\w+\.so\.\d+", path), path


def test_the_docs_give_the_measured_image_size(image: BuiltImage) -> None:
    """docs/container.md's "Image size: N GB" is within 10 % of what podman measures now."""
    text = (REPO / "docs" / "container.md").read_text(encoding="utf-8")
    match = re.search(r"Image size: \*\*(\d+(?:\.\d+)?) GB\*\*", text)
    assert match, "docs/container.md has no 'Image size: **N GB**' line"
    documented, measured = float(match.group(1)), image.size_bytes / 1e9
    assert abs(documented - measured) <= 0.1 * measured, (
        f"docs/container.md says {documented} GB, podman measures {measured:.2f} GB")


def test_the_build_context_is_the_allow_list(image: BuiltImage) -> None:
    """Nothing but what .dockerignore lets through reaches the image's /src (no tests, no data)."""
    result = podman("run", "--rm", "--entrypoint", "ls", image.name, "-A", "/src")
    assert sorted(result.stdout.split()) == ["LICENSE", "Makefile", "README.md", "daemon", "pyproject.toml"]

