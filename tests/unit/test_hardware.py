"""`auto` settings: `choose()` on fabricated hardware, one machine per test, plus the real probe here."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcribed.config import Model
from transcribed.engine.hardware import Hardware, choose, probe
from transcribed.errors import ConfigError

GIB = 1024**3
CUDA_TYPES = frozenset({"float32", "float16", "int8", "int8_float16", "int8_float32", "bfloat16",
                        "int8_bfloat16"})


def gpu(free_gib: float, total_gib: float = 24.0, devices: int = 1, name: str = "NVIDIA RTX 4090",
        types: frozenset[str] = CUDA_TYPES, visible: str | None = None) -> Hardware:
    """A machine with `devices` GPUs that torch and CTranslate2 both see."""
    return Hardware(ct2_cuda_devices=devices, torch_cuda_devices=devices, gpu_name=name,
                    total_bytes=int(total_gib * GIB), free_bytes=int(free_gib * GIB),
                    cuda_compute_types=types, cpu_count=16, visible_devices=visible)


NO_GPU = Hardware(cpu_count=2)


def settings_for(hardware: Hardware, name: str = "large-v3", **model: object):
    """What `auto` becomes for a named model that is not downloaded yet (sized from the table)."""
    return choose(Model(name=name, **model), hardware, Path("/nonexistent/models"), "not downloaded yet")


class TestOnAGpu:
    """With CUDA in both libraries, float16 and a batch size that fits the free memory."""

    def test_a_big_card_gets_float16_and_batch_16(self):
        settings = settings_for(gpu(free_gib=22))
        assert (settings.device, settings.compute_type, settings.batch_size) == ("cuda", "float16", 16)
        assert "NVIDIA RTX 4090" in settings.reasons["device"]
        assert "float16" in settings.reasons["compute_type"]
        assert "16 fits" in settings.reasons["batch_size"]

    def test_short_free_memory_gets_int8_float16_and_a_smaller_batch(self):
        settings = settings_for(gpu(free_gib=6, total_gib=8, name="NVIDIA RTX 3070"))
        assert settings.compute_type == "int8_float16"
        assert 1 <= settings.batch_size < 16
        assert "short" in settings.reasons["compute_type"]

    def test_a_small_model_gets_batch_16_on_a_small_card(self):
        settings = settings_for(gpu(free_gib=3.5, total_gib=4), name="tiny.en")
        assert (settings.compute_type, settings.batch_size) == ("float16", 16)

    def test_batch_size_shrinks_with_free_memory(self):
        sizes = [settings_for(gpu(free_gib=free)).batch_size for free in (40, 12, 8, 6, 4, 3)]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] == 16 and sizes[-1] < 16

    def test_a_gpu_without_float16_gets_int8(self):
        settings = settings_for(gpu(free_gib=10, types=frozenset({"float32", "int8", "int8_float32"})))
        assert settings.compute_type == "int8"

    def test_unknown_free_memory_gets_the_default_16(self):
        hardware = Hardware(ct2_cuda_devices=1, torch_cuda_devices=1, gpu_name="x",
                            cuda_compute_types=CUDA_TYPES)
        assert settings_for(hardware).batch_size == 16

    def test_a_model_on_disk_is_sized_by_its_file(self, tmp_path):
        """A 3 GB model.bin (sparse) on a 6 GB card is short of memory, whatever its name says."""
        with open(tmp_path / "model.bin", "wb") as weights:
            weights.truncate(3 * GIB)
        settings = choose(Model(name=str(tmp_path)), gpu(free_gib=6), tmp_path, "local")
        assert settings.compute_type == "int8_float16"

    def test_device_index_picks_the_gpu(self):
        settings = settings_for(gpu(free_gib=20, devices=2), device_index=1)
        assert (settings.device, settings.device_index) == ("cuda", 1)
        assert "CUDA device 1" in settings.reasons["device"]

    def test_cuda_visible_devices_is_named_in_the_reason(self):
        settings = settings_for(gpu(free_gib=20, visible="2"))
        assert "CUDA_VISIBLE_DEVICES=2" in settings.reasons["device"]


class TestOnTheCpu:
    """Without CUDA, int8 and batch 4 on the CPU, and a reason saying why."""

    def test_no_cuda_gets_cpu_int8_and_batch_4_with_reasons(self):
        settings = settings_for(NO_GPU)
        assert (settings.device, settings.compute_type, settings.batch_size) == ("cpu", "int8", 4)
        assert settings.reasons["device"].startswith("no usable GPU")
        assert "CTranslate2 and torch see no CUDA device" in settings.reasons["device"]
        assert settings.cpu_threads == 2 and "2 CPUs" in settings.reasons["cpu_threads"]

    def test_ctranslate2_alone_is_not_enough(self):
        """The VAD runs in torch: a CPU-only torch build means the CPU, with its reason."""
        hardware = Hardware(ct2_cuda_devices=1, cuda_compute_types=CUDA_TYPES,
                            problems=("torch is a CPU-only build",))
        settings = settings_for(hardware)
        assert settings.device == "cpu"
        assert "CTranslate2 sees 1 CUDA device(s), torch 0" in settings.reasons["device"]
        assert "torch is a CPU-only build" in settings.reasons["device"]

    def test_cuda_visible_devices_that_hides_every_gpu_is_the_reason(self):
        settings = settings_for(Hardware(visible_devices=""))
        assert "CUDA_VISIBLE_DEVICES='' hides every GPU" in settings.reasons["device"]

    def test_device_cpu_is_honoured_on_a_gpu_machine(self):
        settings = settings_for(gpu(free_gib=22), device="cpu")
        assert (settings.device, settings.compute_type, settings.batch_size) == ("cpu", "int8", 4)
        assert settings.reasons["device"] == "set in the config"


class TestExplicitSettings:
    """What the config sets is used as it is, or refused with the key named."""

    def test_explicit_values_are_honoured(self):
        settings = settings_for(gpu(free_gib=4), device="cuda", compute_type="float32",
                                batch_size=2, cpu_threads=3)
        assert (settings.device, settings.compute_type, settings.batch_size,
                settings.cpu_threads) == ("cuda", "float32", 2, 3)
        assert all(settings.reasons[k].startswith("set in the config")
                   for k in ("device", "compute_type", "batch_size", "cpu_threads"))

    def test_cuda_requested_without_cuda_names_model_device(self):
        with pytest.raises(ConfigError, match=r"^model\.device: cuda, but no usable CUDA device"):
            settings_for(NO_GPU, device="cuda")

    @pytest.mark.parametrize("device", ["auto", "cuda"])
    def test_device_index_beyond_the_visible_gpus_names_model_device_index(self, device):
        with pytest.raises(ConfigError, match=r"^model\.device_index: 2, but only 1 CUDA device"):
            settings_for(gpu(free_gib=20, visible="3"), device=device, device_index=2)

    def test_a_compute_type_the_cpu_lacks_names_model_compute_type(self):
        with pytest.raises(ConfigError, match=r"^model\.compute_type: float16 is not supported on the cpu"):
            settings_for(NO_GPU, compute_type="float16")

    def test_a_compute_type_the_gpu_lacks_names_model_compute_type(self):
        old_gpu = gpu(free_gib=10, types=frozenset({"float32", "int8", "int8_float32"}))
        with pytest.raises(ConfigError, match=r"^model\.compute_type: float16"):
            settings_for(old_gpu, compute_type="float16")


def test_probe_here_finds_no_cuda_and_the_cpu_types():
    """On this CPU-only machine the real probe answers without raising, and sees no CUDA."""
    hardware = probe()
    assert hardware.cuda_devices == 0 and hardware.gpu_name is None
    assert "int8" in hardware.cpu_compute_types
    assert hardware.cpu_count >= 1
    assert settings_for(hardware).device == "cpu"
