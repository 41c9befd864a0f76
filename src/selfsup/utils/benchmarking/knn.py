"""Monitoring the quality of embeddings with a weighted k-nearest-neighbour classifier.

A kNN classifier on frozen embeddings needs no training, so it is a cheap way to follow
self-supervised training: ``knn_predict`` is the weighted kNN of InstDisc (Wu et al., 2018,
"Unsupervised Feature Learning via Non-Parametric Instance Discrimination", Sec. 3.4):

    "we classify test image x by computing its similarity s_i = cos(v_i, f̂) to every memory
    feature v_i, then retrieving its top k nearest neighbours N_k. ... each neighbour is
    weighted by α_i = exp(s_i / τ), and class c gets the score w_c = Σ_{i ∈ N_k} α_i 1(c_i = c)."

:func:`knn_accuracy` is that classifier as a plain batched function for scripts; the
Lightning modules :class:`~selfsup.utils.benchmarking.BenchmarkModule` and
:class:`~selfsup.utils.benchmarking.KNNClassifier` vote with :func:`knn_predict`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["knn_accuracy", "knn_predict", "knn_scores"]


def knn_scores(
    feature: Tensor,
    feature_bank: Tensor,
    feature_labels: Tensor,
    num_classes: int,
    knn_k: int = 200,
    knn_t: float = 0.1,
) -> Tensor:
    """Class scores w_c = Σ_{i ∈ top-k} exp(s_i / t) 1(label_i = c) of the weighted kNN.

    Args:
        feature: queries, shape (B, D). Expected L2-normalised, so that the dot product is
            the cosine similarity (as in lightly; normalise once instead of every batch).
        feature_bank: the memory, shape (D, N), columns L2-normalised.
        feature_labels: class index of each bank column, shape (N,), integers in [0, C).
        num_classes: C.
        knn_k: number of neighbours; clamped to N when the bank is smaller.
        knn_t: temperature t of the exponential weights.

    Returns:
        Scores of shape (B, C), float, on ``feature``'s device. Each row is scaled by the
        positive constant exp(-s_max / t) (s_max: the row's top similarity) so that exp()
        cannot overflow for small t; a constant per row leaves the ranking of classes as is.
    """
    if feature.ndim != 2 or feature_bank.ndim != 2:
        raise ValueError(
            f"feature must be (B, D) and feature_bank (D, N); got shapes "
            f"{tuple(feature.shape)} and {tuple(feature_bank.shape)}"
        )
    if feature.shape[1] != feature_bank.shape[0]:
        raise ValueError(
            f"feature has D={feature.shape[1]} but feature_bank has D={feature_bank.shape[0]} "
            "rows; the bank must be (D, N) (transpose an (N, D) bank with .t())"
        )
    if feature_labels.shape != (feature_bank.shape[1],):
        raise ValueError(
            f"feature_labels must have shape (N,)=({feature_bank.shape[1]},), "
            f"got {tuple(feature_labels.shape)}"
        )
    if knn_k < 1:
        raise ValueError(f"knn_k must be >= 1, got {knn_k}")
    if knn_t <= 0:
        raise ValueError(f"knn_t must be > 0, got {knn_t}")
    k = min(knn_k, feature_bank.shape[1])
    sim_matrix = feature @ feature_bank  # (B, N)
    sim_weight, sim_indices = sim_matrix.topk(k=k, dim=-1)  # (B, k)
    sim_labels = feature_labels.to(sim_indices.device)[sim_indices]  # (B, k)
    # exp((s - s_max) / t) instead of exp(s / t): finite for any t > 0 (exp(1 / 0.01)
    # overflows float32), and the same ranking.
    weights = ((sim_weight - sim_weight[:, :1]) / knn_t).exp()
    scores = torch.zeros(feature.shape[0], num_classes, dtype=weights.dtype, device=weights.device)
    scores.scatter_add_(1, sim_labels.long(), weights)
    return scores


def knn_predict(
    feature: Tensor,
    feature_bank: Tensor,
    feature_labels: Tensor,
    num_classes: int,
    knn_k: int = 200,
    knn_t: float = 0.1,
) -> Tensor:
    """Predict classes with the weighted kNN of InstDisc (see the module docstring).

    Args:
        feature: queries, shape (B, D), L2-normalised.
        feature_bank: memory, shape (D, N), columns L2-normalised.
        feature_labels: labels of the memory, shape (N,).
        num_classes: number of classes C.
        knn_k: number of neighbours (lightly's default 200).
        knn_t: temperature of the weights exp(similarity / t) (lightly's default 0.1).

    Returns:
        Class indices of shape (B, C), sorted by score, best first: ``[:, 0]`` is the
        prediction and ``[:, :5]`` the top-5 candidates.
    """
    scores = knn_scores(feature, feature_bank, feature_labels, num_classes, knn_k, knn_t)
    return scores.argsort(dim=-1, descending=True)


def knn_accuracy(
    train_features: Tensor | npt.NDArray[np.floating[Any]],
    train_labels: Tensor | npt.NDArray[np.integer[Any]],
    test_features: Tensor | npt.NDArray[np.floating[Any]],
    test_labels: Tensor | npt.NDArray[np.integer[Any]],
    k: int = 200,
    t: float = 0.1,
    batch_size: int = 512,
) -> float:
    """Top-1 accuracy of the weighted kNN fit on ``train_*`` and evaluated on ``test_*``.

    Features are L2-normalised here (cosine similarity), so raw pixels and embeddings can be
    compared with the same call. Test rows are processed ``batch_size`` at a time, so memory
    holds at most a (batch_size, N_train) similarity matrix: 512 x 60 000 floats is 123 MB.

    Args:
        train_features: (N, D) float.
        train_labels: (N,) integer class indices >= 0.
        test_features: (M, D) float, same D.
        test_labels: (M,) integer class indices >= 0.
        k: number of neighbours.
        t: temperature.
        batch_size: test rows per similarity block.

    Returns:
        The fraction of test rows whose predicted class equals the label, in [0, 1].
    """
    train = torch.as_tensor(train_features)
    test = torch.as_tensor(test_features)
    y_train = torch.as_tensor(train_labels).long()
    y_test = torch.as_tensor(test_labels).long()
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(
            f"train_features and test_features must be (N, D) and (M, D) with one D; got "
            f"{tuple(train.shape)} and {tuple(test.shape)}"
        )
    if y_train.shape != (train.shape[0],) or y_test.shape != (test.shape[0],):
        raise ValueError(
            f"labels must be 1-D with one entry per row: train {tuple(y_train.shape)} for "
            f"{train.shape[0]} rows, test {tuple(y_test.shape)} for {test.shape[0]} rows"
        )
    if test.shape[0] == 0:
        raise ValueError("test_features is empty; accuracy is undefined")
    if train.shape[0] == 0:
        raise ValueError("train_features is empty; there are no neighbours to vote")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if int(y_train.min()) < 0 or int(y_test.min()) < 0:
        raise ValueError("labels must be class indices >= 0")
    num_classes = int(max(int(y_train.max()), int(y_test.max()))) + 1
    if not train.is_floating_point():
        train = train.float()
    bank = F.normalize(train, dim=1).t().contiguous()  # (D, N)
    y_test = y_test.to(bank.device)
    correct = 0
    for start in range(0, test.shape[0], batch_size):
        block = test[start : start + batch_size].to(device=bank.device, dtype=bank.dtype)
        scores = knn_scores(F.normalize(block, dim=1), bank, y_train, num_classes, k, t)
        correct += int((scores.argmax(dim=1) == y_test[start : start + batch_size]).sum())
    return correct / test.shape[0]
