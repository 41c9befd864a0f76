"""Training defaults that fit the data and the machine: the recipe chooser.

lightly's CLI defaults (a full-width ResNet-18, 100 epochs, SGD at lr 1.0 with batches of 16)
take hours on a laptop and collapse on a small folder (issue 11: 15 minutes and nearly
identical embeddings for 200 Fashion-MNIST images on two cores). So when a key is left at its
default, ``selfsup train``, ``selfsup run`` and ``train_embedding_model`` let
:func:`choose_recipe` pick it from what is known before training:

* the number of samples and their typical side in pixels (a few images are opened);
* the device (CPU or a CUDA GPU) and the CPU cores available;
* the measured seconds one training sample costs with the chosen model (one timed step).

Keys the user set keep their value (:func:`selfsup.core.user_set_keys` decides what "set"
means: named on the command line, in a YAML file or a Python dict, even with the default's
value, or different from the default; a scheduled run's config, stored resolved by the
server, keeps only its changed keys as set); ``recipe=lightly`` turns the chooser off and
keeps every default of lightly's CLI. The chooser is a pure function of those inputs, so its
decisions are tested without training anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "CPU_BUDGET_S",
    "GPU_BUDGET_S",
    "RECIPE_KEYS",
    "Recipe",
    "choose_recipe",
    "format_duration",
    "max_time_seconds",
    "minutes_to_max_time",
    "sgd_lr",
]

Device = Literal["cpu", "cuda"]

#: The keys the chooser may set, as ``section.key``. model.name and model.width are one
#: decision: setting either (or a checkpoint or weights to start from) keeps both.
RECIPE_KEYS: Final = (
    "model.name",
    "model.width",
    "collate.input_size",
    "collate.min_scale",
    "loader.batch_size",
    "optimizer.lr",
    "criterion.temperature",
    "trainer.max_epochs",
    "trainer.max_time",
)

#: Default time budget of training on a CPU: 10 minutes, what a user waits for a first result
#: (and the "10 CPU-minutes" of the issue's benchmark). trainer.max_time stops training then.
CPU_BUDGET_S: Final = 600.0
#: Default time budget on a GPU: 30 minutes buys a full-width ResNet-18 hundreds of epochs of
#: a few thousand images.
GPU_BUDGET_S: Final = 1800.0
#: At most this many epochs: a small folder would otherwise fill the whole budget (thousands
#: of epochs) for nothing. benchmarks/defaults.py, 200 Fashion-MNIST images: 30, 84 and 96
#: epochs gave the same kNN accuracy within a point (59.2, 59.4, 58.6 %), so 100 epochs cost
#: 200 images about 3-6 minutes on two CPU cores instead of the full 10; past ~200 epochs
#: SimCLR on a small set overfits its augmentations (Chen et al. 2020, B.9).
MAX_EPOCHS: Final = 100
#: Fewest optimisation steps worth a run: below this a small folder gets more epochs.
MIN_STEPS: Final = 50

#: The SGD learning rate per 256 samples of a batch (SimCLR, Chen et al. 2020, appendix B.1:
#: "LearningRate = 0.3 x BatchSize/256"). lightly's lr 1.0 at batch 16 is 16 times that and
#: collapses small runs.
LR_PER_256: Final = 0.3


#: Smallest crop (fraction of the area) of SimCLR's random resized crops for images of at
#: most :data:`SMALL_SIDE` pixels, instead of lightly's 0.15: a 15 % crop of a 28 px image is
#: 11 px wide, too little of the object to match to the other view. benchmarks/defaults.py
#: (200 Fashion-MNIST images, 30 epochs, 3 seeds each, kNN on 2,000 test images):
#: 0.4 gave 55.9 / 54.1 / 57.1 % against 47.6 / 52.6 / 53.5 % for 0.15; 0.6 gave
#: 57.1 / 51.5 / 55.4 %.
SMALL_IMAGE_MIN_SCALE: Final = 0.4
#: Images of at most this side (pixels) count as small: no upscaling, larger crops.
SMALL_SIDE: Final = 40

#: Largest batch for small images on a CPU. A step costs about the same per sample at any
#: batch size on a CPU, so smaller batches buy more optimisation steps in the same time,
#: which is what a few hundred or thousand images lack. benchmarks/defaults.py, 1000
#: Fashion-MNIST images (raw pixels 71.1 % kNN): batch 32 gave 72.6 and 73.9 % (ResNet-9, two
#: subsets) and 72.3 / 71.9 / 72.5 % (stride-2 stem), against 70.8 % for batch 128 (stride-2
#: stem, 252 steps instead of ~930) and 65.6 % for the previous defaults (benchmarks/README.md).
SMALL_IMAGE_CPU_BATCH: Final = 32


#: NT-Xent temperature: 0.1 beat lightly's 0.5 for SimCLR in short runs (Chen et al. 2020,
#: table 5; benchmarks/README.md measured +0.4 kNN points over 0.2 on Fashion-MNIST).
SIMCLR_TEMPERATURE: Final = 0.1


def sgd_lr(batch_size: int) -> float:
    """SimCLR's linear scaling rule: ``0.3 * batch_size / 256``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return LR_PER_256 * batch_size / 256


