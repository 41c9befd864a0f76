"""The three-line interface: train a model, embed images, or both, from a lightly_config.

These functions are the programs' shared engine: ``selfsup train``/``embed`` and the
curation pipeline call them with a resolved :class:`~selfsup.config.LightlyConfig`; Python
users call them with keyword arguments (``trainer={'max_epochs': 10}``) that are validated
exactly like the command line.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from torch.utils.data import DataLoader

from selfsup.config import (
    CollateConfig,
    LightlyConfig,
    LoaderConfig,
    ModelConfig,
    resolve,
)
from selfsup.embedding import CHECKPOINT_METADATA_KEY, MethodEmbedding, SelfSupervisedEmbedding
from selfsup.embedding._trainer import distributed_trainer_kwargs
from selfsup.errors import ConfigError, DataError
from selfsup.home import timestamped_output_dir
from selfsup.methods._base import MethodModel
from selfsup.models.compile import compile_method_model
from selfsup.utils.cpus import resolve_num_workers

if TYPE_CHECKING:
    from selfsup.config.lightly_config import TeacherConfig
    from selfsup.data.dataset import LightlyDataset
    from selfsup.data.manifest_dataset import ManifestDataset
    from selfsup.models.backbones import Backbone

logger = logging.getLogger(__name__)

Embeddings = tuple[np.ndarray, np.ndarray, list[str]]


def resolve_config(
    config_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> LightlyConfig:
    """Resolve a LightlyConfig from an optional YAML file and keyword arguments.

    ``resolve_config(input_dir='imgs', trainer={'max_epochs': 10})``; unknown keys raise a
    ConfigError with a did-you-mean suggestion.
    """
    return resolve(LightlyConfig, file=config_path, data=kwargs)


def default_output_dir() -> Path:
    """``./selfsup_outputs/<date>/<time>``, the layout lightly's CLI users know from hydra."""
    return timestamped_output_dir("selfsup_outputs", nested=True)


def resolve_model(model: ModelConfig) -> ModelConfig:
    """``model`` with the backbone name of its ``zoo:<name>`` weights.

    ``model.weights=zoo:<name>`` brings its own backbone name (the zoo entry's ``model``); a
    ``model.name`` left at its default takes it, a different explicit one is an error.
    """
    if not model.weights.startswith("zoo:"):
        return model
    from selfsup.models.zoo import resolve_entry

    entry = resolve_entry(model.weights[len("zoo:") :])
    if model.name == entry.model and model.width == entry.width:
        return model
    if model.name not in (entry.model, ModelConfig.model_fields["name"].default):
        raise ConfigError(
            f"model.weights={model.weights} holds weights of the backbone {entry.model!r} but "
            f"model.name={model.name!r}; set model.name={entry.model} or leave it unset"
        )
    logger.info("model.weights=%s: using its backbone %s", model.weights, entry.model)
    return model.model_copy(update={"name": entry.model, "width": entry.width})


def build_backbone(model: ModelConfig, *, pretrained: bool = True) -> Backbone:
    """The configured backbone, (B, 3, H, W) -> (B, num_features), with ``model.weights``
    loaded when ``pretrained`` (:func:`selfsup.models.weights.load_backbone_weights`; keys
    that do not match are an error unless ``model.weights_strict=false``)."""
    from selfsup.models.backbones import get_backbone, vit_pool_kwargs
    from selfsup.models.weights import load_backbone_weights

    model = resolve_model(model)
    pool = vit_pool_kwargs(model.name, model.vit_pool)
    features = get_backbone(model.name, width=model.width, **pool)
    if pretrained and model.weights:
        load_backbone_weights(features, model.weights, strict=model.weights_strict)
    return features


def build_model(
    model: ModelConfig,
    method: str = "simclr",
    criterion: Mapping[str, Any] | None = None,
    *,
    pretrained: bool = True,
    method_kwargs: Mapping[str, Any] | None = None,
) -> MethodModel:
    """The registered ``method``'s model over the configured backbone.

    The backbone maps (B, 3, H, W) images to (B, num_ftrs) embeddings: the named feature
    extractor followed by a linear map to ``num_ftrs`` dimensions (lightly uses a 1x1
    convolution before pooling, which is the same map), which training learns. The feature
    extractor starts from ``model.weights`` when set and ``pretrained`` (fine-tuning);
    ``pretrained=False`` skips them where a checkpoint's weights follow.
    ``criterion`` holds the ``criterion.*`` settings the method takes (e.g. SimCLR's
    temperature); ``method_kwargs`` the method's other arguments (:func:`method_model_kwargs`
    when training, a checkpoint's ``method_kwargs`` when rebuilding).
    """
    from selfsup.methods import get_method

    features = build_backbone(model, pretrained=pretrained)
    backbone = nn.Sequential(features, nn.Linear(features.num_features, model.num_ftrs))
    return get_method(method).build_model(
        backbone,
        model.num_ftrs,
        model.out_dim,
        **dict(criterion or {}),
        **dict(method_kwargs or {}),
    )


