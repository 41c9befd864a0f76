"""docs/methods.md holds the registry's methods, optimiser defaults and arguments as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsup.methods import get_method, method_names
from selfsup.methods._docs import BEGIN, END, main, methods_markdown, replace_generated

DOCS = Path(__file__).resolve().parents[2] / "docs" / "methods.md"


def test_docs_methods_md_is_in_sync_with_the_registry() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert replace_generated(text, methods_markdown()) == text, (
        "docs/methods.md is out of date: run python -m selfsup.methods._docs --write "
        "docs/methods.md"
    )


def test_the_tables_list_every_method_and_argument_with_its_default() -> None:
    generated = methods_markdown()
    for name in method_names():
        method = get_method(name)
        assert f"| `{name}` | {method.title} | {method.optimizer.name} |" in generated
        for arg, default in method.arg_defaults().items():
            rows = [
                line.split(" | ")
                for line in generated.splitlines()
                if line.startswith(f"| `{name}` | `criterion.{arg}` |")
            ]
            assert len(rows) == 1, (name, arg)
            shown = rows[0][3]
            if default is None or isinstance(default, bool):
                assert shown == {None: "null", True: "true", False: "false"}[default]
            else:
                assert float(shown) == pytest.approx(default), (name, arg, shown)


def test_write_replaces_only_the_generated_part(tmp_path: Path) -> None:
    page = tmp_path / "methods.md"
    page.write_text(f"intro\n{BEGIN}\nstale\n{END}\noutro\n", encoding="utf-8")
    assert main(["--write", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"intro\n{BEGIN}\n| method |")
    assert text.endswith(f"{END}\noutro\n")
    assert "stale" not in text
    with pytest.raises(ValueError, match="markers"):
        replace_generated("no markers", "x")
