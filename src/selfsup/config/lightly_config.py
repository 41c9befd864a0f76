"""The ``lightly_config``: every key of training and embedding, with the documented defaults.

The seeds (First Steps, "Accessing the lightly parameters from Python") list the sections
``loader``, ``model``, ``trainer``, ``criterion``, ``optimizer`` and ``collate`` with these
defaults; ``selfsup train``, ``selfsup embed``, ``selfsup run`` and scheduled runs all take it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from selfsup.config._base import StrictModel

Probability = float


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class LoaderConfig(StrictModel):
    """Arguments of the torch DataLoader used for training and embedding."""

    batch_size: int = Field(16, ge=1, description="samples per batch")
    shuffle: bool = Field(True, description="shuffle the training set every epoch")
    num_workers: int = Field(
        -1, ge=-1, description="loader processes; -1 uses every core, 0 loads in-process"
    )
    drop_last: bool = Field(True, description="drop the last incomplete training batch")
    augment: Literal["device", "workers"] = Field(
        "device",
        description="where training augments: device (the loader decodes uint8 images resized "
        "once; the method's views are made in batches on the training device) or workers "
        "(each image augmented with PIL in the loader workers); a method with a step that has "
        "no batched form uses workers",
    )
    cache_dir: str = Field(
        "",
        description="folder of a memory-mapped cache of the decoded images at the size the "
        "loader reads (training on the device: the source size; embedding: the input size), "
        "reused across epochs and runs (selfsup.data.uint8_cache; for datasets that fit on disk "
        "at that size); '' = off",
    )


class ModelConfig(StrictModel):
    """The embedding model: a backbone, a num_ftrs-dim embedding and a projection head."""

    name: str = Field(
        "resnet-18",
        description="backbone: resnet-9/18/34/50/101/152, torchvision/<name> or timm/<name>",
    )
    out_dim: int = Field(128, ge=1, description="output size of the projection head")
    num_ftrs: int = Field(32, ge=1, description="size of the embeddings written to embeddings.csv")
    width: float = Field(1.0, gt=0, description="width multiplier of resnet-* backbones")
    weights: str = Field(
        "",
        description="local pretrained weights of the backbone: a state dict, .safetensors, a "
        "model folder, a selfsup checkpoint or zoo:<name> (docs/pretrained.md); '' = random",
    )
    weights_strict: bool = Field(
        True, description="refuse weights whose keys do not all match (false: load the matching)"
    )
    vit_pool: Literal["cls", "mean"] = Field(
        "cls",
        description="embedding of a vit-* backbone: its class token (cls) or the mean of its "
        "patch tokens (mean)",
    )
    compile: bool = Field(
        False,
        description="run the backbone through torch.compile (inductor) for training and "
        "embedding: the first batch of each shape pays a compilation (tens of seconds on a "
        "CPU), later batches may run faster; checkpoints keep their plain keys",
    )


class TrainerConfig(StrictModel):
    """Arguments of the training loop (PyTorch Lightning underneath)."""

    gpus: int = Field(1, ge=0, description="GPUs to use; falls back to the CPU with a warning")
    max_epochs: int = Field(100, ge=1, description="epochs of self-supervised training")
    precision: Literal[
        "auto", 16, 32, 64, "16", "32", "64", "16-mixed", "bf16-mixed", "bf16-true"
    ] = Field(
        "auto",
        description="floating point precision: auto (bf16-mixed where the GPU or CPU computes "
        "bf16 natively, AVX-512 BF16 or AMX on a CPU; else 32), 16, 32, 64, 16-mixed, "
        "bf16-mixed or bf16-true",
    )
    # Lightning's names; checked here without importing Lightning (the server validates
    # scheduled runs' configs torch-free). docs/distributed.md says which to use when.
    strategy: Literal["auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp"] = (
        Field(
            "auto",
            description="Lightning strategy: auto, ddp (one process per device; the command is "
            "started again in each), ddp_spawn, ddp_find_unused_parameters_true or fsdp",
        )
    )
    num_nodes: int = Field(1, ge=1, description="machines taking part in distributed training")
    devices: int | None = Field(
        None,
        ge=1,
        description="processes per machine: GPUs when gpus > 0 and CUDA is there, else CPU "
        "processes (null = as gpus says)",
    )
    max_time: str | None = Field(
        None,
        description="time budget of training, 'DD:HH:MM:SS' or minutes (e.g. 10); training "
        "stops when it is spent. Unset: chosen by the recipe unless max_epochs is set",
    )

    @field_validator("max_time", mode="before")
    @classmethod
    def _max_time(cls, value: object) -> object:
        # Minutes (as a number or a numeric string) become Lightning's "DD:HH:MM:SS".
        from selfsup.config.recipe import max_time_seconds, minutes_to_max_time

        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float) or (isinstance(value, str) and _is_number(value)):
            return minutes_to_max_time(float(value))
        if isinstance(value, str):
            max_time_seconds(value)  # raises ValueError naming the accepted form
        return value


class EmbeddingConfig(StrictModel):
    """Which engine embeds: this process, or Ray Data actors (docs/distributed.md)."""

    engine: Literal["local", "ray"] = Field(
        "local",
        description="local (this process) or ray (Ray Data actors; pip install "
        "'selfsup[distributed]')",
    )
    ray_address: str = Field(
        "",
        description="Ray cluster to join, e.g. ray://head:10001 or auto ('' = start a local one)",
    )
    num_actors: int = Field(
        1, ge=1, description="engine=ray: model replicas embedding in parallel (one per GPU)"
    )
    shard_size: int = Field(
        1000, ge=1, description="engine=ray: samples per task and per Parquet shard"
    )
    precision: Literal["auto", "32", "bf16", "16", 32, 16] = Field(
        "auto",
        description="arithmetic of the embedding forward pass: auto (bf16 on a GPU that has "
        "it, else 16 there; bf16 on a CPU with bf16 instructions, AVX-512 BF16 or AMX, else "
        "32), 32, bf16 or 16; embeddings are float32 either way",
    )
    decode: Literal["uint8", "pil"] = Field(
        "uint8",
        description="input path: uint8 (torchvision decoding, one resize, normalised on the "
        "device) or pil (the per-image PIL Resize/ToTensor/Normalize path)",
    )


class CriterionConfig(StrictModel):
    """Arguments of the method's loss and model, for the methods that take them
    (``selfsup.methods.method_args(name)``; docs/methods.md lists them per method).

    ``temperature`` and ``memory_bank_size`` are lightly's keys: left at these defaults they
    mean the method's own default (MoCo: temperature 0.2, a 4096-key queue). Every other
    argument is a key of its own (``criterion.lambda_param=0.005`` for Barlow Twins);
    unset, it keeps the method's default. :class:`LightlyConfig` checks the keys against the
    chosen method when the config is resolved: a key it does not take is an error.
    """

    # Method arguments beyond the two typed keys are extra keys, checked (and typed) by
    # LightlyConfig against the chosen method: which keys exist depends on the method.
    model_config = ConfigDict(extra="allow", validate_assignment=True)

    temperature: float = Field(
        0.5, gt=0, description="temperature of the method's loss (methods that take it)"
    )
    memory_bank_size: int = Field(
        0, ge=0, description="entries of the method's memory bank or queue (0 = method default)"
    )

    def method_values(self) -> dict[str, Any]:
        """The keys the user set: typed keys changed from their defaults, and every extra
        (method-specific) key."""
        fields = type(self).model_fields
        typed = {
            key: getattr(self, key) for key in fields if getattr(self, key) != fields[key].default
        }
        return {**typed, **(self.model_extra or {})}


class OptimizerConfig(StrictModel):
    """The method's optimizer (SGD with momentum 0.9, or AdamW for DINO).

    Values left at these defaults (lightly's, SimCLR's) mean the method's own defaults
    (``selfsup.methods.get_method(name).optimizer``); changed values override them.
    """

    lr: float = Field(1.0, gt=0, description="learning rate (other methods: own default)")
    weight_decay: float = Field(1e-5, ge=0, description="weight decay (other methods: own)")


class CollateConfig(StrictModel):
    """Augmentations used to make the two views of each image (ImageCollateFunction)."""

    input_size: int = Field(64, ge=1, description="side of the square crops in pixels")
    cj_prob: Probability = Field(0.8, ge=0, le=1, description="probability of colour jitter")
    cj_bright: float = Field(0.7, ge=0, description="colour jitter: brightness strength")
    cj_contrast: float = Field(0.7, ge=0, description="colour jitter: contrast strength")
    cj_sat: float = Field(0.7, ge=0, description="colour jitter: saturation strength")
    cj_hue: float = Field(0.2, ge=0, le=0.5, description="colour jitter: hue strength")
    min_scale: float = Field(0.15, gt=0, le=1, description="minimum area kept by random crops")
    random_gray_scale: Probability = Field(0.2, ge=0, le=1, description="grayscale probability")
    gaussian_blur: Probability = Field(0.5, ge=0, le=1, description="Gaussian blur probability")
    kernel_size: float | None = Field(
        0.1, gt=0, description="blur kernel as a fraction of input_size (or pixels if > 1)"
    )
    sigmas: tuple[float, float] = Field((0.2, 2.0), description="range of the blur sigma")
    vf_prob: Probability = Field(0.0, ge=0, le=1, description="vertical flip probability")
    hf_prob: Probability = Field(0.5, ge=0, le=1, description="horizontal flip probability")
    rr_prob: Probability = Field(0.0, ge=0, le=1, description="random rotation probability")
    rr_degrees: float | None = Field(
        None, description="rotation range in degrees; null rotates by multiples of 90"
    )

    @field_validator("sigmas")
    @classmethod
    def _ordered_sigmas(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError(f"sigmas must satisfy 0 < min <= max, got {list(value)}")
        return value


class CheckpointCallbackConfig(StrictModel):
    """Which checkpoints are kept during training."""

    save_last: bool = Field(True, description="also keep the checkpoint of the last epoch")
    save_top_k: int = Field(1, ge=-1, description="keep the k best checkpoints by loss")


class TeacherConfig(StrictModel):
    """The frozen teacher of a method that distils one (``method=distillation``).

    Any registered backbone (as ``model.name``) with weights the user has on disk; nothing is
    downloaded. Methods that take no teacher refuse this section.
    """

    name: str = Field(
        "",
        description="teacher backbone: resnet-*, torchvision/<name> or timm/<name> (e.g. "
        "timm/vit_small_patch14_dinov2.lvd142m); method=distillation only",
    )
    weights: str = Field(
        "",
        description="teacher weights: a state dict, .safetensors, a model folder, a selfsup "
        "checkpoint or zoo:<name> (docs/pretrained.md)",
    )
    weights_strict: bool = Field(
        True, description="refuse teacher weights whose keys do not all match"
    )
    input_size: int = Field(
        0,
        ge=0,
        description="side in pixels the teacher sees (views are resized to it); 0 = the "
        "size a ViT was built for, else the training views' size",
    )


class LightlyConfig(StrictModel):
    """Everything ``selfsup train`` and ``selfsup embed`` accept (lightly's CLI config)."""

    input_dir: str = Field("", description="folder of images and videos")
    output_dir: str = Field("", description="where checkpoints, embeddings and logs are written")
    checkpoint: str = Field("", description="model checkpoint to embed with or to resume from")
    embeddings: str = Field("", description="path of the embeddings CSV to write (embed)")
    seed: int = Field(1, description="random seed of training")
    method: str = Field(
        "simclr",
        description="self-supervised method: simclr, moco, byol, simsiam, barlowtwins, "
        "vicreg, dino, nnclr, swav, dcl, dclw, fastsiam (any name registered in selfsup.methods)",
    )
    recipe: Literal["auto", "lightly"] = Field(
        "auto",
        description="auto: keys left at their defaults are chosen for the data and the machine "
        "(model, input size, batch size, lr, epochs, time budget; printed before training); "
        "lightly: lightly's CLI defaults as they are",
    )
    loader: LoaderConfig = Field(default_factory=LoaderConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)
    criterion: CriterionConfig = Field(default_factory=CriterionConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    collate: CollateConfig = Field(default_factory=CollateConfig)
    checkpoint_callback: CheckpointCallbackConfig = Field(default_factory=CheckpointCallbackConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)

    @field_validator("method")
    @classmethod
    def _registered_method(cls, value: str) -> str:
        # Torch-free: the server validates scheduled runs' configs with this model.
        from selfsup.methods import check_method_name

        return check_method_name(value)

    @model_validator(mode="after")
    def _criterion_fits_method(self) -> LightlyConfig:
        # Torch-free: the arguments are declared in the method catalogue (selfsup.methods).
        from selfsup.methods import check_criterion_args

        checked = check_criterion_args(self.method, self.criterion.method_values())
        extra = self.criterion.model_extra
        if extra:
            extra.update({key: checked[key] for key in extra})  # as the argument's type
        return self

    @model_validator(mode="after")
    def _teacher_fits_method(self) -> LightlyConfig:
        # Torch-free as the method check: the catalogue knows which methods take a teacher.
        from selfsup.methods import method_takes_teacher

        given = [key for key in ("name", "weights") if getattr(self.teacher, key)]
        if method_takes_teacher(self.method):
            missing = [f"teacher.{key}" for key in ("name", "weights") if key not in given]
            if missing:
                raise ValueError(
                    f"method={self.method} distils a frozen teacher and needs "
                    f"{' and '.join(missing)}: teacher.name=<backbone> (resnet-*, "
                    "torchvision/<name>, timm/<name>) and teacher.weights=<state dict, "
                    ".safetensors, model folder, selfsup checkpoint or zoo:<name>>"
                )
        elif given:
            raise ValueError(
                f"teacher.{given[0]} is set but method={self.method} takes no teacher: "
                "remove the teacher section or use method=distillation"
            )
        return self
