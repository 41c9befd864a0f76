"""Shared pieces of the input fault tests (tests/faults/test_input_*.py).

Runs are made cheap: tiny 32x32 images written by file descriptor (so a name can be any
bytes), a checkpoint of an untrained tiny ResNet saved directly (no training), no UMAP, the
check in this process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from selfsup.config import RunConfig, resolve
from selfsup.curation.manifest import read_filename_table, read_manifest
from selfsup.utils.names import name_to_bytes

TINY_MODEL = [
    "lightly.model.name=resnet-9",
    "lightly.model.width=0.125",
    "lightly.collate.input_size=32",
    "lightly.loader.num_workers=0",
    "lightly.loader.batch_size=8",
]


def write_png(folder: bytes | str | os.PathLike[str], name: bytes, seed: int) -> bytes:
    """Write a random 32x32 PNG named exactly ``name`` (bytes) in ``folder``; return its path."""
    base = os.fsencode(folder)
    path = base + b"/" + name
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "wb") as handle:
        image.save(handle, format="PNG")
    return path


def tiny_checkpoint(path: Path) -> Path:
    """Save the weights of an untrained tiny model as a checkpoint ``selfsup run`` embeds with."""
    import torch

    from selfsup.config.lightly_config import ModelConfig
    from selfsup.core import build_model

    model_cfg = ModelConfig(name="resnet-9", width=0.125)
    torch.manual_seed(0)
    model = build_model(model_cfg)
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "selfsup": {"model": model_cfg.model_dump(mode="json")},
        },
        path,
    )
    return path


def run_config(input_dir: Path, output_dir: Path, checkpoint: Path, *overrides: str) -> RunConfig:
    """A cheap run: the given checkpoint, no training, no UMAP, checks in this process."""
    return resolve(
        RunConfig,
        overrides=[
            f"input_dir={input_dir}",
            f"output_dir={output_dir}",
            f"checkpoint={checkpoint}",
            "umap=false",
            "num_workers=0",
            *TINY_MODEL,
            *overrides,
        ],
    )


def corrupt_table(out: Path) -> dict[str, tuple[str, str]]:
    """``filenames/corrupt_filenames.txt`` as name -> (reason, detail)."""
    rows = read_filename_table(out / "filenames" / "corrupt_filenames.txt")
    return {row[0]: (row[1], row[2]) for row in rows}


def manifest_names(out: Path) -> dict[str, str]:
    """Sample name -> status, from the run's manifest."""
    return {r.filename: r.status for r in read_manifest(out / "data" / "manifest.jsonl").records}


def report(out: Path) -> dict[str, Any]:
    """The run's report.json (it must be valid UTF-8 JSON)."""
    data: dict[str, Any] = json.loads((out / "report.json").read_bytes().decode("utf-8"))
    return data


def exact_lines(path: Path) -> list[bytes]:
    """Lines of a filename list as bytes (names keep their exact bytes there)."""
    return path.read_bytes().splitlines()


def as_bytes(names: list[str]) -> list[bytes]:
    """In-memory names as the file name bytes they stand for."""
    return [name_to_bytes(n) for n in names]


def draw_no_pdf(monkeypatch: Any) -> None:
    """Replace drawing ``report.pdf`` (half of a small run's time, font subsetting) by a stub.

    For tests whose subject is not the report; tests/faults/test_input_names.py draws it.
    """
    from selfsup.curation import report as report_module
    from selfsup.utils.atomic import atomic_write_bytes

    def write_stub(report: dict[str, Any], plots: Any, path: Path) -> None:
        atomic_write_bytes(path, b"%PDF-1.4\n% not drawn in this test\n")

    monkeypatch.setattr(report_module, "write_report_pdf", write_stub)