class PretrainedModel(nn.Module):
    """A backbone with pretrained weights and nothing on top, to embed without training.

    Embeddings are the backbone's pooled features (B, num_features): an untrained model gets
    no projection to ``model.num_ftrs``, whose random weights would only scramble them.
    """

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, num_features)."""
        out: torch.Tensor = self.backbone(x)
        return out


def changed_keys(section: BaseModel) -> list[str]:
    """Keys of a config section whose value differs from its default.

    A value equal to lightly's default means "the method's own default" for the sections
    methods interpret (criterion, optimizer, collate); comparing values rather than asking
    pydantic which keys were set keeps that meaning through a config's round trip to YAML,
    the server and the worker, where every key is written out.
    """
    fields = type(section).model_fields
    return [key for key, field in fields.items() if getattr(section, key) != field.default]


def user_set_keys(section: BaseModel) -> set[str]:
    """Keys of a config section the user gave: changed from the default (:func:`changed_keys`,
    which survives a full YAML dump) or named explicitly, even with the default's value.

    ``model.name=resnet-18`` on the command line, in a YAML file or in a scheduled run's
    ``lightly_config`` (stored with only the keys given) is the user's choice although it
    equals lightly's default; pydantic records it in ``model_fields_set``. The recipe keeps
    such keys: replacing a value the user typed would be a silent surprise.
    """
    fields = type(section).model_fields
    return set(changed_keys(section)) | (set(section.model_fields_set) & set(fields))


def method_criterion(cfg: LightlyConfig) -> dict[str, Any]:
    """The ``criterion.*`` values the user set (typed keys changed from their defaults, and
    method-specific keys), as keyword arguments of the method's model builder. The config
    checked them against ``cfg.method`` when it was resolved; checking again here covers a
    config changed since. Unset arguments keep the builder's defaults (the declared ones)."""
    from selfsup.methods import check_criterion_args

    return check_criterion_args(cfg.method, cfg.criterion.method_values())


def method_model_kwargs(cfg: LightlyConfig) -> dict[str, Any]:
    """Arguments of the method's model builder from config sections other than
    ``criterion``: the frozen teacher (``teacher.*``) of a method that distils one."""
    from selfsup.methods import method_takes_teacher

    if not method_takes_teacher(cfg.method):
        return {}
    teacher = build_teacher(cfg.teacher)
    return {"teacher": teacher, "teacher_input_size": _teacher_input_size(cfg.teacher, teacher)}


def build_teacher(teacher: TeacherConfig) -> Backbone:
    """The backbone ``teacher.name`` with the weights ``teacher.weights``, frozen in eval mode
    (images (B, 3, H, W) -> pooled features (B, num_features)); mismatched keys are an error
    naming them unless ``teacher.weights_strict=false``."""
    from selfsup.models.backbones import get_backbone
    from selfsup.models.weights import load_backbone_weights

    if not teacher.name or not teacher.weights:
        raise ConfigError(
            "a teacher needs teacher.name=<backbone> and teacher.weights=<weights file, model "
            f"folder, selfsup checkpoint or zoo:name>; got name={teacher.name!r}, "
            f"weights={teacher.weights!r}"
        )
    backbone = get_backbone(teacher.name)
    load_backbone_weights(backbone, teacher.weights, strict=teacher.weights_strict)
    backbone.eval()
    backbone.requires_grad_(False)
    return backbone


def _teacher_input_size(teacher: TeacherConfig, backbone: Backbone) -> int | None:
    """``teacher.input_size`` when set; else the only side a ViT teacher accepts
    (:func:`_fixed_side`); else None (the views' own size)."""
    return teacher.input_size or _fixed_side(backbone.features)


def _num_workers(loader: LoaderConfig) -> int:
    return resolve_num_workers(loader.num_workers)


#: Folders already checked in this :func:`folder_checked_once` block, by (input_dir, filenames).
_CHECKED_FOLDERS: ContextVar[dict[tuple[str, tuple[str, ...] | None], LightlyDataset] | None] = (
    ContextVar("_CHECKED_FOLDERS", default=None)
)


@contextlib.contextmanager
def folder_checked_once() -> Iterator[None]:
    """Within the block, :func:`_dataset` checks each folder's files once.

    Training reads the folder three times before its first step (the recipe's probe, its
    timed step, the training loader); each built a ``LightlyDataset`` that decoded every
    file again (2.1 s of ``selfsup train`` on 2,000 PNGs, minutes on a million) and warned
    again about the same unreadable ones. Inside the block later datasets of the same folder
    and filenames share the first one's checked listing, with their own transform.
    """
    token = _CHECKED_FOLDERS.set({})
    try:
        yield
    finally:
        _CHECKED_FOLDERS.reset(token)


