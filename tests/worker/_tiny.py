"""The configs of a scheduled run as cheap as the real pipeline allows (8 tiny images, one
epoch of a tiny model), shared by the worker tests and the fault-injection suite."""

from __future__ import annotations

from typing import Any

LIGHTLY_CONFIG: dict[str, Any] = {
    "model": {"name": "resnet-9", "width": 0.125},
    "collate": {"input_size": 32},
    "trainer": {"max_epochs": 1, "gpus": 0},
    "loader": {"num_workers": 0, "batch_size": 8},
}
WORKER_CONFIG: dict[str, Any] = {"stopping_condition": {"n_samples": 3}}
