"""SelfSupervisedEmbedding: train with self-supervision, then embed a dataset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate
from tqdm import tqdm

from selfsup.embedding._base import BaseEmbedding
from selfsup.embedding._trainer import autocast_or_float32
from selfsup.errors import ConfigError, DataError
from selfsup.utils.cpus import cpu_has_native_bf16


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


Normalization = tuple[Sequence[float], Sequence[float]]
"""Per-channel ``(mean, std)`` of the images a model was trained on, on the 0-1 scale."""

#: Values of ``embedding.precision`` (ints as the command line parses ``32`` and ``16``).
PRECISIONS: Final = ("auto", "32", "bf16", "16")


def autocast_dtype(precision: str | int, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``embedding.precision`` on ``device``; None runs in float32.

    ``auto`` is bfloat16 on a CUDA GPU that supports it, float16 on other GPUs, bfloat16 on
    a CPU with bf16 instructions (:func:`~selfsup.utils.cpus.cpu_has_native_bf16`: ResNet-18
    embeds 2.2x faster there, with the same kNN accuracy on Fashion-MNIST, 81.32 against
    81.33 %), and float32 on other CPUs, which emulate bf16 and ran ResNet-18 4-5x slower
    under it (issue 16).

    Raises:
        ConfigError: ``precision`` is not one of :data:`PRECISIONS`.
    """
    value = str(precision)
    if value not in PRECISIONS:
        raise ConfigError(
            f"embedding.precision={precision!r} is not one of {', '.join(PRECISIONS)}"
        )
    if value == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None
    return {"32": None, "bf16": torch.bfloat16, "16": torch.float16}[value]


def split_batch(batch: Any) -> tuple[torch.Tensor, Any, Any]:
    """``(images, labels, names)`` of a batch to embed: ``(images, labels, names)`` as a
    :class:`~selfsup.data.LightlyDataset` with a transform gives, or ``(images (B, 3, S, S)
    uint8, orig_hw, labels, names)`` as :class:`~selfsup.data.uint8.Uint8Dataset` gives.

    Raises:
        DataError: Any other batch (a multi-view collate's, say).
    """
    if isinstance(batch, list | tuple):
        if len(batch) == 3:
            return batch[0], batch[1], batch[2]
        if len(batch) == 4 and isinstance(batch[0], torch.Tensor) and batch[0].dtype == torch.uint8:
            return batch[0], batch[2], batch[3]
    raise DataError(
        "embedding needs batches of (images, labels, filenames) or, from a Uint8Dataset, "
        "(uint8 images, sizes, labels, filenames); use a dataset that returns (sample, target, "
        "filename) and no multi-view collate function"
    )


