"""Validation of the configs of a scheduled run, shared by the server and the API client.

The same pydantic models as ``selfsup run`` check the keys, so a typo fails at submission
with the CLI's "did you mean" message instead of on the worker hours later.

Keys, types, ranges and paths are checked first, then (``check_selection=True``, what the
server and the client do) the selection strategies, through :mod:`selfsup.selection.config`,
which imports no torch: the server never loads the selection engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import model_validator

from selfsup.config import LightlyConfig, WorkerConfig, validate
from selfsup.errors import ConfigError
from selfsup.selection.config import legacy_stopping_condition

# Paths that the datasources decide for a scheduled run; a user may not point them elsewhere.
_LIGHTLY_PATH_KEYS = ("input_dir", "output_dir", "embeddings")


class _StructuralWorkerConfig(WorkerConfig):
    """:class:`WorkerConfig` without the selection parse, which runs after the path checks."""

    # The submitted dict, kept as given: the strategies are checked by ``worker.selection()``
    # when asked (``check_selection``), after keys, types and paths.
    selection_config: dict[str, Any] | None = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _selection_is_valid(self) -> _StructuralWorkerConfig:
        return self


@dataclass(frozen=True)
class RunConfigs:
    """Resolved configs of a scheduled run: every key with its value or default."""

    worker_config: dict[str, Any]
    lightly_config: dict[str, Any]
    selection_config: dict[str, Any] | None


def check_relative_path(value: str, key: str, where: str) -> None:
    """``value`` must be a path relative to a datasource, not escaping it.

    Raises:
        ConfigError: for absolute paths, URLs, ``..`` components or NUL bytes.
    """
    if not value:
        return
    if (
        "\x00" in value
        or value.startswith(("/", "\\", "~"))
        or re.match(r"^[A-Za-z]:", value)
        or "://" in value
    ):
        raise ConfigError(
            f"{key} {value!r} must be a path relative to the {where} "
            "(e.g. '.selfsup/relevant_filenames.txt'), not an absolute path or URL"
        )
    if any(part == ".." for part in re.split(r"[\\/]", value)):
        raise ConfigError(f"{key} {value!r} must not contain '..': it must stay in the {where}")


def validate_run_configs(
    worker_config: Mapping[str, Any] | None,
    lightly_config: Mapping[str, Any] | None,
    selection_config: Mapping[str, Any] | None,
    *,
    check_selection: bool,
) -> RunConfigs:
    """Check and resolve the three configs of ``schedule_compute_worker_run``.

    Args:
        worker_config: keys of :class:`selfsup.config.WorkerConfig`.
        lightly_config: keys of :class:`selfsup.config.LightlyConfig`; the paths that the
            datasources decide (``input_dir``, ``output_dir``, ``embeddings``) are refused;
            ``checkpoint`` must be relative to the LIGHTLY datasource.
        selection_config: the lightly Worker selection dict; may also be given as
            ``worker_config["selection_config"]`` but not both with different values.
        check_selection: also parse the selection strategies.

    Raises:
        ConfigError: naming the key at fault, with a suggestion for unknown keys.
    """
    if worker_config is not None and not isinstance(worker_config, Mapping):
        raise ConfigError(f"worker_config must be a mapping, got {type(worker_config).__name__}")
    if lightly_config is not None and not isinstance(lightly_config, Mapping):
        raise ConfigError(f"lightly_config must be a mapping, got {type(lightly_config).__name__}")
    worker_data = dict(worker_config or {})
    if selection_config is not None:
        if not isinstance(selection_config, Mapping):
            raise ConfigError(
                f"selection_config must be a mapping, got {type(selection_config).__name__}"
            )
        given = worker_data.get("selection_config")
        if given is not None and dict(given) != dict(selection_config):
            raise ConfigError(
                "selection_config was given both as an argument and inside worker_config "
                "with different values; give it once"
            )
        worker_data["selection_config"] = dict(selection_config)
    # Keys, types and paths first; the selection strategies last, so each error names the
    # first thing a user has to fix.
    worker = validate(_StructuralWorkerConfig, worker_data, source="worker_config")
    lightly = validate(LightlyConfig, dict(lightly_config or {}), source="lightly_config")
    for key in _LIGHTLY_PATH_KEYS:
        if getattr(lightly, key):
            raise ConfigError(
                f"lightly_config.{key} cannot be set for a scheduled run: the worker reads "
                "the dataset's INPUT datasource and writes to its LIGHTLY datasource"
            )
    check_relative_path(lightly.checkpoint, "lightly_config.checkpoint", "LIGHTLY datasource")
    if lightly.model.weights and not lightly.model.weights.startswith("zoo:"):
        # A path would name a file on the worker's machine, which a server user cannot see.
        raise ConfigError(
            f"lightly_config.model.weights={lightly.model.weights!r}: a scheduled run names "
            "pretrained weights by their zoo entry, zoo:<name> (added on the worker machine "
            "with `selfsup zoo add`)"
        )
    check_relative_path(
        worker.relevant_filenames_file,
        "worker_config.relevant_filenames_file",
        "LIGHTLY datasource",
    )
    if worker.datapool.root:
        raise ConfigError(
            "worker_config.datapool.root cannot be set for a scheduled run: the worker keeps "
            "datapools in its own folder; give only datapool.name"
        )
    stop = worker.stopping_condition
    no_stop = legacy_stopping_condition(
        stop.n_samples, stop.min_distance, "worker_config.stopping_condition"
    ) == (None, None)
    if worker.selection_config is None and no_stop:
        raise ConfigError(
            "worker_config: no stopping condition: set stopping_condition.n_samples (a count, "
            "or a fraction such as 0.1) or stopping_condition.min_distance, or give a "
            "selection_config with n_samples"
        )
    if check_selection:
        # Parses the strategies (selfsup.selection.config imports no torch).
        worker.selection()
    return RunConfigs(
        worker_config=worker.model_dump(mode="json", exclude={"selection_config"}),
        lightly_config=lightly.model_dump(mode="json"),
        selection_config=worker.selection_config,
    )


def changed_lightly_config(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a scheduled run's stored ``lightly_config`` that differ from lightly's
    defaults, for the worker to validate again.

    The server stores the config resolved (every key written out, what the web app and the
    API show), so in the worker a key equal to its default cannot be told from one the user
    gave. Validating only the changed keys makes the rest "not given" again, as a local run's
    would be: the training recipe (:func:`selfsup.core.user_set_keys`) then chooses them for
    the worker's data and machine instead of treating every key as the user's. A config that
    does not validate is returned whole, for the caller to report its error.
    """
    try:
        config = LightlyConfig.model_validate(dict(stored))
    except ValueError:  # pydantic's ValidationError; the caller's validation names the key
        return dict(stored)
    return config.model_dump(mode="json", exclude_defaults=True)
