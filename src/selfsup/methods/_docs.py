"""The reference of every registered method in docs/methods.md, generated from the registry.

``python -m selfsup.methods._docs`` prints the generated part; ``--write docs/methods.md``
replaces it between the markers in that file. ``tests/methods/test_docs.py`` fails when the
file and the registry disagree, so a new method, argument or default shows up in the docs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from selfsup.methods._args import ArgValue
from selfsup.methods._registry import get_method, method_names

__all__ = ["BEGIN", "END", "methods_markdown", "replace_generated"]

#: Lines around the generated part of docs/methods.md.
BEGIN = "<!-- BEGIN GENERATED: python -m selfsup.methods._docs --write docs/methods.md -->"
END = "<!-- END GENERATED -->"


def _value(value: ArgValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def methods_markdown() -> str:
    """Markdown: one table of the methods (name, paper, optimiser defaults and their source)
    and one of their ``criterion.*`` arguments (type and range, default, meaning)."""
    lines = [
        "| method | paper | optimizer | lr | weight decay | source of the optimiser defaults |",
        "|---|---|---|---|---|---|",
    ]
    for name in method_names():
        method = get_method(name)
        opt = method.optimizer
        lines.append(
            f"| `{name}` | {method.title} | {opt.name} | {opt.lr:g} | {opt.weight_decay:g} "
            f"| {opt.source or '-'} |"
        )
    lines += [
        "",
        "| method | key | accepts | default | what it sets |",
        "|---|---|---|---|---|",
    ]
    for name in method_names():
        method = get_method(name)
        defaults = method.arg_defaults()
        if not method.args:
            lines.append(f"| `{name}` | - | - | - | no tunable arguments |")
        for arg in method.args:
            lines.append(
                f"| `{name}` | `criterion.{arg.name}` | {arg.accepted()} "
                f"| {_value(defaults[arg.name])} | {arg.description} |"
            )
    return "\n".join(lines) + "\n"


def replace_generated(text: str, generated: str) -> str:
    """``text`` with the part between :data:`BEGIN` and :data:`END` replaced."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {BEGIN!r} and {END!r} are missing or out of order")
    return text[: start + len(BEGIN)] + "\n" + generated + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--write", metavar="FILE", help="replace the generated part of FILE")
    args = parser.parse_args(argv)
    generated = methods_markdown()
    if not args.write:
        sys.stdout.write(generated)
        return 0
    path = Path(args.write)
    path.write_text(replace_generated(path.read_text(encoding="utf-8"), generated), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
