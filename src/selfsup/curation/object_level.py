"""Object-level selection: the objects of an object-detection task as samples of their own.

With ``object_level.task_name`` set, a run selects objects rather than images: every box of
that task (see :mod:`selfsup.curation.predictions`) becomes a *crop*, the crops are embedded
with the same model and transform as whole images, the selection runs over the crops, and
the selected crops can be written out as PNG files.

Crop geometry (:func:`pad_box`)
    For a box ``[x, y, w, h]`` and ``padding`` ``p``, every side moves out by ``p`` times
    the box's size along that axis: ``[x - p w, y - p h, x + w + p w, y + h + p h]``
    (``p = 0.1`` makes a 100 x 50 box 120 x 60). The padded box is clipped to the image
    ``[0, W] x [0, H]`` and rounded outward to whole pixels (floor of left/top, ceil of
    right/bottom), so the crop holds the whole padded box. Crops are ``(left, top, right,
    bottom)`` with right/bottom exclusive, as :meth:`PIL.Image.Image.crop` takes them.

Crop names
    ``<sample name without extension>-<task>-<box index>-<sample extension>.png``, e.g. box 2
    of ``subdir/img_3.jpg`` in task ``vehicles`` is ``subdir/img_3-vehicles-2-jpg.png`` and
    box 0 of the video frame ``clips/a-042-mp4.png`` is ``clips/a-042-mp4-vehicles-0-png.png``
    (a sample without extension drops the last part). The box index is the box's position in
    the sample's prediction file, so a name stays the same across runs as long as that file
    does, and boxes dropped by ``min_size`` or ``min_confidence`` leave gaps in the indices.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image
from torch.utils.data import Dataset

from selfsup.curation.predictions import DetectionPredictions, box_uncertainty
from selfsup.errors import ConfigError, DataError
from selfsup.selection.inputs import ClassCounts
from selfsup.utils.atomic import atomic_open_bytes

if TYPE_CHECKING:
    from selfsup.config import LightlyConfig
    from selfsup.data import LightlyDataset, ManifestDataset

__all__ = [
    "Crop",
    "CropDataset",
    "crop_boxes",
    "crop_class_counts",
    "crop_name",
    "crop_scores",
    "embed_crops",
    "pad_box",
    "save_crops",
]


@dataclass(frozen=True)
class Crop:
    """One detected object as a sample.

    Attributes:
        name: Stable crop name (see the module docstring); also the file name
            :func:`save_crops` writes, relative to its folder.
        source: Name of the image or video frame the object is in (manifest ``filename``).
        box_index: Position of the box in the source's prediction file.
        box: ``(left, top, right, bottom)`` integer pixels of the padded, clipped crop;
            right and bottom are exclusive.
        class_id: Column index of the box's category in the task schema.
        score: Detection confidence of the box.
    """

    name: str
    source: str
    box_index: int
    box: tuple[int, int, int, int]
    class_id: int
    score: float

    @property
    def width(self) -> int:
        """Crop width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> int:
        """Crop height in pixels."""
        return self.box[3] - self.box[1]


def crop_name(source: str, task: str, box_index: int) -> str:
    """``<source without extension>-<task>-<box index>-<extension>.png`` (module docstring)."""
    stem, ext = posixpath.splitext(source)
    suffix = f"-{ext[1:]}" if ext else ""
    return f"{stem}-{task}-{box_index}{suffix}.png"


def pad_box(
    box: Sequence[float], width: int, height: int, padding: float
) -> tuple[int, int, int, int]:
    """The padded box ``[x, y, w, h]`` clipped to a ``width x height`` image, whole pixels.

    Returns:
        ``(left, top, right, bottom)``, right/bottom exclusive; possibly empty (``right ==
        left``) for a box of zero size on the border.
    """
    x, y, w, h = (float(v) for v in box)
    left = max(0, math.floor(x - padding * w))
    top = max(0, math.floor(y - padding * h))
    right = min(width, math.ceil(x + w + padding * w))
    bottom = min(height, math.ceil(y + h + padding * h))
    return left, top, max(left, right), max(top, bottom)


