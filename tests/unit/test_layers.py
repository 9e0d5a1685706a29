"""The package's layers: a module imports only from its own layer or those below it.

The order, lowest first, is the one docs/design.md draws: the shared modules (errors, logs,
durable, languages, config), the engine, the spool, operations, transcription, intake,
libraries, the object store, hooks, retention, the consumer, the doctor, and the entry points (service, cli). Read from the
source with `ast`, imports inside functions included (the lazy ones that keep torch out of
`transcribed status` count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "transcribed"

#: Lowest first; each entry is the first part of a module's name under the package.
LAYERS: list[set[str]] = [
    {"__init__", "errors", "logs", "durable", "languages", "config"},
    {"engine"},
    {"spool"},
    {"operations"},
    {"transcription"},
    {"intake"},
    {"library"},
    {"objectstore"},
    {"hooks"},
    {"retention"},
    {"consumer"},
    {"doctor"},
    {"service", "terminal", "cli", "__main__"},
]


def layer_of(module: tuple[str, ...]) -> int:
    head = module[0] if module else "__init__"  # () is the package's own __init__
    return next(i for i, names in enumerate(LAYERS) if head in names)


def module_of(path: Path) -> tuple[str, ...]:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts


def imported(path: Path) -> list[tuple[str, ...]]:
    """Every module of the package that `path` imports, as a tuple of name parts."""
    here = module_of(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = (*base, *(node.module.split(".") if node.module else ()))
            elif node.module and node.module.split(".")[0] == "transcribed":
                target = tuple(node.module.split(".")[1:])
            else:
                continue
            found += [_module_or_package(target, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [tuple(a.name.split(".")[1:]) for a in node.names if a.name.split(".")[0] == "transcribed"]
    return found


def _module_or_package(target: tuple[str, ...], name: str) -> tuple[str, ...]:
    """`from target import name`: the module `name` where target is a package holding one, else
    `target` itself (a name defined there)."""
    inside = PACKAGE.joinpath(*target, name)
    return (*target, name) if inside.with_suffix(".py").is_file() or inside.is_dir() else target


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "data" not in p.relative_to(PACKAGE).parts)


def test_every_module_is_in_a_layer() -> None:
    assert [str(p.relative_to(PACKAGE)) for p in MODULES
            if not any(module_of(p)[0] in names for names in LAYERS)] == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_up_the_layers(path: Path) -> None:
    mine = layer_of(module_of(path))
    upward = [".".join(target) for target in imported(path) if layer_of(target) > mine]
    assert upward == [], f"{path.relative_to(PACKAGE)} imports from a higher layer: {upward}"


def test_the_top_level_holds_only_entry_and_shared_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top
    assert {p.stem for p in PACKAGE.glob("*.py")} <= LAYERS[0] | LAYERS[-1]
