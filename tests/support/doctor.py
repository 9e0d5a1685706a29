"""Config files for `transcribed doctor` tests: folders named under a root, not created."""

from __future__ import annotations

from pathlib import Path

FOLDERS = ("inbox", "outbox", "done", "failed", "state")


def write_config(root: Path, model: str = "", folders: dict[str, str] | None = None) -> Path:
    """A config file whose folders live under `root` (not created: the daemon creates them);
    `model` is the indented body of a model: section."""
    folders = folders or {name: f"data/{name}" for name in FOLDERS}
    path = root / "transcribed.yaml"
    path.write_text("folders:\n" + "".join(f"  {k}: {v}\n" for k, v in folders.items())
                    + (f"model:\n{model}" if model else ""))
    return path