def crop_boxes(
    preds: DetectionPredictions,
    image_sizes: Sequence[tuple[int, int] | None],
    *,
    padding: float = 0.1,
    min_size: int = 1,
    min_confidence: float = 0.0,
) -> list[Crop]:
    """The crops of every box of an object-detection task, in sample order then box order.

    Args:
        preds: Loaded detections (:func:`selfsup.curation.predictions.load_predictions`).
        image_sizes: ``(width, height)`` of each sample of ``preds``, e.g. from the manifest
            records; needed to clip the padded boxes.
        padding: Fraction of the box's width (height) added left and right (top and bottom).
        min_size: Crops narrower or lower than this many pixels (after padding and clipping)
            are dropped: they carry too little to embed.
        min_confidence: Boxes with a lower score are dropped.

    Raises:
        ConfigError: ``preds`` is no object-detection task, ``padding < 0`` or
            ``min_size < 1``.
        DataError: a sample with boxes has no known size.
    """
    if not isinstance(preds, DetectionPredictions):
        schema = getattr(preds, "schema", None)
        raise ConfigError(
            f"object-level selection needs an object-detection task; task "
            f"{getattr(schema, 'name', '?')!r} is {getattr(schema, 'task_type', type(preds))!r}"
        )
    if not padding >= 0:
        raise ConfigError(f"crop padding must be >= 0 (a fraction of the box size), got {padding}")
    if min_size < 1:
        raise ConfigError(f"min_size must be >= 1 pixel, got {min_size}")
    if len(image_sizes) != len(preds.filenames):
        raise DataError(
            f"image_sizes has {len(image_sizes)} entries for {len(preds.filenames)} samples"
        )
    task = preds.schema.name
    crops: list[Crop] = []
    for source, dets, size in zip(preds.filenames, preds.detections, image_sizes, strict=True):
        if not len(dets):
            continue
        if size is None:
            raise DataError(f"sample {source!r} has boxes in task {task!r} but no known size")
        width, height = size
        for j in range(len(dets)):
            score = float(dets.scores[j])
            if score < min_confidence:
                continue
            box = pad_box(dets.boxes[j], width, height, padding)
            if box[2] - box[0] < min_size or box[3] - box[1] < min_size:
                continue
            crops.append(
                Crop(
                    name=crop_name(source, task, j),
                    source=source,
                    box_index=j,
                    box=box,
                    class_id=int(dets.class_ids[j]),
                    score=score,
                )
            )
    return crops


def crop_scores(
    preds: DetectionPredictions, crops: Sequence[Crop]
) -> dict[str, NDArray[np.float64]]:
    """Active-learning scores per crop, for a selection over crops (SCORES input).

    ``uncertainty_least_confidence``, ``uncertainty_margin`` and ``uncertainty_entropy`` of
    the crop's own box (see :func:`selfsup.curation.predictions.box_uncertainty`) and
    ``objectness_least_confidence = 1 - score``.

    Returns:
        ``score name -> (M,)`` float64 in [0, 1], one value per crop.
    """
    row = {name: i for i, name in enumerate(preds.filenames)}
    num_classes = preds.schema.num_classes
    probs = np.zeros((len(crops), num_classes), dtype=np.float64)
    for k, crop in enumerate(crops):
        if crop.source not in row:
            raise DataError(f"crop {crop.name!r}: its source {crop.source!r} is not in preds")
        probs[k] = preds.detections[row[crop.source]].probabilities[crop.box_index]
    conf = np.array([c.score for c in crops], dtype=np.float64)
    scores = box_uncertainty(probs, conf)
    scores["objectness_least_confidence"] = 1.0 - conf
    return scores


