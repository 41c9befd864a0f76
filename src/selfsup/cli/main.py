"""``selfsup`` command: subcommands taking lightly-style ``key.sub=value`` overrides.

    selfsup train input_dir=./images trainer.max_epochs=10
    selfsup embed input_dir=./images checkpoint=./out/selfsup_epoch_9.ckpt
    selfsup train --config my.yaml loader.batch_size=64
    selfsup run input_dir=./images output_dir=./out stopping_condition.n_samples=0.1

Errors in the configuration or the input exit with status 2 and a message naming the key,
file or value at fault; nothing is trained or written before the config is valid. A file
that cannot be written (full disk or quota, read-only file system, no permission) exits
with status 3 and one line naming the file and the problem: every file written so far is
complete (writes are atomic), so the same command continues once the problem is fixed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from selfsup import __version__
from selfsup.config import LightlyConfig, RunConfig, describe, resolve, to_yaml
from selfsup.errors import ConfigError, SelfsupError
from selfsup.utils.atomic import atomic_write_text, describe_storage_error

EXIT_USAGE = 2
EXIT_STORAGE = 3


def storage_error_message(command: str, exc: OSError) -> str | None:
    """The one-line message for a storage error (:data:`STORAGE_ERRNOS`), else ``None``."""
    problem = describe_storage_error(exc)
    if problem is None:
        return None
    return (
        f"selfsup {command}: error: {problem}. Files written so far are complete; run the "
        "same command again to continue"
    )


def _check_inputs(cfg: LightlyConfig, need_checkpoint: bool) -> None:
    """Fail on missing inputs before anything is created on disk."""
    if not cfg.input_dir:
        raise ConfigError("input_dir is required: the folder of images or videos to use")
    if not Path(cfg.input_dir).is_dir():
        raise ConfigError(f"input_dir {cfg.input_dir!r} is not an existing folder")
    if need_checkpoint and not cfg.checkpoint and not cfg.model.weights:
        raise ConfigError(
            "checkpoint is required to embed: pass checkpoint=<path to a .ckpt> (selfsup "
            "train writes one), or model.weights=<pretrained weights> to embed without "
            "training (docs/pretrained.md)"
        )
    if cfg.checkpoint and not Path(cfg.checkpoint).is_file():
        raise ConfigError(f"checkpoint {cfg.checkpoint!r} does not exist")
    if cfg.model.weights:
        from selfsup.models.weights import weights_file

        weights_file(cfg.model.weights)  # a missing file or unknown zoo entry: say so now


def _resolve_output_dir(cfg: LightlyConfig) -> Path:
    from selfsup.core import default_output_dir

    out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    cfg.output_dir = str(out)
    return out


def _write_config(cfg: LightlyConfig, out: Path, overrides: Sequence[str]) -> None:
    atomic_write_text(out / "config" / "config.yaml", to_yaml(cfg))
    atomic_write_text(out / "config" / "overrides.yaml", "".join(f"- {o}\n" for o in overrides))


def cmd_train(cfg: LightlyConfig, overrides: Sequence[str]) -> int:
    """Train a self-supervised model; prints the checkpoint path."""
    from selfsup.core import train

    _check_inputs(cfg, need_checkpoint=False)
    out = _resolve_output_dir(cfg)
    _write_config(cfg, out, overrides)
    # selfsup train may be started again in each DDP process (trainer.strategy=ddp).
    checkpoint = train(cfg, can_relaunch=True)
    print(f"Best model checkpoint: {checkpoint}")
    return 0


def cmd_embed(cfg: LightlyConfig, overrides: Sequence[str]) -> int:
    """Embed the images with a checkpoint; writes embeddings.csv."""
    from selfsup.core import embed
    from selfsup.utils.io import save_embeddings

    _check_inputs(cfg, need_checkpoint=True)
    out = _resolve_output_dir(cfg)
    _write_config(cfg, out, overrides)
    embeddings, labels, filenames = embed(cfg)
    path = Path(cfg.embeddings) if cfg.embeddings else out / "embeddings.csv"
    save_embeddings(str(path), embeddings, [int(x) for x in labels], filenames)
    print(f"Embeddings of {len(filenames)} samples written to {path}")
    from selfsup.utils.embedding_stats import collapse_verdict, embedding_stats

    verdict = collapse_verdict(embedding_stats(embeddings)) if len(filenames) else None
    if verdict:
        print(f"Warning: {verdict}", file=sys.stderr)
    return 0


def cmd_magic(cfg: LightlyConfig, overrides: Sequence[str]) -> int:
    """Train, then embed with the trained model (lightly-magic)."""
    from selfsup.core import train

    _check_inputs(cfg, need_checkpoint=False)
    out = _resolve_output_dir(cfg)
    _write_config(cfg, out, overrides)
    cfg.checkpoint = train(cfg)
    print(f"Best model checkpoint: {cfg.checkpoint}")
    return cmd_embed(cfg, overrides)


def cmd_run(cfg: RunConfig, overrides: Sequence[str]) -> int:
    """Curate input_dir: check, deduplicate, embed, select and report."""
    from selfsup.curation.pipeline import run

    result = run(cfg, overrides)
    counts = result.report.get("counts", {})
    print(
        f"Selected {len(result.selected)} of {counts.get('n_input_to_selection', '?')} samples; "
        f"report: {result.output_dir / 'report.pdf'}"
    )
    health = result.report.get("statistics", {}).get("embedding_health") or {}
    if health.get("warning"):
        # The last thing printed: a collapsed model makes the selection above meaningless.
        print(f"Warning: {health['warning']}", file=sys.stderr)
    return 0


Command = Callable[[Any, Sequence[str]], int]
_COMMANDS: dict[str, tuple[Command, type[BaseModel], str]] = {
    "run": (cmd_run, RunConfig, "curate input_dir: check, deduplicate, embed, select, report"),
    "train": (cmd_train, LightlyConfig, "train a self-supervised model on input_dir"),
    "embed": (cmd_embed, LightlyConfig, "embed input_dir with checkpoint into embeddings.csv"),
    "magic": (cmd_magic, LightlyConfig, "train, then embed with the trained model"),
}


#: Subcommands with their own argument parsers (flags, not key=value configs).
_SERVER_COMMANDS: dict[str, str] = {
    "serve": "run the self-hosted job server (selfsup serve --help)",
    "token": "create, list or revoke API tokens of the server (selfsup token --help)",
    "worker": "claim and execute scheduled runs of a server (selfsup worker --help)",
    "view": "browse run output folders in the browser (selfsup view --help)",
    "zoo": "named local pretrained weights: list, add, remove, show (selfsup zoo --help)",
}


def _method_args_help(model: type[BaseModel]) -> str:
    """The per-method ``criterion.*`` keys, for the help of commands that train (torch-free)."""
    from selfsup.methods._args import describe_method_args

    if model is LightlyConfig:
        return "\n\n" + describe_method_args("criterion.")
    if model is RunConfig:
        return "\n\n" + describe_method_args("lightly.criterion.")
    return ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsup",
        description="Self-supervised learning and curation for unlabeled images and videos.",
    )
    parser.add_argument("--version", action="version", version=f"selfsup {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, model, help_text) in _COMMANDS.items():
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="configuration keys (pass as key=value):\n"
            + describe(model)
            + _method_args_help(model),
        )
        p.add_argument("--config", help="YAML file with configuration keys; key=value wins")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="configuration overrides")
    for name, help_text in _SERVER_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``selfsup`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"] or argv[:1] == ["token"]:
        # The server's commands parse their own flags and never import torch.
        from selfsup.server.cli import serve_main, token_main

        if argv[0] == "token":
            return token_main(argv[1:])
        from selfsup.cli.apps import create_server_app

        return serve_main(argv[1:], create_server_app)
    if argv[:1] == ["view"]:
        # Like the server, the web app never imports torch.
        from selfsup.cli.apps import create_view_app
        from selfsup.web.cli import view_main

        return view_main(argv[1:], create_view_app)
    if argv[:1] == ["zoo"]:
        from selfsup.cli.zoo import zoo_main

        return zoo_main(argv[1:])
    if argv[:1] == ["worker"]:
        from selfsup.worker.cli import worker_main

        return worker_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    command, model, _ = _COMMANDS[args.command]
    try:
        cfg = resolve(model, file=args.config, overrides=args.overrides)
        return command(cfg, args.overrides)
    except SelfsupError as exc:
        print(f"selfsup {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        message = storage_error_message(args.command, exc)
        if message is None:
            raise  # not a storage problem: a bug to see with its traceback
        print(message, file=sys.stderr)
        return EXIT_STORAGE


if __name__ == "__main__":
    sys.exit(main())
