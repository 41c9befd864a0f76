"""The layers of DESIGN.md, enforced: every ``import`` of every module under ``src/selfsup``.

Order, lowest first (a module may import its own layer and the ones below, never above)::

    errors, home  <  utils, transforms, models, loss, data, selection
      <  methods, embedding, core, config  <  curation, runfolder
      <  apphelpers, openapi_generated  <  worker, server, api  <  web  <  cli

and on top of the order:

* the server, the web app and the helpers below both (``apphelpers``) never import torch,
  torchvision, Lightning or timm, not even lazily inside a function;
* ``web`` and ``server`` do not import each other (they meet through the backend interface
  of ``selfsup.apphelpers.web_backend``; ``selfsup.cli`` puts them together);
* the API client and the worker do not import ``server`` (they talk to it over HTTP).

Every import counts: module level, inside functions, under ``TYPE_CHECKING``, and
``importlib.import_module("...")`` with a literal name. The check parses the files with
:mod:`ast` and imports nothing, so it is quick and cannot be fooled by import order.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "selfsup"

#: Rank of each top-level part of ``selfsup``; an import may not go to a higher rank.
LAYERS: dict[str, int] = {
    **dict.fromkeys(("errors", "home"), 0),
    **dict.fromkeys(("utils", "transforms", "models", "loss", "data", "selection"), 1),
    **dict.fromkeys(("methods", "embedding", "core", "config"), 2),
    **dict.fromkeys(("curation", "runfolder"), 3),
    **dict.fromkeys(("apphelpers", "openapi_generated"), 4),
    **dict.fromkeys(("worker", "server", "api"), 5),
    "web": 6,
    "cli": 7,
}

#: Parts that must never import torch or the libraries built on it.
TORCH_FREE = frozenset({"server", "web", "apphelpers"})
TORCH_LIBRARIES = frozenset({"torch", "torchvision", "lightning", "pytorch_lightning", "timm"})

#: Imports forbidden within the order: (importer, imported) -> why.
FORBIDDEN: dict[tuple[str, str], str] = {
    ("web", "server"): "web and server do not import each other; they share "
    "selfsup.apphelpers and are put together in selfsup.cli",
    ("server", "web"): "web and server do not import each other; they share "
    "selfsup.apphelpers and are put together in selfsup.cli",
    ("api", "server"): "the API client talks to the server over HTTP; shared code belongs "
    "below both (selfsup.apphelpers, selfsup.config)",
    ("worker", "server"): "the worker talks to the server over HTTP; shared code belongs "
    "below both (selfsup.apphelpers, selfsup.config, selfsup.home)",
}


@dataclass(frozen=True)
class Import:
    """One import statement: where it is and the absolute module name it imports."""

    path: str
    line: int
    module: str
    target: str


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of ``from <level dots><name> import ...`` inside ``module``."""
    if level == 0:
        return name or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([name] if name else [])])


