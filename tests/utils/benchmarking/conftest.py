"""Toy data and a quiet CPU Trainer for the tests of selfsup.utils.benchmarking."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

# Input dimension and number of classes of the toy problem.
TOY_DIM = 6
TOY_CLASSES = 3

Blobs = Callable[..., tuple[DataLoader[Any], DataLoader[Any]]]


@pytest.fixture
def blobs() -> Blobs:
    """``blobs(noise=..., seed=..., n_train=..., n_val=...)`` -> (train, val) loaders.

    Gaussian blobs around 3·e_c in R^6, one per class c of 3; batches are
    ``(x (B, 6), target (B,), index (B,))`` like those of ``LightlyDataset``. With a small
    ``noise`` the classes are linearly separable; with a large one they overlap.
    """

    def make(
        noise: float = 0.5,
        seed: int = 0,
        n_train: int = 20,
        n_val: int = 10,
        batch_size: int = 10,
    ) -> tuple[DataLoader[Any], DataLoader[Any]]:
        gen = torch.Generator().manual_seed(seed)
        centers = torch.eye(TOY_DIM)[:TOY_CLASSES] * 3.0

        def split(n_per_class: int) -> TensorDataset:
            y = torch.arange(TOY_CLASSES).repeat_interleave(n_per_class)
            x = centers[y] + noise * torch.randn(len(y), TOY_DIM, generator=gen)
            return TensorDataset(x, y, torch.arange(len(y)))

        train, val = split(n_train), split(n_val)
        shuffle_gen = torch.Generator().manual_seed(seed)
        return (
            DataLoader(train, batch_size=batch_size, shuffle=True, generator=shuffle_gen),
            DataLoader(val, batch_size=batch_size),
        )

    return make


@pytest.fixture
def make_trainer() -> Callable[..., pl.Trainer]:
    """A CPU Trainer without logger, checkpoints, progress bar or model summary."""

    def make(**kwargs: Any) -> pl.Trainer:
        options: dict[str, Any] = {
            "accelerator": "cpu",
            "devices": 1,
            "max_epochs": 1,
            "logger": False,
            "enable_checkpointing": False,
            "enable_progress_bar": False,
            "enable_model_summary": False,
        }
        options.update(kwargs)
        return pl.Trainer(**options)

    return make
