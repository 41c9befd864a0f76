"""``selfsup zoo``: named local pretrained weights under the selfsup home.

    selfsup zoo add dinov2-s ./vit_small_patch14_reg4_dinov2.lvd142m   # a hub folder
    selfsup zoo add r50 ./resnet50.pth --model torchvision/resnet50 --input-size 224
    selfsup zoo list
    selfsup zoo show r50
    selfsup zoo remove r50
    selfsup embed input_dir=./images model.weights=zoo:r50

Nothing is downloaded: ``add`` copies (``--link``: hard-links) a file or model folder the user
has. The library part is :mod:`selfsup.models.zoo`; docs/pretrained.md explains the formats.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from selfsup.errors import ConfigError, SelfsupError
from selfsup.models.zoo import ZooEntry, add_entry, list_entries, remove_entry, resolve_entry

EXIT_USAGE = 2


def _triple(text: str) -> tuple[float, float, float]:
    """``"0.5,0.5,0.5"`` -> three floats (argparse type of --mean/--std)."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(
            f"expected three comma-separated numbers (R,G,B), got {text!r}"
        )
    return values[0], values[1], values[2]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsup zoo",
        description="Named local pretrained weights ($SELFSUP_HOME/zoo); use one with "
        "model.weights=zoo:<name>. Nothing is downloaded.",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="list the entries")
    listing.add_argument("--json", action="store_true", help="print meta.json objects")
    add = sub.add_parser(
        "add",
        help="add a weights file or model folder",
        description="Add local weights: a state dict (.pt/.pth/.bin), .safetensors, a "
        "timm/Hugging Face model folder (config.json + model.safetensors) or a selfsup "
        "checkpoint. They are checked against the model before they are added.",
    )
    add.add_argument("name", help="entry name: letters, digits, '-', '_', '.'")
    add.add_argument("path", help="the weights file or model folder")
    add.add_argument(
        "--model",
        help="backbone name (model.name), e.g. torchvision/resnet50 or timm/convnext_tiny; "
        "read from a model folder's config.json or a selfsup checkpoint when not given",
    )
    add.add_argument("--input-size", type=int, help="image side the weights were trained at")
    add.add_argument("--mean", type=_triple, help="normalisation mean R,G,B (default ImageNet)")
    add.add_argument("--std", type=_triple, help="normalisation std R,G,B (default ImageNet)")
    add.add_argument(
        "--link", action="store_true", help="hard-link instead of copying (same file system)"
    )
    add.add_argument("--replace", action="store_true", help="replace an entry of that name")
    remove = sub.add_parser("remove", help="delete an entry and its files")
    remove.add_argument("name")
    show = sub.add_parser("show", help="print an entry's metadata and check its sha256")
    show.add_argument("name")
    return parser


def _row(entry: ZooEntry) -> str:
    size = f"{entry.input_size}px" if entry.input_size else "-"
    return f"{entry.name:<24} {entry.model:<40} {entry.format:<18} {size:<7} {entry.added}"


def zoo_main(argv: Sequence[str]) -> int:
    """Entry point of ``selfsup zoo``; returns the exit status (2 on a usage or data error)."""
    parser = build_parser()
    args = parser.parse_args(list(argv))
    if args.action is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if args.action == "list":
            entries = list_entries()
            if args.json:
                print(json.dumps([e.to_json() for e in entries], indent=2))
            elif not entries:
                print("no zoo entries; add one with `selfsup zoo add <name> <path>`")
            else:
                print(f"{'NAME':<24} {'MODEL':<40} {'FORMAT':<18} {'INPUT':<7} ADDED")
                for entry in entries:
                    print(_row(entry))
        elif args.action == "add":
            if args.input_size is not None and args.input_size < 1:
                raise ConfigError(f"--input-size must be >= 1, got {args.input_size}")
            entry = add_entry(
                args.name,
                args.path,
                model=args.model,
                input_size=args.input_size,
                mean=args.mean,
                std=args.std,
                link=args.link,
                replace=args.replace,
            )
            print(
                f"added zoo entry {entry.name!r} ({entry.model}, {entry.format}, sha256 "
                f"{entry.sha256[:12]}...); use it with model.weights=zoo:{entry.name}"
            )
        elif args.action == "remove":
            entry = remove_entry(args.name)
            print(f"removed zoo entry {entry.name!r}")
        else:
            entry = resolve_entry(args.name)
            print(json.dumps({**entry.to_json(), "path": str(entry.path)}, indent=2))
            entry.verify()
            print(f"sha256 ok: {entry.path}")
    except SelfsupError as exc:
        print(f"selfsup zoo: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0
