"""Config resolution: overrides, files, merging and error messages with suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfsup.config import LightlyConfig, deep_merge, parse_overrides, resolve, suggest_key
from selfsup.config._base import parse_value
from selfsup.errors import ConfigError


def test_defaults_match_documented_lightly_config() -> None:
    cfg = LightlyConfig()
    # lightly's loader keys; selfsup's own (augment, cache_dir) come after.
    loader = cfg.loader.model_dump()
    assert {k: loader[k] for k in ("batch_size", "shuffle", "num_workers", "drop_last")} == {
        "batch_size": 16,
        "shuffle": True,
        "num_workers": -1,
        "drop_last": True,
    }
    assert (loader["augment"], loader["cache_dir"]) == ("device", "")
    # lightly's model keys; selfsup's own (weights, weights_strict, vit_pool, compile) come
    # after.
    model = cfg.model.model_dump()
    assert {k: model[k] for k in ("name", "out_dim", "num_ftrs", "width")} == {
        "name": "resnet-18",
        "out_dim": 128,
        "num_ftrs": 32,
        "width": 1,
    }
    assert model["compile"] is False  # torch.compile is opt-in (benchmarks/README.md)
    trainer = cfg.trainer.model_dump()
    assert {k: trainer[k] for k in ("gpus", "max_epochs", "precision")} == {
        "gpus": 1,
        "max_epochs": 100,
        # lightly's default is 32; selfsup's trains in bf16 where the hardware has it (issue 16).
        "precision": "auto",
    }
    # The distributed keys default to lightly's single process.
    assert (trainer["strategy"], trainer["num_nodes"], trainer["devices"]) == ("auto", 1, None)
    assert cfg.embedding.engine == "local"
    assert cfg.criterion.temperature == 0.5
    assert cfg.optimizer.model_dump() == {"lr": 1.0, "weight_decay": 1e-5}
    assert cfg.collate.input_size == 64
    assert cfg.collate.kernel_size == 0.1
    assert (cfg.collate.cj_prob, cfg.collate.min_scale, cfg.collate.hf_prob) == (0.8, 0.15, 0.5)


def test_seed_lightly_config_dict_validates() -> None:
    # The dict of the seed's "Accessing the lightly parameters from Python" example.
    seed_config = {
        "loader": {"batch_size": 16, "shuffle": True, "num_workers": -1, "drop_last": True},
        "model": {"name": "resnet-18", "out_dim": 128, "num_ftrs": 32, "width": 1},
        "trainer": {"gpus": 1, "max_epochs": 100, "precision": 32},
        "criterion": {"temperature": 0.5},
        "optimizer": {"lr": 1, "weight_decay": 0.00001},
        "collate": {
            "input_size": 64,
            "cj_prob": 0.8,
            "cj_bright": 0.7,
            "cj_contrast": 0.7,
            "cj_sat": 0.7,
            "cj_hue": 0.2,
            "min_scale": 0.15,
            "random_gray_scale": 0.2,
            "gaussian_blur": 0.5,
            "kernel_size": 0.1,
            "vf_prob": 0,
            "hf_prob": 0.5,
            "rr_prob": 0,
        },
    }
    cfg = resolve(LightlyConfig, data=seed_config)
    assert cfg.optimizer.lr == 1.0
    assert isinstance(cfg.optimizer.lr, float)


def test_overrides_are_typed_by_field() -> None:
    tree = parse_overrides(
        LightlyConfig,
        ["trainer.max_epochs=5", "input_dir=2024", "optimizer.lr=1e-3", "collate.rr_degrees=null"],
    )
    assert tree == {
        "trainer": {"max_epochs": 5},
        "input_dir": "2024",  # a folder named 2024 stays a string
        "optimizer": {"lr": "1e-3"},
        "collate": {"rr_degrees": None},
    }
    cfg = resolve(LightlyConfig, overrides=["optimizer.lr=1e-3", "loader.shuffle=false"])
    assert cfg.optimizer.lr == pytest.approx(1e-3)
    assert cfg.loader.shuffle is False


def test_parse_value_yaml_rules() -> None:
    assert parse_value("0.1", float) == 0.1
    assert parse_value("[0.1, 2]", tuple[float, float]) == [0.1, 2]
    assert parse_value("007", str) == "007"
    assert parse_value("null", str | None) is None


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("max_epochs=3", "trainer.max_epochs"),
        ("trainer.max_epoch=3", "trainer.max_epochs"),
        ("loader.batchsize=3", "loader.batch_size"),
        ("colate.input_size=3", "collate.input_size"),
    ],
)
def test_unknown_key_suggests(override: str, suggestion: str) -> None:
    with pytest.raises(ConfigError, match=rf"did you mean '{suggestion}'"):
        resolve(LightlyConfig, overrides=[override])


def test_unknown_key_in_dict_and_file(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"'trainer\.max_epoch'.*did you mean 'trainer\.max_epochs'"
    ):
        resolve(LightlyConfig, data={"trainer": {"max_epoch": 1}})
    f = tmp_path / "c.yaml"
    f.write_text("loader:\n  batch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"(?s)c\.yaml.*did you mean 'loader\.batch_size'"):
        resolve(LightlyConfig, file=f)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("collate.cj_prob=1.5", "collate.cj_prob"),
        ("loader.batch_size=abc", "loader.batch_size"),
        ("criterion.temperature=0", "criterion.temperature"),
        ("collate.sigmas=[2, 1]", "collate.sigmas"),
        ("trainer.precision=8", "trainer.precision"),
        ("loader.num_workers=-2", "loader.num_workers"),
    ],
)
def test_bad_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"for '{key}'"):
        resolve(LightlyConfig, overrides=[override])


def test_bad_override_syntax() -> None:
    with pytest.raises(ConfigError, match="not of the form key=value"):
        resolve(LightlyConfig, overrides=["trainer.max_epochs"])


def test_file_then_overrides_precedence(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("trainer:\n  max_epochs: 7\nloader:\n  batch_size: 4\n")
    cfg = resolve(LightlyConfig, file=f, overrides=["trainer.max_epochs=9"])
    assert (cfg.trainer.max_epochs, cfg.loader.batch_size) == (9, 4)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(LightlyConfig, file=tmp_path / "missing.yaml")
    f = tmp_path / "list.yaml"
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        resolve(LightlyConfig, file=f)
    g = tmp_path / "broken.yaml"
    g.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        resolve(LightlyConfig, file=g)


def test_deep_merge_does_not_mutate() -> None:
    base = {"a": {"b": 1, "c": 2}}
    merged = deep_merge(base, {"a": {"b": 3}})
    assert merged == {"a": {"b": 3, "c": 2}}
    assert base == {"a": {"b": 1, "c": 2}}


def test_suggest_key_none_for_garbage() -> None:
    assert suggest_key(LightlyConfig, "zzzzqqq") is None


def test_a_section_that_takes_extra_keys_takes_any_leaf_key_parsed_as_yaml() -> None:
    # criterion.* holds each method's own arguments; LightlyConfig checks them per method.
    tree = parse_overrides(
        LightlyConfig, ["criterion.lambda_param=0.01", "criterion.norm_pix_loss=false"]
    )
    assert tree == {"criterion": {"lambda_param": 0.01, "norm_pix_loss": False}}
    for key in ("trainer.lambda_param", "criterion.lambda_param.x"):
        with pytest.raises(ConfigError, match="unknown config key"):
            parse_overrides(LightlyConfig, [f"{key}=1"])
