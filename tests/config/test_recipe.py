"""The recipe chooser's decisions, as a pure function of data, machine and the user's keys."""

from __future__ import annotations

from typing import Any

import pytest

from selfsup.config import LightlyConfig
from selfsup.config.recipe import (
    CPU_BUDGET_S,
    MAX_EPOCHS,
    SMALL_IMAGE_CPU_BATCH,
    SMALL_IMAGE_MIN_SCALE,
    Recipe,
    choose_recipe,
    format_duration,
    max_time_seconds,
    minutes_to_max_time,
    sgd_lr,
)
from selfsup.errors import ConfigError

CURRENT: dict[str, Any] = {
    "model.name": "resnet-18",
    "model.width": 1.0,
    "collate.input_size": 64,
    "collate.min_scale": 0.15,
    "loader.batch_size": 16,
    "optimizer.lr": 1.0,
    "trainer.max_epochs": 100,
    "trainer.max_time": None,
}


def _choose(**kwargs: Any) -> Recipe:
    args: dict[str, Any] = {
        "n_samples": 1000,
        "image_side": 28.0,
        "device": "cpu",
        "cpu_count": 2,
        "method": "simclr",
        "user_set": frozenset(),
        "current": CURRENT,
    }
    args.update(kwargs)
    return choose_recipe(**args)


def test_small_images_on_a_cpu_get_a_small_fast_recipe() -> None:
    r = _choose()
    assert r.values["collate.input_size"] == 32
    assert (r.values["model.name"], r.values["model.width"]) == ("resnet-9", 0.25)
    # Batches of 32 for small images: more steps in the CPU budget.
    assert r.values["loader.batch_size"] == SMALL_IMAGE_CPU_BATCH == 32
    assert "more steps" in r.reasons["loader.batch_size"]
    assert r.values["optimizer.lr"] == pytest.approx(0.3 * 32 / 256)
    assert max_time_seconds(r.values["trainer.max_time"]) == CPU_BUDGET_S
    assert r.estimated_s is None  # nothing timed


def test_larger_or_unknown_images_on_a_cpu_keep_batches_up_to_128() -> None:
    for side in (64.0, None):
        r = _choose(image_side=side)
        assert (r.values["model.name"], r.values["model.width"]) == ("resnet-9", 0.25)
        assert r.values["loader.batch_size"] == 128
        assert "more steps" not in r.reasons["loader.batch_size"]
    # A GPU has time for the full ResNet-18 and large batches, small images or not.
    gpu = _choose(device="cuda", n_samples=100_000)
    assert (gpu.values["model.name"], gpu.values["loader.batch_size"]) == ("resnet-18", 256)


def test_large_images_on_a_gpu_get_resnet18() -> None:
    r = _choose(image_side=500.0, device="cuda", cpu_count=16, n_samples=100_000)
    assert r.values["collate.input_size"] == 128
    assert (r.values["model.name"], r.values["model.width"]) == ("resnet-18", 1.0)
    assert r.values["loader.batch_size"] == 256
    many_cores = _choose(image_side=500.0, cpu_count=16)
    assert many_cores.values["collate.input_size"] == 64
    assert many_cores.values["model.width"] == 0.5


def test_small_images_get_larger_crops_for_simclr_only() -> None:
    # A 15 % crop of a 28 px image is 11 px: small images keep at least 40 % of their area.
    assert _choose().values["collate.min_scale"] == SMALL_IMAGE_MIN_SCALE == 0.4
    assert "collate.min_scale" not in _choose(image_side=64.0).values
    assert "collate.min_scale" not in _choose(image_side=None).values
    # Other methods refuse collate.* augmentation keys: the recipe leaves them alone.
    assert "collate.min_scale" not in _choose(method="byol").values
    mine = _choose(
        user_set=frozenset({"collate.min_scale"}), current={**CURRENT, "collate.min_scale": 0.08}
    )
    assert "collate.min_scale" not in mine.values


def test_a_small_folder_does_not_fill_the_budget() -> None:
    # 200 samples at 3 ms: 1,000 epochs would fit 10 minutes; 100 run (1 minute).
    r = _choose(n_samples=200, seconds_per_sample=0.003)
    assert r.values["trainer.max_epochs"] == MAX_EPOCHS == 100
    assert "capped at 100" in r.reasons["trainer.max_epochs"]
    assert r.estimated_s == pytest.approx(100 * 6 * 32 * 0.003)  # 6 batches of 32 per epoch


