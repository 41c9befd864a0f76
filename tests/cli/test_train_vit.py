"""``selfsup train``/``magic`` with a masked-image-modelling method on the small ViT."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from selfsup.cli.main import main


@pytest.mark.slow
def test_magic_trains_mae_on_a_vit_and_embeds_with_the_class_token(
    make_image_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # SimMIM goes through the same trainer in tests/methods/test_contract.py.
    method = "mae"
    root = make_image_folder(n_classes=2, n_per_class=4, size=(32, 32))
    out = root.parent / f"out_{method}"
    rc = main(
        [
            "magic",
            f"input_dir={root}",
            f"output_dir={out}",
            f"method={method}",
            "model.name=vit-tiny-p4",
            "trainer.gpus=0",
            "trainer.max_epochs=1",
            "collate.input_size=32",
            "loader.num_workers=0",
            "loader.batch_size=4",
        ]
    )
    assert rc == 0, capsys.readouterr().err[-3000:]
    assert (out / "selfsup_epoch_0.ckpt").is_file()
    with (out / "embeddings.csv").open() as f:
        rows = list(csv.reader(f))
    # Header: filenames, one column per embedding dimension, labels. A ViT method's
    # embedding is the ViT's class token: vit-tiny-p4's width (192), not model.num_ftrs.
    assert len(rows) == 1 + 8
    assert len(rows[0]) == 1 + 192 + 1


def test_a_vit_method_with_a_resnet_is_a_clear_error(
    make_image_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_image_folder(n_classes=1, n_per_class=2)
    rc = main(
        [
            "train",
            f"input_dir={root}",
            f"output_dir={root.parent / 'out'}",
            "method=mae",
            "model.name=resnet-9",
            "model.width=0.125",
            "trainer.gpus=0",
            "trainer.max_epochs=1",
        ]
    )
    err = capsys.readouterr().err
    assert rc != 0
    assert "'mae' needs a Vision Transformer" in err
    assert "model.name='resnet-9'" in err
    assert "vit-tiny-p4" in err


@pytest.mark.slow
def test_run_curates_with_simmim_on_a_vit(
    make_image_folder: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_image_folder(n_classes=2, n_per_class=4, size=(32, 32))
    out = root.parent / "run_out"
    rc = main(
        [
            "run",
            f"input_dir={root}",
            f"output_dir={out}",
            "stopping_condition.n_samples=0.5",
            "lightly.method=simmim",
            "lightly.model.name=vit-tiny-p4",
            "lightly.model.vit_pool=mean",
            "lightly.trainer.gpus=0",
            "lightly.trainer.max_epochs=1",
            "lightly.collate.input_size=32",
            "lightly.loader.num_workers=0",
            "lightly.loader.batch_size=4",
        ]
    )
    assert rc == 0, capsys.readouterr().err[-3000:]
    with (out / "data" / "embeddings.csv").open() as f:
        header = next(csv.reader(f))
    assert len(header) == 1 + 192 + 1
    selected = (out / "filenames" / "sampled_filenames_excluding_datapool.txt").read_text()
    assert len(selected.split()) == 4
