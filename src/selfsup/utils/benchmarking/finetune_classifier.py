"""``FinetuneClassifier``: a linear head trained together with the model (fine-tuning)."""

from __future__ import annotations

from torch import nn

from selfsup.utils.benchmarking.linear_classifier import LinearClassifier

__all__ = ["FinetuneClassifier"]


class FinetuneClassifier(LinearClassifier):
    """:class:`LinearClassifier` with the model trained too (``freeze_model=False``).

    Head and model are optimised with SGD (momentum 0.9, no weight decay) at half the
    linear-evaluation rate, ``lr=0.05`` per 256 samples as in lightly: the pretrained
    weights need smaller steps than a head trained from scratch. Logs the same
    ``train_loss``, ``train_top{k}``, ``val_loss`` and ``val_top{k}``.

    Args:
        model: Feature extractor: images (B, ...) -> features (B, feature_dim).
        batch_size_per_device: Batch size of each process, for the learning-rate scaling.
        feature_dim: D, the number of features ``model`` returns.
        num_classes: C; targets are integers in [0, C).
        topk: The k of the logged top-k accuracies; each in [1, C].
        lr: Learning rate per 256 samples.
    """

    def __init__(
        self,
        model: nn.Module,
        batch_size_per_device: int,
        feature_dim: int = 2048,
        num_classes: int = 1000,
        topk: tuple[int, ...] = (1, 5),
        *,
        lr: float = 0.05,
    ) -> None:
        super().__init__(
            model,
            batch_size_per_device,
            feature_dim=feature_dim,
            num_classes=num_classes,
            topk=topk,
            freeze_model=False,
            lr=lr,
        )