def test_batch_size_follows_the_number_of_samples() -> None:
    assert _choose(n_samples=200).values["loader.batch_size"] == 32
    assert _choose(n_samples=20).values["loader.batch_size"] == 8
    assert _choose(n_samples=5).values["loader.batch_size"] == 5
    assert _choose(n_samples=2).values["loader.batch_size"] == 2


def test_epochs_fit_the_budget_and_the_estimate_follows() -> None:
    # 1000 samples at 10 ms: 10 s per epoch, 60 epochs in 10 minutes.
    r = _choose(seconds_per_sample=0.01)
    assert r.values["trainer.max_epochs"] == 60
    assert r.estimated_s == pytest.approx(60 * 31 * 32 * 0.01)  # 31 whole batches per epoch
    # Very cheap samples are capped; very expensive ones still train one epoch.
    assert _choose(seconds_per_sample=1e-6).values["trainer.max_epochs"] == MAX_EPOCHS
    slow = _choose(seconds_per_sample=10.0)
    assert slow.values["trainer.max_epochs"] == 1
    assert slow.estimated_s == CPU_BUDGET_S  # the budget stops it


def test_keys_the_user_set_are_kept() -> None:
    user = frozenset({"model.name", "loader.batch_size", "trainer.max_epochs", "optimizer.lr"})
    current = {**CURRENT, "loader.batch_size": 64, "trainer.max_epochs": 3}
    r = _choose(user_set=user, current=current, seconds_per_sample=0.01)
    assert not user & set(r.values)
    # The width goes with the name the user chose, and the user's epochs need no budget.
    assert "model.width" not in r.values
    assert "trainer.max_time" not in r.values
    assert r.estimated_s == pytest.approx(3 * (1000 // 64) * 64 * 0.01)


def test_lr_scales_with_the_users_batch_size() -> None:
    r = _choose(
        user_set=frozenset({"loader.batch_size"}), current={**CURRENT, "loader.batch_size": 512}
    )
    assert r.values["optimizer.lr"] == pytest.approx(sgd_lr(512)) == pytest.approx(0.6)


def test_other_methods_keep_their_own_optimizer() -> None:
    assert "optimizer.lr" not in _choose(method="dino").values


def test_users_time_budget_sets_the_epochs() -> None:
    user = frozenset({"trainer.max_time"})
    r = _choose(
        user_set=user,
        current={**CURRENT, "trainer.max_time": "00:00:01:00"},
        seconds_per_sample=0.001,
    )
    assert "trainer.max_time" not in r.values
    assert r.values["trainer.max_epochs"] == 60  # 1 s per epoch in a minute


def test_describe_lists_chosen_kept_and_estimate() -> None:
    r = _choose(user_set=frozenset({"trainer.max_epochs"}), seconds_per_sample=0.01)
    text = r.describe({"trainer.max_epochs": 100})
    assert "model.name=resnet-9" in text
    assert "trainer.max_epochs=100  (set by you)" in text
    assert "estimated training time:" in text


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="n_samples"):
        _choose(n_samples=1)
    with pytest.raises(ValueError, match="cpu_count"):
        _choose(cpu_count=0)
    with pytest.raises(ValueError, match="batch_size"):
        sgd_lr(0)


def test_max_time_forms() -> None:
    assert minutes_to_max_time(10) == "00:00:10:00"
    assert minutes_to_max_time(60 * 24 + 0.5) == "01:00:00:30"
    assert max_time_seconds("01:02:03:04") == 93784.0
    assert format_duration(3725) == "1 h 02 min"
    assert format_duration(75) == "1 min 15 s"
    cfg = LightlyConfig.model_validate({"trainer": {"max_time": 10}})
    assert cfg.trainer.max_time == "00:00:10:00"
    assert LightlyConfig.model_validate({"trainer": {"max_time": "1.5"}}).trainer.max_time == (
        "00:00:01:30"
    )
    for bad in ("1h", -5, "00:10:00"):
        with pytest.raises((ValueError, ConfigError), match="max_time"):
            LightlyConfig.model_validate({"trainer": {"max_time": bad}})