def _dataset(
    input_dir: str,
    transform: Any,
    filenames: Sequence[str] | None = None,
    samples: ManifestDataset | None = None,
) -> Any:
    """The dataset to load: ``samples`` with ``transform`` when given (a curation run's
    checked samples, read without listing the folder), else the folder ``input_dir``."""
    from selfsup.data import LightlyDataset

    if samples is not None:
        if filenames is not None:
            raise ConfigError("pass filenames or samples, not both (samples are already chosen)")
        return samples.with_transform(transform)
    if not input_dir:
        raise ConfigError("input_dir is required: the folder of images or videos to use")
    names = list(filenames) if filenames is not None else None
    checked = _CHECKED_FOLDERS.get()
    key = (input_dir, None if names is None else tuple(names))
    if checked is not None and key in checked:
        return checked[key].with_transform(transform)
    dataset = LightlyDataset(input_dir=input_dir, transform=transform, filenames=names)
    if checked is not None:
        checked[key] = dataset
    return dataset


def build_train_loader(
    input_dir: str,
    loader: LoaderConfig,
    collate: CollateConfig,
    filenames: Sequence[str] | None = None,
    method: str = "simclr",
    *,
    samples: ManifestDataset | None = None,
) -> DataLoader[Any]:
    """A shuffled loader of the method's views of each image.

    SimCLR's views come from ImageCollateFunction with the ``collate.*`` settings (lightly's
    CLI augmentations); other methods use their papers' transforms at ``collate.input_size``.
    ``filenames`` restricts training to those samples (e.g. the non-corrupt ones of a run);
    ``samples`` replaces the folder by the samples a curation check recorded.

    ``loader.augment="device"`` (default): when every view has a batched form, the loader
    yields uint8 images resized once to a source size with their original sizes
    (:class:`~selfsup.data.uint8.Uint8Dataset`, collated by
    :class:`~selfsup.transforms.device_views.SourceCollate`), and
    :class:`~selfsup.embedding.MethodEmbedding` makes the same views on the training device.
    Otherwise (``"workers"``, or a step without a batched form: logged once) the loader's
    workers augment each image. On the device path ``loader.cache_dir`` keeps the uint8
    sources in a :class:`~selfsup.data.uint8_cache.Uint8Cache`, completed and published after
    the first full epoch (:class:`~selfsup.data.uint8.Uint8CacheLoader`), so later epochs and
    runs do not decode.
    """
    from selfsup.data.collate import ImageCollateFunction

    transform = None
    collate_fn: Any = None
    if method == "simclr":
        collate_fn = ImageCollateFunction(**collate.model_dump())
    else:
        from selfsup.methods import get_method

        others = [key for key in changed_keys(collate) if key != "input_size"]
        if others:
            raise ConfigError(
                f"collate.{others[0]} sets SimCLR's augmentations; method={method} trains with "
                "its paper's augmentations (only collate.input_size applies): remove the key or "
                "use method=simclr"
            )
        transform = get_method(method).build_transform(collate.input_size)
    dataset: Any = None
    loader_class: type[DataLoader[Any]] = DataLoader
    if loader.augment == "device":
        from selfsup.data.uint8 import Uint8CacheLoader, Uint8Dataset
        from selfsup.data.uint8_cache import Uint8Cache
        from selfsup.transforms.device_views import SourceCollate, device_views_for

        # SimCLR's collate function draws two views with its one view transform.
        views = transform if collate_fn is None else [collate_fn.transform] * 2
        device_views, reason = device_views_for(views)
        if device_views is not None:
            base = _dataset(input_dir, transform=None, filenames=filenames, samples=samples)
            size = device_views.source_size
            cache = None
            if loader.cache_dir:
                cache = Uint8Cache.for_dataset(loader.cache_dir, base, size)
            dataset = Uint8Dataset(base, size, cache=cache)
            collate_fn = SourceCollate(device_views)
            if cache is not None:
                loader_class = Uint8CacheLoader  # completes the cache after the first epoch
        else:
            _log_per_image_augmentation(method, str(reason))
    if dataset is None:
        dataset = _dataset(input_dir, transform=transform, filenames=filenames, samples=samples)
    batch_size = loader.batch_size
    if len(dataset) < batch_size:
        # With drop_last a too-large batch would silently train on nothing.
        warnings.warn(
            f"loader.batch_size={batch_size} is larger than the {len(dataset)} samples of "
            f"{input_dir!r}: using batch_size={len(dataset)}",
            stacklevel=2,
        )
        batch_size = len(dataset)
    if batch_size < 2:
        raise DataError(
            f"self-supervised training needs at least 2 samples per batch; {input_dir!r} "
            f"has {len(dataset)} usable sample(s)"
        )
    return loader_class(
        dataset,
        batch_size=batch_size,
        shuffle=loader.shuffle,
        num_workers=_num_workers(loader),
        drop_last=loader.drop_last,
        collate_fn=collate_fn,
        persistent_workers=_num_workers(loader) > 0,
        # Pinned source batches copy to a GPU asynchronously; nothing to pin without one.
        pin_memory=loader.augment == "device" and torch.cuda.is_available(),
    )


@functools.cache
def _log_per_image_augmentation(method: str, reason: str) -> None:
    """One info line per method and reason (the recipe's timing builds a loader too)."""
    logger.info(
        "method=%s augments each image in the loader workers, not on the device: %s",
        method,
        reason,
    )


