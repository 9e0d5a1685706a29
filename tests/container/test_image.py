"""The image itself: it builds from a clean checkout, its CLI runs, and what the docs say of it holds."""

from __future__ import annotations

import json
import re

import pytest
from tests.container.conftest import REPO, BuiltImage
from tests.container.podman import podman

#: The libraries CTranslate2 (and the doctor) load by name from the linker path on a GPU: cuBLAS,
#: and cuDNN 9 with the sub-libraries libcudnn.so.9 itself loads by name when it is first used.
CUDA_LIBRARIES = ("libcublas.so.12", "libcublasLt.so.12", "libcudnn.so.9", "libcudnn_graph.so.9",
                  "libcudnn_ops.so.9", "libcudnn_cnn.so.9", "libcudnn_adv.so.9",
                  "libcudnn_engines_precompiled.so.9", "libcudnn_engines_runtime_compiled.so.9",
                  "libcudnn_heuristic.so.9")

WHICH_FILE_PROVIDES = """
import ctypes, sys
for name in sys.argv[1:]:
    ctypes.CDLL(name)
maps = open("/proc/self/maps").read().split()
for name in sys.argv[1:]:
    print(next(p for p in maps if p.endswith("/" + name)))
"""

#: Every shared library torch, its CUDA wheels and CTranslate2 ship, with what each needs that
#: the image's linker (its LD_LIBRARY_PATH, each library's own RUNPATH) cannot find: `ldd`, run
#: in the image, one JSON object per library.
UNRESOLVED = """
import glob, json, os, subprocess, sysconfig
site = sysconfig.get_path("purelib")
patterns = ("nvidia/*/lib/*.so*", "torch/lib/*.so*", "ctranslate2*/*.so*", "ctranslate2.libs/*.so*")
for path in sorted({p for pattern in patterns for p in glob.glob(os.path.join(site, pattern))}):
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    missing = sorted(line.split()[0] for line in out.splitlines() if "not found" in line)
    print(json.dumps({"library": os.path.relpath(path, site), "missing": missing}))
"""

#: What may be missing from the image, and why it is no defect there: the driver's own library
#: comes from the host (the NVIDIA Container Toolkit mounts it into the container at run time),
#: and GPUDirect Storage over RDMA (cuFile's RDMA plugin) needs InfiniBand libraries that nothing
#: here loads (torch loads cuFile only for its GPUDirect Storage API, never called).
PROVIDED_ELSEWHERE = {"libcuda.so.1": "the host's driver, mounted by the NVIDIA Container Toolkit"}
NOT_LOADED = {"nvidia/cufile/lib/libcufile_rdma.so.1": {"libibverbs.so.1", "libmlx5.so.1", "librdmacm.so.1"}}


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


def test_every_cuda_library_torch_and_ctranslate2_need_resolves_in_the_image(image: BuiltImage) -> None:
    """A missing or mismatched CUDA library aborts the process on a GPU (PEERS.md: "Could not load
    library libcudnn_ops_infer.so.8 ... Aborted"), where no test runs. So every library the image
    ships for torch, its CUDA wheels and CTranslate2 is checked here, without a GPU: each one's
    needed libraries resolve with the image's linker path, except the driver's (the host's)."""
    result = podman("run", "--rm", "--entrypoint", "python3", image.name, "-c", UNRESOLVED)
    libraries = [json.loads(line) for line in result.stdout.splitlines()]
    names = {entry["library"] for entry in libraries}
    assert any(n.startswith("torch/lib/libtorch_cuda") for n in names), sorted(names)
    assert any(n.startswith("nvidia/cudnn/lib/") for n in names), sorted(names)
    assert any("ctranslate2" in n for n in names), sorted(names)
    unresolved = {entry["library"]: set(entry["missing"]) - set(PROVIDED_ELSEWHERE)
                  - NOT_LOADED.get(entry["library"], set()) for entry in libraries}
    assert {lib: missing for lib, missing in unresolved.items() if missing} == {}


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

