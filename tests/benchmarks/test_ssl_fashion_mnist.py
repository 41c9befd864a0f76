"""benchmarks/ssl_fashion_mnist.py: the recipe's options build what they say and train.

Runs on 64 random images, so it checks shapes, options and that a step runs, not accuracy
(benchmarks/README.md has the measured figures)."""

from __future__ import annotations

import math
from types import ModuleType

import pytest
import torch

from _benchmarks import load_benchmark


def _module() -> ModuleType:
    return load_benchmark("ssl_fashion_mnist")


def _images(n: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator())


def test_small_crops_add_low_resolution_views() -> None:
    bench = _module()
    aug = bench.Augment(small_crops=3, small_size=12, small_scale=(0.1, 0.2))
    views = bench.augmenter(aug)(_images(8), torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in views] == [(8, 1, 28, 28)] * 2 + [(8, 1, 12, 12)] * 3
    crop = bench.small_view_transform(aug).steps[0]
    assert tuple(crop.scale) == (0.1, 0.2)
    # The rest of the small view is the full view's photometric steps.
    full = bench.view_transform(aug).steps
    small = bench.small_view_transform(aug).steps
    assert [type(s) for s in small[1:]] == [type(s) for s in full[1:]]


def test_each_option_trains_and_changes_the_training() -> None:
    """Each option trains 2 finite steps and leaves the backbone in eval mode; with the same
    seed, data and steps, an option that train() silently ignored would reproduce the
    defaults' loss."""
    bench = _module()
    losses = []
    for keys, aug in (
        ({"precision": "32"}, {}),
        ({"precision": "bf16"}, {}),
        ({"precision": "32", "loss": "dclw"}, {}),
        ({"precision": "32", "head_hidden": 32, "head_layers": 3}, {}),
        ({"precision": "32"}, {"small_crops": 2}),
    ):
        cfg = bench.Config(
            epochs=1, batch_size=32, width=0.125, aug=bench.Augment(**aug), threads=1, **keys
        )
        torch.manual_seed(0)
        result = bench.train(cfg, _images())
        assert result.steps == 2
        assert math.isfinite(result.final_loss)
        assert not result.backbone.training
        losses.append(result.final_loss)
    assert len(set(losses)) == len(losses), losses


def test_head_hidden_and_layers_shape_the_projection_head() -> None:
    model = _module().SimCLRModel(torch.nn.Identity(), 16, 8, hidden=32, layers=3)
    linears = [m for m in model.projection_head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32), (32, 32), (32, 8)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--small-crops", "-1"], "--small-crops must be >= 0"),
        (["--small-scale", "0.5", "0.2"], "--small-scale must be"),
        (["--small-size", "40"], "--small-size must be in"),
        (["--head-layers", "1"], "--head-layers must be >= 2, got 1"),
        (["--head-hidden", "-4"], "--head-hidden must be >= 0 (0: the backbone's size), got -4"),
        (["--method", "nnclr", "--small-crops", "2"], "apply to --method simclr only"),
        (["--loss", "infonce"], "invalid choice"),
        (["--precision", "16"], "invalid choice"),
    ],
)
def test_bad_options_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        _module().parse_args(argv)
    assert message in capsys.readouterr().err


def test_options_reach_the_config() -> None:
    cfg = _module().parse_args(
        [
            "--loss",
            "dclw",
            "--head-hidden",
            "64",
            "--small-crops",
            "4",
            "--small-scale",
            "0.1",
            "0.4",
        ]
    )
    assert (cfg.loss, cfg.head_hidden, cfg.head_layers) == ("dclw", 64, 2)
    assert (cfg.aug.small_crops, cfg.aug.small_size, cfg.aug.small_scale) == (4, 14, (0.1, 0.4))


@pytest.mark.parametrize(("native_bf16", "expected"), [(True, torch.bfloat16), (False, None)])
def test_auto_precision_trains_as_selfsup_train_does(
    monkeypatch: pytest.MonkeyPatch, native_bf16: bool, expected: torch.dtype | None
) -> None:
    from selfsup.embedding import _trainer

    monkeypatch.setattr(_trainer, "cpu_has_native_bf16", lambda: native_bf16)
    bench = _module()
    cpu = torch.device("cpu")
    assert bench.training_dtype("auto", cpu) is expected
    assert bench.training_dtype("bf16", cpu) is torch.bfloat16
    assert bench.training_dtype("32", cpu) is None
    assert bench.parse_args(["--precision", "bf16"]).precision == "bf16"
    assert bench.parse_args([]).precision == "auto"
