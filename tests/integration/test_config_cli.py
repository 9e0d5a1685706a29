"""The CLI refuses a bad configuration before it starts anything: exit code 2, the key named,
no stack trace (`transcribed run` as a child process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    """The CLI refuses to start with exit code 2 and a message naming the key."""
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"model": {"batch_size": 0}}))
    done = subprocess.run([sys.executable, "-m", "transcribed", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "model.batch_size" in done.stderr


def test_unknown_model_name_exits_2_without_a_hub_lookup(tmp_path: Path) -> None:
    """A model name that is neither a size nor a directory is a config error, not a stack trace."""
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump({"folders": {"inbox": "in", "outbox": "out", "done": "d",
                                                "failed": "f", "state": "s"},
                                    "model": {"name": "huge-v9"}}))
    done = subprocess.run([sys.executable, "-m", "transcribed", "run", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "model.name: 'huge-v9' is neither a known model size" in done.stderr
    assert "Traceback" not in done.stderr