def crop_class_counts(preds: DetectionPredictions, crops: Sequence[Crop]) -> ClassCounts:
    """One-hot class of each crop, for BALANCE / CATEGORY_COUNT over crops."""
    labels = np.array([c.class_id for c in crops], dtype=np.int64)
    return ClassCounts.from_labels(labels, preds.schema.category_names)


class CropDataset(Dataset[tuple[Any, int, str]]):
    """Crops of images and video frames as ``(sample, target, crop name)``, like LightlyDataset.

    ``sample`` is the RGB PIL crop, or what ``transform`` makes of it (use the embedding
    transform so crops are embedded exactly like whole images); ``target`` is the crop's
    ``class_id``. Sources are read through :class:`~selfsup.data.LightlyDataset` (or a run's
    :class:`~selfsup.data.ManifestDataset`), so images and video frames (named as in the
    manifest) both work. The last decoded source is kept,
    so consecutive crops of one image (the order :func:`crop_boxes` returns) decode it once.

    Args:
        input_dir: The folder the crop sources are relative to.
        crops: Crops to serve, in this order.
        transform: Applied to each PIL crop.
        images: A transform-less LightlyDataset or ManifestDataset over ``input_dir`` holding
            every source (a curation run passes its checked samples, so the folder is not
            listed and probed again); by default a LightlyDataset of just the crop sources.

    Raises:
        DataError: a source is missing or unreadable, or a crop box exceeds its image (the
            file changed since its size was recorded).
    """

    def __init__(
        self,
        input_dir: str | os.PathLike[str],
        crops: Sequence[Crop],
        transform: Callable[[Image.Image], Any] | None = None,
        *,
        images: LightlyDataset | ManifestDataset | None = None,
    ) -> None:
        from selfsup.data import LightlyDataset

        self.input_dir = os.fspath(input_dir)
        self.crops: list[Crop] = list(crops)
        self.transform = transform
        sources = list(dict.fromkeys(c.source for c in self.crops))
        if images is None:
            images = LightlyDataset(self.input_dir, filenames=sources) if sources else None
        elif images.transform is not None:
            raise ConfigError(
                "CropDataset images must have no transform (it crops PIL images); pass the "
                "transform to CropDataset instead"
            )
        self._images = images
        index = {} if images is None else {n: i for i, n in enumerate(images.get_filenames())}
        unknown = [s for s in sources if s not in index]
        if unknown:
            raise DataError(
                f"{len(unknown)} crop source(s) are not readable images or frames in "
                f"{self.input_dir!r}: {', '.join(repr(s) for s in unknown[:5])}"
            )
        self._index = index
        self._cached: tuple[str, Image.Image] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get a copy; a decoded image is not worth pickling
        state = dict(self.__dict__)
        state["_cached"] = None
        return state

    def __len__(self) -> int:
        return len(self.crops)

    def _source_image(self, source: str) -> Image.Image:
        if self._cached is not None and self._cached[0] == source:
            return self._cached[1]
        assert self._images is not None  # there are crops, hence sources and images
        image = self._images[self._index[source]][0]
        if not isinstance(image, Image.Image):
            raise DataError(f"reading {source!r} gave {type(image).__name__}, not a PIL image")
        self._cached = (source, image)
        return image

    def crop_image(self, index: int) -> Image.Image:
        """The untransformed RGB crop ``index``."""
        crop = self.crops[index]
        image = self._source_image(crop.source)
        right, bottom = crop.box[2], crop.box[3]
        if right > image.width or bottom > image.height:
            raise DataError(
                f"crop {crop.name!r}: box {crop.box} exceeds the {image.width}x{image.height} "
                f"image {crop.source!r}; did the file change since its size was recorded?"
            )
        return image.crop(crop.box)

    def __getitem__(self, index: int) -> tuple[Any, int, str]:
        """``(crop or transform(crop), class_id, crop name)``."""
        region = self.crop_image(index)
        crop = self.crops[index]
        sample: Any = region if self.transform is None else self.transform(region)
        return sample, crop.class_id, crop.name

    def get_filenames(self) -> list[str]:
        """Crop names in index order (what the embeddings CSV and selection lists show)."""
        return [c.name for c in self.crops]