def max_time_seconds(value: str) -> float:
    """Seconds of a Lightning ``max_time`` string ``"DD:HH:MM:SS"``."""
    parts = value.split(":")
    if len(parts) != 4 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"max_time must be 'DD:HH:MM:SS' or a number of minutes, got {value!r}")
    days, hours, minutes, seconds = (int(p) for p in parts)
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def minutes_to_max_time(minutes: float) -> str:
    """``minutes`` (rounded up to whole seconds) as Lightning's ``"DD:HH:MM:SS"``."""
    if not math.isfinite(minutes) or minutes <= 0:
        raise ValueError(f"max_time must be a positive number of minutes, got {minutes}")
    total = max(1, math.ceil(minutes * 60))
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days:02d}:{hours:02d}:{minutes:02d}:{secs:02d}"


def format_duration(seconds: float) -> str:
    """``"2 h 05 min"``, ``"7 min 30 s"`` or ``"12 s"``: an estimate a person reads."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {(s % 3600) // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


@dataclass(frozen=True)
class Recipe:
    """What the chooser decided, and why.

    Attributes:
        values: ``"section.key" -> value`` for every key the chooser set (those in
            :data:`RECIPE_KEYS` the user did not set).
        reasons: ``"section.key" -> why``, for the printed recipe.
        estimated_s: Estimated training time in seconds, or ``None`` when no step was
            timed.
    """

    values: dict[str, Any] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    estimated_s: float | None = None

    def describe(self, kept: dict[str, Any]) -> str:
        """The recipe as printed before training: chosen keys with their reasons, then the
        keys the user set (``kept``), then the estimate."""
        lines = ["selfsup training recipe (keys you set are kept; recipe=lightly turns this off):"]
        for key, value in self.values.items():
            lines.append(f"  {key}={value}  ({self.reasons.get(key, 'chosen')})")
        for key, value in kept.items():
            lines.append(f"  {key}={value}  (set by you)")
        if self.estimated_s is not None:
            lines.append(f"  estimated training time: {format_duration(self.estimated_s)}")
        return "\n".join(lines)


def _pow2_floor(x: float) -> int:
    return 1 << max(0, math.floor(math.log2(max(1.0, x))))


def choose_recipe(
    *,
    n_samples: int,
    image_side: float | None,
    device: Device,
    cpu_count: int,
    method: str,
    user_set: frozenset[str] | set[str],
    current: dict[str, Any],
    seconds_per_sample: float | None = None,
) -> Recipe:
    """Choose the training keys the user did not set, from the data and the machine.

    Decisions (each also printed with its reason):

    * ``collate.input_size``: 32 for images of at most :data:`SMALL_SIDE` px (Fashion-MNIST,
      CIFAR), else 64 on a CPU; on a GPU 128 for images of 112 px and more. Upscaling small
      images only costs time; lightly's ResNets have a CIFAR-style stem (3x3 convolution, no
      max-pool), so 32 px keeps enough resolution.
    * ``model.name``/``model.width``: ``resnet-18`` at full width on a GPU; on a CPU the
      lightly ``resnet-9`` at width 0.25 (0.5 with 8 or more cores), an estimated 30 (8)
      times fewer multiply-adds per image than the full ResNet-18 (width squared times half
      the residual blocks; not timed). Kept when the user set either key. (Its stride-2 stem
      variant ``resnet-9-s2`` was tried for small images: as accurate, no faster.)
    * ``loader.batch_size``: the largest power of two up to a quarter of the samples (so an
      epoch has 4 or more steps), at least 8, at most 128 on a CPU
      (:data:`SMALL_IMAGE_CPU_BATCH` for small images: more steps in the same time, which
      brought the defaults above raw pixels on 1000 Fashion-MNIST images) and 256 on a GPU.
    * ``optimizer.lr`` (SimCLR only; other methods keep their own optimiser defaults):
      :func:`sgd_lr` of the batch size, the user's batch size when they set it; and
      ``criterion.temperature`` :data:`SIMCLR_TEMPERATURE`; for small images (at most
      :data:`SMALL_SIDE` px) ``collate.min_scale`` :data:`SMALL_IMAGE_MIN_SCALE`. The other
      augmentations keep lightly's values: on grayscale images the saturation, hue and
      random-grayscale steps change nothing, and removing the blur did not help on 28 px
      images (one run each: 54.6 % against 59.2 % kNN, benchmarks/README.md).
    * ``trainer.max_time``: :data:`CPU_BUDGET_S` or :data:`GPU_BUDGET_S`, unless the user
      set ``trainer.max_epochs`` (their epochs then decide).
    * ``trainer.max_epochs``: what fits the budget at ``seconds_per_sample`` (at least 1,
      at most :data:`MAX_EPOCHS`); without a timing, the epochs giving
      :data:`MIN_STEPS` steps, at least 10 and at most :data:`MAX_EPOCHS`.

    Args:
        n_samples: Training samples (>= 2).
        image_side: Typical side of the images in pixels (``sqrt(w*h)``), ``None`` unknown.
        device: ``"cuda"`` when training runs on a GPU, else ``"cpu"``.
        cpu_count: CPU cores available to this process.
        method: The registered method's name.
        user_set: ``"section.key"`` of every key the user set.
        current: ``"section.key" -> value`` of the config now (the user's values).
        seconds_per_sample: Measured training cost of one sample with the chosen model,
            input size and batch size; ``None`` when not measured.

    Returns:
        The :class:`Recipe`; its ``values`` name only keys the user did not set.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples must be >= 2 to train, got {n_samples}")
    if cpu_count < 1:
        raise ValueError(f"cpu_count must be >= 1, got {cpu_count}")
    values: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    gpu = device == "cuda"

    def choose(key: str, value: Any, reason: str) -> None:
        if key not in user_set:
            values[key] = value
            reasons[key] = reason

    def value_of(key: str) -> Any:
        return values.get(key, current.get(key))

    side = f"images about {image_side:.0f} px" if image_side else "image size unknown"
    small = image_side is not None and image_side <= SMALL_SIDE
    if small:
        choose("collate.input_size", 32, f"{side}: no upscaling")
    elif gpu and image_side is not None and image_side >= 112:
        choose("collate.input_size", 128, f"{side}, GPU")
    else:
        choose("collate.input_size", 64, f"{side}, {'GPU' if gpu else 'CPU'}")

    if not {"model.name", "model.width"} & set(user_set):
        if gpu:
            values["model.name"], values["model.width"] = "resnet-18", 1.0
            reasons["model.name"] = reasons["model.width"] = "GPU: full-width ResNet-18"
        else:
            width = 0.5 if cpu_count >= 8 else 0.25
            # Not resnet-9-s2 for small images: its stride-2 stem has 4x fewer multiply-adds
            # but trained no faster here (a 28 px step is overhead-bound) and was no better
            # (benchmarks/README.md, "A stride-2 stem and batches of 32").
            values["model.name"], values["model.width"] = "resnet-9", width
            reasons["model.name"] = reasons["model.width"] = (
                f"CPU with {cpu_count} core(s): a narrow ResNet-9 trains in minutes"
            )

    cap = 256 if gpu else SMALL_IMAGE_CPU_BATCH if small else 128
    batch = max(2, min(n_samples, max(8, min(cap, _pow2_floor(n_samples / 4)))))
    choose(
        "loader.batch_size",
        batch,
        f"{n_samples} samples: 4+ steps per epoch, at most {cap} on {'a GPU' if gpu else 'CPU'}"
        + (" for small images (more steps in the budget)" if small and not gpu else ""),
    )
    if method == "simclr":
        bs = int(value_of("loader.batch_size"))
        choose("optimizer.lr", sgd_lr(bs), f"0.3 x batch size / 256 (SimCLR), batch {bs}")
        choose("criterion.temperature", SIMCLR_TEMPERATURE, "SimCLR's best for short runs")
        if small:
            # Only SimCLR's views read collate.* augmentation keys (other methods refuse them).
            choose(
                "collate.min_scale",
                SMALL_IMAGE_MIN_SCALE,
                f"{side}: random crops keep at least {SMALL_IMAGE_MIN_SCALE:.0%} of the image",
            )

    budget: float | None = None
    if "trainer.max_time" in user_set:
        budget = max_time_seconds(str(current["trainer.max_time"]))
    elif "trainer.max_epochs" not in user_set:
        budget = GPU_BUDGET_S if gpu else CPU_BUDGET_S
        choose(
            "trainer.max_time",
            minutes_to_max_time(budget / 60),
            f"time budget on {'a GPU' if gpu else 'CPU'}; set trainer.max_time to change it",
        )
    bs = int(value_of("loader.batch_size"))
    steps_per_epoch = max(1, n_samples // bs)
    min_epochs = math.ceil(MIN_STEPS / steps_per_epoch)
    if budget is not None and seconds_per_sample is not None and seconds_per_sample > 0:
        fit = int(budget / (seconds_per_sample * n_samples))
        epochs = max(1, min(MAX_EPOCHS, fit))
        choose(
            "trainer.max_epochs",
            epochs,
            f"fits the {format_duration(budget)} budget at {1000 * seconds_per_sample:.2g} "
            "ms per sample"
            + (f" (capped at {MAX_EPOCHS}: more epochs do not help)" if fit > MAX_EPOCHS else ""),
        )
    else:
        choose(
            "trainer.max_epochs",
            min(MAX_EPOCHS, max(10, min_epochs)),
            f"{steps_per_epoch} step(s) per epoch: {MIN_STEPS}+ steps (no timing measured)",
        )
    estimated: float | None = None
    if seconds_per_sample is not None:
        epochs = int(value_of("trainer.max_epochs"))
        # drop_last: only whole batches train.
        estimated = epochs * steps_per_epoch * bs * seconds_per_sample
        if budget is not None:
            estimated = min(estimated, budget)
    return Recipe(values=values, reasons=reasons, estimated_s=estimated)