def model_input(
    images: torch.Tensor,
    device: torch.device,
    normalize: Normalization | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """``images`` (B, C, H, W) on ``device``, ready for the backbone.

    uint8 images are copied as uint8 (a quarter of the bytes; ``non_blocking``, which
    overlaps the copy with compute when the loader pins memory) and normalised there:
    ``(x / 255 - mean) / std``, ``normalize`` or ImageNet's. Float images are taken as
    already normalised (a user's own transform).
    """
    x = images.to(device, non_blocking=True)
    if x.dtype == torch.uint8:
        from selfsup.transforms.utils import IMAGENET_NORMALIZE

        mean, std = normalize or (IMAGENET_NORMALIZE["mean"], IMAGENET_NORMALIZE["std"])
        scale = torch.tensor([255.0 * s for s in std], device=device).view(1, -1, 1, 1)
        shift = torch.tensor([255.0 * m for m in mean], device=device).view(1, -1, 1, 1)
        x = (x.float() - shift) / scale
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def forward_features(
    backbone: torch.nn.Module,
    images: torch.Tensor,
    device: torch.device,
    *,
    normalize: Normalization | None = None,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """The backbone's features of ``images``: (B, D) float32 on ``device`` (not synchronised,
    so the caller can queue the next batch before reading these back)."""
    x = model_input(images, device, normalize, channels_last)
    with autocast_or_float32(device.type, dtype):
        features: torch.Tensor = backbone(x)
    return features.flatten(start_dim=1).float()


def _memory_format(module: torch.nn.Module) -> torch.memory_format:
    """The layout of ``module``'s convolution weights (its first 4-d parameter), to restore
    after embedding in channels-last; contiguous when it has none."""
    for parameter in module.parameters():
        if parameter.dim() == 4:
            channels_last = parameter.is_contiguous(memory_format=torch.channels_last)
            if channels_last and not parameter.is_contiguous():
                return torch.channels_last
            return torch.contiguous_format
    return torch.contiguous_format


def embed_batch(
    backbone: torch.nn.Module,
    images: torch.Tensor,
    targets: Any,
    names: Any,
    device: Any,
    *,
    normalize: Normalization | None = None,
    dtype: torch.dtype | None = None,
    channels_last: bool = False,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One batch through ``backbone``: ``(features (B, D) float32, labels (B,) int64, names)``.

    ``images`` is (B, C, H, W): float (already normalised) or uint8 (normalised on the
    device with ``normalize``, see :func:`model_input`); ``dtype`` is the autocast dtype
    (:func:`autocast_dtype`); ``channels_last`` lays the images out channels-last (give the
    backbone the same layout). The features are the backbone's output flattened per sample.
    The Ray actors (:mod:`selfsup.embedding.ray_engine`) call it, and
    :meth:`SelfSupervisedEmbedding.embed` runs the same steps, so both write the same rows.
    """
    features = forward_features(
        backbone,
        images,
        torch.device(device),
        normalize=normalize,
        dtype=dtype,
        channels_last=channels_last,
    )
    return _host_rows(features, targets, names)


def _host_rows(
    features: torch.Tensor, targets: Any, names: Any
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A batch's features, labels and names as host arrays (waits for the features)."""
    return (
        features.cpu().numpy(),
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
        *,
        precision: str | int = "auto",
        normalize: Normalization | None = None,
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Embed every sample of ``dataloader``.

        Runs under ``torch.inference_mode()``, in ``precision`` (:func:`autocast_dtype`:
        bf16/fp16 autocast on a GPU by default, bf16 on a CPU with bf16 instructions, else
        float32; the embeddings are float32 either way), with the backbone and images in
        channels-last layout (the backbone's layout is restored afterwards). A batch's
        features are read back after the next batch is queued, so on a GPU the copy and the
        loader's decoding (in its workers) overlap with compute.

        Args:
            dataloader: yields ``(images (B, C, H, W), labels (B,), filenames)``, unshuffled,
                or, over a :class:`~selfsup.data.uint8.Uint8Dataset`, ``(images (B, 3, S, S)
                uint8, orig_hw, labels, filenames)``: those are normalised on the device.
                A loader over a dataset without a transform (PIL images) works too: images
                are converted to normalised tensors (they must then share one size).
            device: where to run the backbone; defaults to the device of the model.
            progress: show a progress bar.
            precision: ``embedding.precision``: auto, 32, bf16 or 16.
            normalize: ``(mean, std)`` for uint8 images (default ImageNet's, what training
                uses); float images are used as they come.

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
        device = torch.device(device)
        dtype = autocast_dtype(precision, device)
        # Channels-last convolutions: faster on GPUs (tensor cores) and on the CPU too
        # (oneDNN; ResNet-18 at 32 px 1.4x the images/s of NCHW on the project's 2-core CPU).
        layout = _memory_format(backbone)
        was_training = self.model.training
        self.model.eval()
        backbone.to(device)
        backbone.to(memory_format=torch.channels_last)
        chunks: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        filenames: list[str] = []
        pending: tuple[torch.Tensor, Any, Any] | None = None

        def collect(batch: tuple[torch.Tensor, Any, Any]) -> None:
            features, targets, names = _host_rows(*batch)
            chunks.append(features)
            labels.append(targets)
            filenames.extend(names)

        try:
            with torch.inference_mode():
                loader = _with_tensor_collate(dataloader)
                for batch in tqdm(loader, desc="embedding", unit="batch", disable=not progress):
                    images, targets, names = split_batch(batch)
                    features = forward_features(
                        backbone,
                        images,
                        device,
                        normalize=normalize,
                        dtype=dtype,
                        channels_last=True,
                    )
                    if pending is not None:
                        collect(pending)
                    pending = (features, targets, names)
                if pending is not None:
                    collect(pending)
        finally:
            backbone.to(memory_format=layout)
            self.model.train(was_training)
        finalize_cache = getattr(dataloader.dataset, "finalize_cache", None)
        if callable(finalize_cache):
            finalize_cache()  # a full pass filled every row of a Uint8Cache: publish it
        if not chunks:
            raise DataError("the dataloader to embed is empty")
        embeddings, targets = np.concatenate(chunks), np.concatenate(labels)
        order = _dataset_order(dataloader.dataset, filenames)
        if order is None:
            return embeddings, targets, filenames
        return embeddings[order], targets[order], [filenames[i] for i in order]
