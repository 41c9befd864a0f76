"""SelfSupervisedEmbedding: train with self-supervision, then embed a dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from selfsup.embedding._base import BaseEmbedding
from selfsup.errors import DataError


class SelfSupervisedEmbedding(BaseEmbedding):
    """A trainable embedding model (see :class:`BaseEmbedding`) that can embed datasets.

    Embeddings are the backbone's features, ``model.backbone(x).flatten(1)`` of shape (B, D),
    i.e. before the projection head, which is what transfers to downstream tasks.
    """

    def embed(
        self,
        dataloader: DataLoader[Any],
        device: torch.device | str | None = None,
        progress: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Embed every sample of ``dataloader``.

        Args:
            dataloader: yields ``(images (B, C, H, W), labels (B,), filenames)``, unshuffled.
            device: where to run the backbone; defaults to the device of the model.
            progress: show a progress bar.

        Returns:
            ``(embeddings (N, D) float32, labels (N,) int64, filenames)`` in dataloader order.
        """
        backbone = getattr(self.model, "backbone", None)
        if not isinstance(backbone, torch.nn.Module):
            raise TypeError(
                f"{type(self.model).__name__} has no 'backbone' module to embed with; "
                "models passed to SelfSupervisedEmbedding must expose model.backbone"
            )
        if device is None:
            device = next(self.model.parameters()).device
        was_training = self.model.training
        self.model.eval()
        backbone.to(device)
        chunks: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        filenames: list[str] = []
        try:
            with torch.no_grad():
                for batch in tqdm(dataloader, desc="embedding", unit="batch", disable=not progress):
                    if not isinstance(batch, list | tuple) or len(batch) != 3:
                        raise DataError(
                            "embedding needs batches of (images, labels, filenames); use a "
                            "dataset that returns (sample, target, filename) and no "
                            "multi-view collate function"
                        )
                    images, targets, names = batch
                    features = backbone(images.to(device)).flatten(start_dim=1)
                    chunks.append(features.float().cpu().numpy())
                    labels.append(torch.as_tensor(targets).cpu().numpy().astype(np.int64))
                    filenames.extend(str(n) for n in names)
        finally:
            self.model.train(was_training)
        if not chunks:
            raise DataError("the dataloader to embed is empty")
        return np.concatenate(chunks), np.concatenate(labels), filenames
