"""Config validation of scheduled runs (shared by server and client)."""

from __future__ import annotations

from typing import Any

import pytest

from selfsup.config import WorkerConfig
from selfsup.config.run_configs import check_relative_path, validate_run_configs
from selfsup.errors import ConfigError

SELECTION = {
    "n_samples": 10,
    "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSITY"}}],
}


def test_selection_config_argument_and_worker_key_must_agree() -> None:
    both = validate_run_configs(
        {"selection_config": SELECTION}, None, SELECTION, check_selection=False
    )
    assert both.selection_config == SELECTION
    assert "selection_config" not in both.worker_config
    with pytest.raises(ConfigError, match="given both"):
        validate_run_configs(
            {"selection_config": {"n_samples": 3}}, None, SELECTION, check_selection=False
        )


@pytest.mark.parametrize("check_selection", [False, True])
def test_defaults_are_resolved_and_a_stopping_condition_is_required(
    check_selection: bool,
) -> None:
    with pytest.raises(ConfigError, match="no stopping condition"):
        validate_run_configs(None, None, None, check_selection=check_selection)
    # any negative number is lightly's "unset", in both checks (as in selfsup run)
    with pytest.raises(ConfigError, match="no stopping condition"):
        validate_run_configs(
            {"stopping_condition": {"n_samples": -3}}, None, None, check_selection=check_selection
        )
    configs = validate_run_configs(
        {"stopping_condition": {"n_samples": 5}}, None, None, check_selection=check_selection
    )
    assert configs.worker_config["method"] == "typicality_coreset"
    assert configs.lightly_config["trainer"]["max_epochs"] == 100
    assert configs.selection_config is None


def test_structural_check_leaves_selection_semantics_to_the_client_and_worker() -> None:
    # The structural check (check_selection=False) stops at keys, types and paths; only the
    # full check, which the server and the client both run, parses the strategies.
    bad_strategy: dict[str, Any] = {
        "n_samples": 10,
        "strategies": [{"input": {"type": "EMBEDDINGS"}, "strategy": {"type": "DIVERSTY"}}],
    }
    # The structural check accepts the structure ...
    validate_run_configs(None, None, bad_strategy, check_selection=False)
    # ... the full check names the bad value.
    with pytest.raises(ConfigError, match="DIVERSTY"):
        validate_run_configs(None, None, bad_strategy, check_selection=True)


@pytest.mark.parametrize(
    "value", ["/abs", "~/home", "C:/x", "s3://bucket/x", "a/../../b", "..", "x\x00y", "\\\\srv\\x"]
)
def test_relative_paths_refuse_escapes(value: str) -> None:
    with pytest.raises(ConfigError, match="relevant_filenames_file"):
        check_relative_path(value, "relevant_filenames_file", "LIGHTLY datasource")


@pytest.mark.parametrize("value", ["", "relevant.txt", ".selfsup/relevant_filenames.txt", "a/b..c"])
def test_relative_paths_accept_plain_names(value: str) -> None:
    check_relative_path(value, "relevant_filenames_file", "LIGHTLY datasource")


def test_non_mapping_configs_are_refused() -> None:
    with pytest.raises(ConfigError, match="worker_config must be a mapping"):
        validate_run_configs([1], None, None, check_selection=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("worker_config", "key"),
    [
        ({"datapool": {"name": "../escape"}}, "datapool name"),
        ({"datapool": {"name": "a\nb"}}, "datapool name"),
        ({"datapool": {"name": ".hidden"}}, "datapool name"),
        ({"stopping_condition": {"n_samples": True}}, "n_samples"),
        ({"stopping_condition": {"min_distance": 5}}, "min_distance"),
    ],
)
def test_the_server_refuses_what_selfsup_run_refuses(
    worker_config: dict[str, Any], key: str
) -> None:
    """Issue 13: these were accepted by the server; the server checks with the same models."""
    config = {"stopping_condition": {"n_samples": 5}} | worker_config
    with pytest.raises(ConfigError, match=key):
        validate_run_configs(config, None, None, check_selection=False)


def test_the_server_accepts_a_written_config_with_both_forms_as_selfsup_run_does() -> None:
    """A run's written config has ``method`` and the ``selection_config`` it resolved to;
    the server refused it whenever ``method`` was not the default, while ``selfsup run``
    accepts it. Legacy keys that disagree with ``selection_config`` are refused by both."""
    written = WorkerConfig(method="coreset", stopping_condition={"n_samples": 5}).model_dump(
        mode="json", exclude={"selection_note"}
    )
    WorkerConfig.model_validate(written)
    configs = validate_run_configs(written, None, None, check_selection=True)
    assert configs.worker_config["method"] == "coreset"
    assert configs.selection_config == written["selection_config"]
    other = written | {"method": "random"}
    with pytest.raises(ValueError, match="give either selection_config"):
        WorkerConfig.model_validate(other)
    with pytest.raises(ConfigError, match="give either selection_config"):
        validate_run_configs(other, None, None, check_selection=True)


def test_scheduled_runs_take_the_distributed_keys() -> None:
    lightly = {
        "trainer": {"strategy": "ddp_spawn", "devices": 2, "num_nodes": 2, "precision": "16-mixed"},
        "embedding": {"engine": "ray", "ray_address": "auto", "num_actors": 4},
    }
    resolved = validate_run_configs(
        {"stopping_condition": {"n_samples": 2}}, lightly, None, check_selection=True
    )
    trainer = resolved.lightly_config["trainer"]
    assert (trainer["strategy"], trainer["devices"], trainer["num_nodes"]) == ("ddp_spawn", 2, 2)
    assert resolved.lightly_config["embedding"]["engine"] == "ray"
    with pytest.raises(ConfigError, match=r"trainer\.strategy"):
        validate_run_configs(
            {"stopping_condition": {"n_samples": 2}},
            {"trainer": {"strategy": "horovod"}},
            None,
            check_selection=False,
        )


def test_scheduled_runs_name_pretrained_weights_by_zoo_entry() -> None:
    """A path would name a file on the worker's machine; a zoo entry is resolved there."""
    ok = validate_run_configs(
        {"selection_config": SELECTION},
        {"model": {"weights": "zoo:dinov2-s"}},
        None,
        check_selection=False,
    )
    assert ok.lightly_config["model"]["weights"] == "zoo:dinov2-s"
    with pytest.raises(ConfigError, match=r"lightly_config\.model\.weights=.*zoo:<name>"):
        validate_run_configs(
            {"selection_config": SELECTION},
            {"model": {"weights": "/data/resnet50.pth"}},
            None,
            check_selection=False,
        )