def imports_of(source: str, module: str, path: str, is_package: bool = False) -> Iterator[Import]:
    """Every module ``source`` imports, at any depth of the syntax tree.

    ``from a import b`` yields ``a.b`` as well as ``a`` when ``b`` may be a submodule, so
    ``from selfsup import server`` is seen as importing ``selfsup.server``.
    """
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, module, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            yield Import(path, node.lineno, module, base)
            for alias in node.names:
                if alias.name != "*":
                    yield Import(path, node.lineno, module, f"{base}.{alias.name}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield Import(path, node.lineno, module, node.args[0].value)


def _part(module: str) -> str | None:
    """The top-level part of ``selfsup`` that ``module`` belongs to (None outside it)."""
    pieces = module.split(".")
    if pieces[0] != PACKAGE or len(pieces) < 2:
        return None
    return pieces[1]


def violations(found: Iterable[Import]) -> list[str]:
    """Each import breaking a rule of the module docstring, as ``path:line: message``."""
    problems: list[str] = []
    seen: set[tuple[str, int, str]] = set()
    for imp in found:
        own = _part(imp.module)
        if own is None or own not in LAYERS:
            continue
        target_root = imp.target.split(".")[0]
        where = f"{imp.path}:{imp.line}: {imp.module} imports {imp.target}"
        if own in TORCH_FREE and target_root in TORCH_LIBRARIES:
            if (imp.path, imp.line, target_root) not in seen:
                seen.add((imp.path, imp.line, target_root))
                problems.append(f"{where}: selfsup.{own} must never import {target_root}")
            continue
        other = _part(imp.target)
        if other is None or other == own:
            continue
        if other not in LAYERS or (imp.path, imp.line, other) in seen:
            # Not a part (``from selfsup import __version__``; every part has a layer, see
            # test_every_top_level_part_has_a_layer), or already reported for this line.
            continue
        seen.add((imp.path, imp.line, other))
        if (own, other) in FORBIDDEN:
            problems.append(f"{where}: {FORBIDDEN[(own, other)]}")
        elif LAYERS[other] > LAYERS[own]:
            problems.append(
                f"{where}: selfsup.{own} (layer {LAYERS[own]}) may not import the higher "
                f"layer selfsup.{other} (layer {LAYERS[other]})"
            )
    return problems


def source_imports(root: Path = SRC) -> Iterator[Import]:
    """The imports of every module of the ``selfsup`` package under ``root``."""
    for path in sorted((root / PACKAGE).rglob("*.py")):
        yield from imports_of(
            path.read_text(encoding="utf-8"),
            _module_name(path, root),
            str(path.relative_to(root.parent)),
            is_package=path.name == "__init__.py",
        )


def test_every_module_keeps_to_its_layer() -> None:
    problems = violations(source_imports())
    assert not problems, "imports breaking the layers of DESIGN.md:\n" + "\n".join(problems)


def test_every_top_level_part_has_a_layer() -> None:
    parts = {
        p.stem if p.is_file() else p.name
        for p in (SRC / PACKAGE).iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()
    }
    parts.discard("__main__")
    assert sorted(parts - set(LAYERS)) == [], "parts of selfsup without a layer in LAYERS"


# --------------------------------------------------------------------------- the checker


def _check(source: str, module: str) -> list[str]:
    return violations(imports_of(source, module, f"{module.replace('.', '/')}.py"))


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("selfsup.web.routes", "from selfsup.server.errors import ApiError", "do not import"),
        ("selfsup.server.app", "def f():\n    from selfsup.web import app\n", "do not import"),
        ("selfsup.server.app", "from selfsup import web", "do not import"),
        ("selfsup.web.app", "from ..server import settings", "do not import"),
        ("selfsup.server.views", "def f():\n    import torch\n", "never import torch"),
        ("selfsup.web.outputs", "from torchvision.io import decode_image", "never import"),
        ("selfsup.apphelpers.paths", "import pytorch_lightning as pl", "never import"),
        ("selfsup.api.client", "from selfsup.server.run_configs import x", "over HTTP"),
        ("selfsup.worker.config", "from selfsup.server.settings import home", "over HTTP"),
        ("selfsup.core", "from selfsup.curation.pipeline import run", "higher layer"),
        ("selfsup.models.backbones", "import selfsup.cli.main", "higher layer"),
        ("selfsup.data.files", "import importlib\nimportlib.import_module('selfsup.web')", "layer"),
        ("selfsup.selection.config", "from selfsup.config import x", "higher layer"),
        ("selfsup.errors", "from selfsup.utils import atomic", "higher layer"),
        (
            "selfsup.web.sources",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n",
            "never import torch",
        ),
    ],
)
def test_a_bad_import_is_named(module: str, source: str, expected: str) -> None:
    problems = _check(source, module)
    assert len(problems) == 1, problems
    assert module in problems[0]
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("selfsup.web.routes", "from selfsup.apphelpers.http_errors import ApiError"),
        ("selfsup.server.app", "from selfsup.config import validate\nimport fastapi"),
        ("selfsup.cli.apps", "from selfsup.server.app import create_app\nimport selfsup.web"),
        ("selfsup.curation.pipeline", "import torch\nfrom selfsup.core import train"),
        ("selfsup.worker.loop", "from selfsup.api import WorkerApiClient"),
        ("selfsup.server.app", "from selfsup import __version__"),
        ("selfsup.web.routes.runs", "from . import common\nfrom .. import backend"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert _check(source, module) == []


def test_relative_imports_are_resolved() -> None:
    found = list(imports_of("from ..server import app", "selfsup.web.cli", "web/cli.py"))
    assert {i.target for i in found} == {"selfsup.server", "selfsup.server.app"}
    inside_package = imports_of("from . import x", "selfsup.web", "web/__init__.py", True)
    assert {i.target for i in inside_package} == {"selfsup.web", "selfsup.web.x"}
