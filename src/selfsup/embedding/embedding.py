"""SelfSupervisedEmbedding: train with self-supervision, then embed a dataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate
from tqdm import tqdm

from selfsup.embedding._base import BaseEmbedding
from selfsup.errors import DataError


def _to_tensor_collate(batch: list[Any]) -> Any:
    """Default collation, except that PIL images become normalised (3, H, W) tensors.

    Lets ``embed`` take a loader over a dataset without a transform, as the seed's
    "make a new dataloader without the transformations" example does.
    """
    import torchvision.transforms.functional as F

    from selfsup.transforms.utils import IMAGENET_NORMALIZE

    converted = []
    sizes = set()
    for sample, *rest in batch:
        if isinstance(sample, Image.Image):
            sizes.add(sample.size)
            tensor = F.normalize(
                F.to_tensor(sample.convert("RGB")),
                mean=IMAGENET_NORMALIZE["mean"],
                std=IMAGENET_NORMALIZE["std"],
            )
            converted.append((tensor, *rest))
        else:
            converted.append((sample, *rest))
    if len(sizes) > 1:
        names = [str(item[-1]) for item in batch][:3]
        raise DataError(
            f"images of different sizes {sorted(sizes)} in one batch (e.g. {names}); give the "
            "dataset a transform that resizes them, e.g. torchvision.transforms.Resize"
        )
    return default_collate(converted)


def _with_tensor_collate(dataloader: DataLoader[Any]) -> DataLoader[Any]:
    """``dataloader`` itself, or a copy that can collate PIL images if its dataset has none."""
    dataset = dataloader.dataset
    if dataloader.collate_fn is not default_collate or getattr(dataset, "transform", 0) is not None:
        return dataloader
    return DataLoader(
        dataset,
        batch_size=dataloader.batch_size,
        shuffle=False,
        num_workers=dataloader.num_workers,
        collate_fn=_to_tensor_collate,
    )


def embed_batch(
    backbone: torch.nn.Module, images: torch.Tensor, targets: Any, names: Any, device: Any
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One batch through ``backbone``: ``(features (B, D) float32, labels (B,) int64, names)``.

    ``images`` is (B, C, H, W); the features are the backbone's output flattened per sample.
    The local engine (:meth:`SelfSupervisedEmbedding.embed`) and the Ray actors
    (:mod:`selfsup.embedding.ray_engine`) both call it, so both write the same rows.
    """
    features = backbone(images.to(device)).flatten(start_dim=1)
    return (
        features.float().cpu().numpy(),
        torch.as_tensor(targets).cpu().numpy().astype(np.int64),
        [str(n) for n in names],
    )


def _dataset_order(dataset: Any, filenames: list[str]) -> np.ndarray | None:
    """Row permutation that puts ``filenames`` into the dataset's index order, or None when
    the rows are in that order already or the dataset cannot say its order (no
    ``get_filenames``, or names that are not unique or not the dataset's)."""
    get_filenames = getattr(dataset, "get_filenames", None)
    if not callable(get_filenames):
        return None
    position = {name: i for i, name in enumerate(get_filenames())}
    ranks = [position.get(name, -1) for name in filenames]
    if min(ranks, default=0) < 0 or len(set(ranks)) != len(ranks):
        return None
    order = np.argsort(np.asarray(ranks), kind="stable")
    return None if bool(np.all(order == np.arange(len(order)))) else order


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
                A loader over a dataset without a transform (PIL images) works too: images
                are converted to normalised tensors (they must then share one size).
            device: where to run the backbone; defaults to the device of the model.
            progress: show a progress bar.

        Returns:
            ``(embeddings (N, D) float32, labels (N,) int64, filenames)`` in the dataset's
            order whenever the dataset names its items (``get_filenames()``, as
            :class:`~selfsup.data.LightlyDataset` does), whatever the loader's sampler: a
            shuffled loader gives the same rows in the same order on every call (lightly
            sorts by file name the same way). Otherwise in the order the loader yields.
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
                loader = _with_tensor_collate(dataloader)
                for batch in tqdm(loader, desc="embedding", unit="batch", disable=not progress):
                    if not isinstance(batch, list | tuple) or len(batch) != 3:
                        raise DataError(
                            "embedding needs batches of (images, labels, filenames); use a "
                            "dataset that returns (sample, target, filename) and no "
                            "multi-view collate function"
                        )
                    images, targets, names = batch
                    features, targets, names = embed_batch(backbone, images, targets, names, device)
                    chunks.append(features)
                    labels.append(targets)
                    filenames.extend(names)
        finally:
            self.model.train(was_training)
        if not chunks:
            raise DataError("the dataloader to embed is empty")
        embeddings, targets = np.concatenate(chunks), np.concatenate(labels)
        order = _dataset_order(dataloader.dataset, filenames)
        if order is None:
            return embeddings, targets, filenames
        return embeddings[order], targets[order], [filenames[i] for i in order]