def save_crops(
    input_dir: str | os.PathLike[str],
    crops: Sequence[Crop],
    output_dir: str | os.PathLike[str],
    *,
    images: LightlyDataset | ManifestDataset | None = None,
) -> list[Path]:
    """Write each crop as ``<output_dir>/<crop.name>`` (PNG, lossless), atomically.

    ``images``: see :class:`CropDataset`.

    Returns:
        The written paths, in the order of ``crops``.
    """
    out = Path(output_dir)
    dataset = CropDataset(input_dir, crops, images=images)
    paths: list[Path] = []
    for i, crop in enumerate(dataset.crops):
        rel = PurePosixPath(crop.name)
        if rel.is_absolute() or ".." in rel.parts:
            raise DataError(f"crop name {crop.name!r} must be a relative path inside output_dir")
        path = out.joinpath(*rel.parts)
        with atomic_open_bytes(path) as handle:
            dataset.crop_image(i).save(handle, format="PNG")
        paths.append(path)
    return paths


def embed_crops(
    cfg: LightlyConfig,
    crops: Sequence[Crop],
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    samples: ManifestDataset | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.int64], list[str]]:
    """Embed crops exactly as :func:`selfsup.core.embed` embeds whole images.

    Same model (from ``checkpoint`` or ``cfg.checkpoint``), same resize/normalise transform
    (``cfg.collate.input_size``), same loader settings and device choice. ``samples`` are
    the checked samples of a curation run holding every crop source (read without listing
    the folder); ``None`` reads the sources from ``cfg.input_dir``.

    Returns:
        ``(embeddings (M, D) float32, class ids (M,) int64, crop names)`` in ``crops`` order.
    """
    from torch import nn
    from torch.utils.data import DataLoader

    from selfsup.core import build_embed_loader, embedding_model
    from selfsup.embedding import SelfSupervisedEmbedding

    if not (checkpoint or cfg.checkpoint or cfg.model.weights):
        raise ConfigError(
            "checkpoint is required to embed crops: pass checkpoint=<path>, or "
            "model.weights=<pretrained weights>"
        )
    if not crops:
        return np.zeros((0, 0), dtype=np.float32), np.zeros(0, dtype=np.int64), []
    model, side, normalize = embedding_model(cfg, checkpoint)
    sources = list(dict.fromkeys(c.source for c in crops))
    # the image loader carries the embedding transform; reuse it and its dataset of sources
    image_loader = (
        build_embed_loader(cfg.input_dir, cfg.loader, side, sources, normalize=normalize)
        if samples is None
        else build_embed_loader(
            cfg.input_dir, cfg.loader, side, samples=samples, normalize=normalize
        )
    )
    images = cast("LightlyDataset | ManifestDataset", image_loader.dataset)
    transform = images.transform
    images.transform = None  # CropDataset crops the raw PIL images, then transforms
    dataset = CropDataset(cfg.input_dir, crops, transform, images=images)
    loader: DataLoader[Any] = DataLoader(
        dataset,
        batch_size=image_loader.batch_size,
        shuffle=False,
        num_workers=image_loader.num_workers,
        drop_last=False,
    )
    embedding = SelfSupervisedEmbedding(
        model, nn.Identity(), torch.optim.SGD(model.parameters(), lr=0.0), loader
    )
    device = "cuda" if cfg.trainer.gpus > 0 and torch.cuda.is_available() else "cpu"
    model.to(device)
    emb, labels, names = embedding.embed(
        loader, device=device, progress=progress, precision=cfg.embedding.precision
    )
    return (
        np.asarray(emb, dtype=np.float32),
        np.asarray(labels, dtype=np.int64),
        [str(n) for n in names],
    )