def build_embed_loader(
    input_dir: str,
    loader: LoaderConfig,
    input_size: int,
    filenames: Sequence[str] | None = None,
    *,
    samples: ManifestDataset | None = None,
    normalize: tuple[Sequence[float], Sequence[float]] | None = None,
    decode: Literal["uint8", "pil"] = "pil",
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """An unshuffled loader of resized images for embedding, in ``filenames`` order (or
    ``samples`` order: the samples a curation check recorded).

    ``decode="pil"``: each image through PIL ``Resize``, ``ToTensor`` and ``Normalize`` with
    ``normalize``, the ``(mean, std)`` per channel (default ImageNet's, what training uses);
    the dataset keeps that transform (object crops reuse it). ``decode="uint8"`` (what
    :func:`embed` uses by default, ``embedding.decode``): a
    :class:`~selfsup.data.uint8.Uint8Dataset` of ``(3, S, S)`` uint8 images decoded by
    torchvision and resized once, read through the ``loader.cache_dir`` cache when set, to
    be normalised on the device (``SelfSupervisedEmbedding.embed(normalize=...)``).
    ``pin_memory`` pins the batches for asynchronous copies to a GPU.
    """
    if decode == "uint8":
        from selfsup.data.uint8 import Uint8Dataset
        from selfsup.data.uint8_cache import Uint8Cache

        base = _dataset(input_dir, transform=None, filenames=filenames, samples=samples)
        cache = (
            Uint8Cache.for_dataset(loader.cache_dir, base, input_size) if loader.cache_dir else None
        )
        return DataLoader(
            Uint8Dataset(base, input_size, cache=cache),
            batch_size=loader.batch_size,
            shuffle=False,
            num_workers=_num_workers(loader),
            drop_last=False,
            pin_memory=pin_memory,
        )
    import torchvision.transforms as T

    from selfsup.transforms.utils import IMAGENET_NORMALIZE

    mean, std = normalize or (IMAGENET_NORMALIZE["mean"], IMAGENET_NORMALIZE["std"])
    transform = T.Compose(
        [
            T.Resize((input_size, input_size)),
            T.ToTensor(),
            T.Normalize(mean=list(mean), std=list(std)),
        ]
    )
    dataset = _dataset(input_dir, transform=transform, filenames=filenames, samples=samples)
    return DataLoader(
        dataset,
        batch_size=loader.batch_size,
        shuffle=False,
        num_workers=_num_workers(loader),
        drop_last=False,
        pin_memory=pin_memory,
    )


def _embedding_model(
    model: MethodModel,
    cfg: LightlyConfig,
    loader: DataLoader[Any],
    criterion: Mapping[str, Any] | None = None,
) -> MethodEmbedding:
    from selfsup.methods import get_method

    # The method's optimiser; optimizer.* values changed from lightly's defaults win.
    chosen = changed_keys(cfg.optimizer)
    optimizer = get_method(cfg.method).optimizer.build(
        model,
        lr=cfg.optimizer.lr if "lr" in chosen else None,
        weight_decay=cfg.optimizer.weight_decay if "weight_decay" in chosen else None,
    )
    embedding = MethodEmbedding(model, optimizer, loader)
    embedding.checkpoint_metadata = {
        "model": cfg.model.model_dump(mode="json"),
        "method": cfg.method,
        "criterion": dict(criterion if criterion is not None else method_criterion(cfg)),
        # What rebuilds the model without its frozen parts (a distillation teacher's size).
        "method_kwargs": model.rebuild_kwargs(),
        # The recipe may choose the input size: embedding uses the one trained with.
        "input_size": cfg.collate.input_size,
        # And the epochs: the report's CO2 estimate counts the epochs this training ran
        # for, not lightly's default trainer.max_epochs (:func:`trained_epochs`).
        "max_epochs": cfg.trainer.max_epochs,
        "version": 1,
    }
    return embedding


def embed_input_size(cfg: LightlyConfig, checkpoint: str | os.PathLike[str]) -> int:
    """The side to embed at: ``collate.input_size`` when the user set it, else the one the
    checkpoint was trained at (the training recipe may have chosen it), else the default."""
    if "input_size" in changed_keys(cfg.collate):
        return cfg.collate.input_size
    _, metadata = read_checkpoint(checkpoint)
    stored = metadata.get("input_size")
    return stored if isinstance(stored, int) and stored >= 1 else cfg.collate.input_size


def trained_epochs(checkpoint: str | os.PathLike[str]) -> int | None:
    """The epochs the training that wrote ``checkpoint`` was set to run (the user's
    ``trainer.max_epochs`` or the recipe's choice); ``None`` for a checkpoint that does not
    record them (written by another tool, or before selfsup recorded them)."""
    _, metadata = read_checkpoint(checkpoint)
    epochs = metadata.get("max_epochs")
    return epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None


def _typical_side(dataset: Any, n_probe: int = 16) -> float | None:
    """Median ``sqrt(width * height)`` of up to ``n_probe`` evenly spaced samples of an
    untransformed dataset (PIL images); ``None`` when none could be read."""
    from PIL import Image

    n = len(dataset)
    sides: list[float] = []
    for i in sorted({int(x) for x in np.linspace(0, n - 1, min(n, n_probe))}):
        try:
            image = dataset[i][0]
        except (OSError, DataError):
            # An unreadable sample is skipped by training too; it says nothing about sizes.
            continue
        if isinstance(image, Image.Image):
            sides.append(float(np.sqrt(image.width * image.height)))
    return float(np.median(sides)) if sides else None


def _seconds_per_sample(
    cfg: LightlyConfig,
    filenames: Sequence[str] | None,
    samples: ManifestDataset | None,
    device: str,
) -> float | None:
    """Measured seconds one training sample costs with ``cfg`` (augmentation, forward and
    backward of every view): a throw-away model trains one batch to warm up, then one timed
    batch, loaded in-process (the real loader's workers only make training faster), in the
    arithmetic training will use (``trainer.precision``: bf16 autocast where auto picks it,
    about 2x faster than float32 on a CPU with bf16 instructions)."""
    import time

    from selfsup.embedding._method import loader_device_views, train_views
    from selfsup.embedding._trainer import autocast_or_float32, training_autocast_dtype
    from selfsup.methods._base import TrainProgress

    # A batch of up to 16 costs about as much per sample as a full one (a little more: a
    # conservative estimate) and keeps the timing to a second or two on a CPU.
    loader_cfg = cfg.loader.model_copy(
        # No cache_dir: a timing reads a batch or two and would leave a build folder behind.
        update={"num_workers": 0, "batch_size": min(cfg.loader.batch_size, 16), "cache_dir": ""}
    )
    model = build_model(
        cfg.model, cfg.method, method_criterion(cfg), method_kwargs=method_model_kwargs(cfg)
    ).to(device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the real loader repeats any warning
        loader = build_train_loader(
            cfg.input_dir, loader_cfg, cfg.collate, filenames, cfg.method, samples=samples
        )
    batches = iter(loader)
    dtype = training_autocast_dtype(cfg.trainer.precision, on_cpu=device == "cpu")
    seconds = None
    for attempt in range(2):
        start = time.perf_counter()
        try:
            batch = next(batches)
        except StopIteration:
            break
        views = train_views(batch, loader_device_views(loader), device)
        with autocast_or_float32(device, dtype):
            loss = model.training_loss(views, TrainProgress())
        torch.autograd.backward(loss)
        model.zero_grad(set_to_none=True)
        if attempt == 1 or seconds is None:
            seconds = (time.perf_counter() - start) / len(views[0])
    return seconds


def with_recipe(
    cfg: LightlyConfig,
    filenames: Sequence[str] | None = None,
    *,
    samples: ManifestDataset | None = None,
) -> LightlyConfig:
    """``cfg`` with the training keys the user did not set chosen for the data and the
    machine (:func:`selfsup.config.recipe.choose_recipe`); prints the recipe and the
    estimated time to stderr before training.

    Keys are "set" when the user gave them or they differ from lightly's defaults
    (:func:`user_set_keys`);
    ``model.name``/``model.width`` are also kept when training starts from a checkpoint,
    whose weights fit only its own model.
    """
    import sys

    from selfsup.config.recipe import RECIPE_KEYS, choose_recipe
    from selfsup.utils.cpus import available_cpus

    probe = _dataset(cfg.input_dir, None, filenames, samples)
    if len(probe) < 2:
        return cfg  # the train loader says what is wrong with too few samples
    sections = {key.split(".")[0] for key in RECIPE_KEYS}
    user_set = {
        f"{section}.{key}" for section in sections for key in user_set_keys(getattr(cfg, section))
    } & set(RECIPE_KEYS)
    if cfg.checkpoint or cfg.model.weights:
        user_set |= {"model.name", "model.width"}
    current = {
        key: getattr(getattr(cfg, key.split(".")[0]), key.split(".")[1]) for key in RECIPE_KEYS
    }
    device = "cuda" if cfg.trainer.gpus > 0 and torch.cuda.is_available() else "cpu"
    inputs: dict[str, Any] = {
        "n_samples": len(probe),
        "image_side": _typical_side(probe),
        "device": device,
        "cpu_count": available_cpus(),
        "method": cfg.method,
        "user_set": frozenset(user_set),
        "current": current,
    }

    def applied(values: Mapping[str, Any]) -> LightlyConfig:
        out = cfg.model_copy(deep=True)
        for key, value in values.items():
            section, name = key.split(".")
            setattr(getattr(out, section), name, value)
        return out

    # Under DDP every process runs this: a timing would differ between them and so would
    # their epochs, which hangs training. Distributed runs get the untimed recipe; without
    # trainer.devices, trainer.gpus is the number of processes (lightning_trainer_kwargs).
    trainer = cfg.trainer
    processes = trainer.devices if trainer.devices is not None else trainer.gpus
    distributed = trainer.strategy != "auto" or trainer.num_nodes > 1 or processes > 1
    seconds = None
    if not distributed:
        timing = applied(choose_recipe(**inputs).values)
        seconds = _seconds_per_sample(timing, filenames, samples, device)
    recipe = choose_recipe(**inputs, seconds_per_sample=seconds)
    print(
        recipe.describe({key: current[key] for key in RECIPE_KEYS if key in user_set}),
        file=sys.stderr,
        flush=True,
    )
    return applied(recipe.values)


def train(
    cfg: LightlyConfig,
    filenames: Sequence[str] | None = None,
    *,
    samples: ManifestDataset | None = None,
    can_relaunch: bool = False,
) -> str:
    """Train a self-supervised model as ``cfg`` says and return the best checkpoint's path.

    Checkpoints go to ``cfg.output_dir`` (default ``./selfsup_outputs/<date>/<time>``). When
    ``cfg.checkpoint`` is set, training starts from its weights. ``samples`` trains on the
    samples a curation check recorded instead of the folder ``cfg.input_dir``.
    ``can_relaunch``: the caller may be started again once per process, as Lightning's
    ``trainer.strategy=ddp`` does on one machine (``selfsup train`` and scripts can; a
    curation run cannot, see :func:`~selfsup.embedding._trainer.distributed_trainer_kwargs`).
    """
    import pytorch_lightning as pl

    # The recipe's probe and timed step and the training loader check the folder once.
    with folder_checked_once():
        if cfg.recipe == "auto":
            cfg = with_recipe(cfg, filenames, samples=samples)
        criterion = method_criterion(cfg)  # after the recipe, which may choose the temperature
        # Seeded after the recipe's timed step, so that training does not depend on it.
        pl.seed_everything(cfg.seed, workers=True, verbose=False)
        model = build_model(
            cfg.model, cfg.method, criterion, method_kwargs=method_model_kwargs(cfg)
        )
        if cfg.checkpoint:
            load_weights(model, cfg.checkpoint)
        # In place, after the weights: checkpoints keep plain keys (selfsup.models.compile).
        compile_method_model(model, cfg.model.compile, what=f"the {cfg.method} model")
        loader = build_train_loader(
            cfg.input_dir, cfg.loader, cfg.collate, filenames, cfg.method, samples=samples
        )
    embedding = _embedding_model(model, cfg, loader, criterion)
    output_dir = Path(cfg.output_dir) if cfg.output_dir else default_output_dir()
    trainer_extra: dict[str, Any] = {}
    if cfg.trainer.max_time:
        trainer_extra["max_time"] = cfg.trainer.max_time
    return embedding.train_embedding(
        max_epochs=cfg.trainer.max_epochs,
        precision=cfg.trainer.precision,
        checkpoint_dir=output_dir,
        save_last=cfg.checkpoint_callback.save_last,
        save_top_k=cfg.checkpoint_callback.save_top_k,
        **distributed_trainer_kwargs(
            cfg.trainer.gpus,
            cfg.trainer.devices,
            cfg.trainer.num_nodes,
            cfg.trainer.strategy,
            can_relaunch=can_relaunch,
        ),
        # Lightning stops at the budget and still writes the checkpoints (save_last).
        **trainer_extra,
    )


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint file: ``(model state dict, selfsup metadata)``.

    Accepts Lightning checkpoints written by selfsup (keys ``model.*``), lightly-style ones,
    and plain ``state_dict`` files. Errors name the file.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"checkpoint {str(p)!r} does not exist")
    try:
        # weights_only: a checkpoint from elsewhere must never be able to run code on load.
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure means the file is unusable as given
        raise DataError(f"checkpoint {str(p)!r} could not be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise DataError(
            f"checkpoint {str(p)!r} does not hold a state dict (got {type(raw).__name__})"
        )
    state = raw.get("state_dict", raw)
    metadata = raw.get(CHECKPOINT_METADATA_KEY, {})
    if any(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return state, metadata if isinstance(metadata, dict) else {}


def load_weights(
    model: nn.Module,
    checkpoint: str | os.PathLike[str],
    state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Load a checkpoint's weights into ``model``; mismatches raise an error naming the file.

    ``state`` is the checkpoint's state dict when the caller has already read the file.
    """
    if state is None:
        state, _ = read_checkpoint(checkpoint)
    # The loss's memory bank is not part of the model; anything else missing is a mismatch.
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(
            f"checkpoint {str(checkpoint)!r} does not fit the configured model: {exc}. "
            "Use the model.* settings the checkpoint was trained with."
        ) from exc


def model_from_checkpoint(
    checkpoint: str | os.PathLike[str], fallback: ModelConfig
) -> tuple[MethodModel, ModelConfig]:
    """Rebuild the model stored in ``checkpoint`` (its own model config and method win over
    ``fallback``; checkpoints written before methods were recorded are SimCLR's)."""
    # Read once: a Lightning checkpoint also holds optimizer state and can be large.
    state, metadata = read_checkpoint(checkpoint)
    model_cfg = fallback
    stored = metadata.get("model")
    if isinstance(stored, dict):
        # model.compile is how this process runs the model, not part of what was trained.
        model_cfg = ModelConfig.model_validate({**stored, "compile": fallback.compile})
        configured = fallback.model_copy(update={"compile": False}) != ModelConfig()
        if model_cfg != fallback and configured:
            warnings.warn(
                f"checkpoint {str(checkpoint)!r} was trained with model={stored}; using it "
                f"instead of the configured {fallback.model_dump()}",
                stacklevel=2,
            )
    method = str(metadata.get("method", "simclr"))
    criterion = metadata.get("criterion")
    rebuild = metadata.get("method_kwargs")
    # The checkpoint holds the trained weights; model.weights were only where training began.
    model = build_model(
        model_cfg,
        method,
        criterion if isinstance(criterion, dict) else None,
        pretrained=False,
        method_kwargs=rebuild if isinstance(rebuild, dict) else None,
    )
    load_weights(model, checkpoint, state)
    return model, model_cfg


Normalization = tuple[Sequence[float], Sequence[float]]
"""Per-channel ``(mean, std)`` of the images a model was trained on."""


def embedding_model(
    cfg: LightlyConfig, checkpoint: str | os.PathLike[str] | None = None
) -> tuple[MethodModel | PretrainedModel, int, Normalization | None]:
    """The model to embed with, the image side to embed at and the normalisation
    (``None``: ImageNet's, the one training uses).

    From ``checkpoint`` or ``cfg.checkpoint`` when given (a trained model: its backbone and
    ``num_ftrs`` projection); otherwise from ``model.weights`` without training: the
    pretrained backbone alone (:class:`PretrainedModel`), whose embeddings are its
    ``num_features`` pooled features. Errors when neither is given.
    """
    ckpt = checkpoint or cfg.checkpoint
    if ckpt:
        model, _ = model_from_checkpoint(ckpt, cfg.model)
        return model, embed_input_size(cfg, ckpt), None
    if not cfg.model.weights:
        raise ConfigError(
            "checkpoint is required to embed: pass checkpoint=<path to a .ckpt> (selfsup "
            "train writes one), or model.weights=<pretrained weights> to embed without "
            "training (docs/pretrained.md)"
        )
    backbone = build_backbone(cfg.model)
    input_size, normalize = _pretrained_input(cfg, backbone)
    logger.warning(
        "embedding with the pretrained backbone %s (model.weights=%s) without training: the "
        "embeddings are its %d pooled features (no projection to model.num_ftrs=%d), at "
        "%dx%d pixels",
        backbone.name,
        cfg.model.weights,
        backbone.num_features,
        cfg.model.num_ftrs,
        input_size,
        input_size,
    )
    return PretrainedModel(backbone), input_size, normalize


def _pretrained_input(cfg: LightlyConfig, backbone: Backbone) -> tuple[int, Normalization | None]:
    """Image side and normalisation for pretrained weights without training.

    The side: the one a ViT was built for when it accepts no other (timm without
    ``dynamic_img_size``, torchvision); else ``collate.input_size`` when the user set it;
    else the zoo entry's; else a timm model's ``pretrained_cfg`` size; else
    ``collate.input_size``. The normalisation: the zoo entry's mean and std, else ImageNet's.
    """
    side: int | None = None
    normalize: Normalization | None = None
    if cfg.model.weights.startswith("zoo:"):
        from selfsup.models.zoo import resolve_entry

        entry = resolve_entry(cfg.model.weights[len("zoo:") :])
        side, normalize = entry.input_size, (entry.mean, entry.std)
    user_set = "input_size" in changed_keys(cfg.collate)
    fixed = _fixed_side(backbone.features)
    if fixed is not None:
        if user_set and cfg.collate.input_size != fixed:
            raise ConfigError(
                f"backbone {backbone.name} takes only {fixed}x{fixed} images, but "
                f"collate.input_size={cfg.collate.input_size}: remove the key or set it to "
                f"{fixed} (or build the model for another size, e.g. a timm img_size)"
            )
        return fixed, normalize
    if user_set:
        return cfg.collate.input_size, normalize
    if side is None:
        pretrained_cfg = getattr(backbone.features, "pretrained_cfg", None)
        size = pretrained_cfg.get("input_size") if isinstance(pretrained_cfg, dict) else None
        if isinstance(size, tuple | list) and size:
            side = int(size[-1])
    return (side or cfg.collate.input_size), normalize


def _fixed_side(model: nn.Module) -> int | None:
    """The only image side ``model`` accepts, for ViTs that check it; None when any works."""
    patch = getattr(model, "patch_embed", None)
    if patch is not None:  # timm: a fixed img_size unless built with dynamic_img_size
        img_size = getattr(patch, "img_size", None)
        if getattr(patch, "dynamic_img_size", False) or not getattr(patch, "strict_img_size", True):
            return None
        return int(img_size[-1]) if isinstance(img_size, tuple | list) and img_size else None
    image_size = getattr(model, "image_size", None)  # torchvision's VisionTransformer
    if isinstance(image_size, int) and type(model).__name__ == "VisionTransformer":
        return image_size
    return None


def embed(
    cfg: LightlyConfig,
    checkpoint: str | os.PathLike[str] | None = None,
    filenames: Sequence[str] | None = None,
    *,
    samples: ManifestDataset | None = None,
    parquet_dir: str | os.PathLike[str] | None = None,
) -> Embeddings:
    """Embed ``cfg.input_dir`` (its ``filenames``, or the checked ``samples`` of a curation
    run) with ``checkpoint`` or ``cfg.checkpoint``, or without training with the
    pretrained backbone of ``model.weights`` (:func:`embedding_model`).

    With ``embedding.engine=ray`` the samples are embedded by Ray Data actors
    (:mod:`selfsup.embedding.ray_engine`), which also write Parquet shards to ``parquet_dir``
    (default ``<output_dir>/embeddings.parquet``; none without ``output_dir``); the returned
    rows are the same.
    """
    model, input_size, normalize = embedding_model(cfg, checkpoint)
    device = "cuda" if cfg.trainer.gpus > 0 and torch.cuda.is_available() else "cpu"
    loader = build_embed_loader(
        cfg.input_dir,
        cfg.loader,
        input_size,
        filenames,
        samples=samples,
        normalize=normalize,
        decode=cfg.embedding.decode,
        pin_memory=device == "cuda" and cfg.embedding.engine == "local",
    )
    if cfg.embedding.engine == "ray":
        if cfg.model.compile:
            logger.warning("model.compile=true: Ray actors embed uncompiled (engine=local only)")
        rows = _embed_on_ray(cfg, model, loader.dataset, device, parquet_dir, normalize)
        finalize_cache = getattr(loader.dataset, "finalize_cache", None)
        if callable(finalize_cache):
            finalize_cache()  # the actors filled the loader.cache_dir cache: publish it
        return rows
    # Local engine only (Ray actors receive the backbone pickled, which drops compilation).
    # A smaller last batch is padded to the first one's size: no second compilation.
    compile_method_model(model, cfg.model.compile, what="the embedding model", pad_batches=True)
    embedding = SelfSupervisedEmbedding(
        model, nn.Identity(), torch.optim.SGD(model.parameters(), lr=0.0), loader
    )
    model.to(device)
    return embedding.embed(
        loader, device=device, precision=cfg.embedding.precision, normalize=normalize
    )


def _embed_on_ray(
    cfg: LightlyConfig,
    model: MethodModel | PretrainedModel,
    dataset: Any,
    device: str,
    parquet_dir: str | os.PathLike[str] | None,
    normalize: Normalization | None = None,
) -> Embeddings:
    """:func:`embed` on Ray: the same backbone, dataset (with its transform, or uint8
    images normalised with ``normalize``) and precision as the local path, so the same
    rows."""
    import tempfile

    from selfsup.embedding.ray_engine import RayOptions, embed_with_ray

    options = RayOptions(
        address=cfg.embedding.ray_address,
        num_actors=cfg.embedding.num_actors,
        shard_size=cfg.embedding.shard_size,
        batch_size=cfg.loader.batch_size,
        use_gpu=device == "cuda",
        precision=str(cfg.embedding.precision),
        normalize=normalize,
    )
    if parquet_dir is None and cfg.output_dir:
        parquet_dir = Path(cfg.output_dir) / "embeddings.parquet"
    if parquet_dir is not None:
        return embed_with_ray(model.backbone, dataset, parquet_dir, options)
    # Nowhere to keep the shards (a datapool's partial embedding, a Python call without
    # output_dir): they only carry the rows back.
    with tempfile.TemporaryDirectory(prefix="selfsup-ray-") as tmp:
        return embed_with_ray(model.backbone, dataset, Path(tmp) / "embeddings.parquet", options)


def train_embedding_model(config_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> str:
    """Train a self-supervised model on ``input_dir`` and return the checkpoint's path.

    Example: ``checkpoint = train_embedding_model(input_dir='./cats', trainer={'max_epochs': 10})``.
    Keyword arguments are lightly_config keys (nested sections as dicts).
    """
    return train(resolve_config(config_path, **kwargs), can_relaunch=True)


def embed_images(
    checkpoint: str | os.PathLike[str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> Embeddings:
    """Embed the images of ``input_dir`` with ``checkpoint``, or without training with the
    pretrained backbone of ``model={'weights': ...}``.

    Returns ``(embeddings (N, D) float32, labels (N,) int64, filenames)``: D is
    ``model.num_ftrs`` for a trained checkpoint, the backbone's feature size for pretrained
    weights used without training.
    """
    return embed(resolve_config(config_path, **kwargs), checkpoint=checkpoint)


def train_model_and_embed_images(
    config_path: str | os.PathLike[str] | None = None, **kwargs: Any
) -> Embeddings:
    """Train on ``input_dir`` and embed it with the trained model."""
    cfg = resolve_config(config_path, **kwargs)
    return embed(cfg, checkpoint=train(cfg))
