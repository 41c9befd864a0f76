"""SimCLR on Fashion-MNIST within a time budget, judged by kNN against a raw-pixel baseline.

    python benchmarks/ssl_fashion_mnist.py                      # defaults: 540 s, 2 threads
    python benchmarks/ssl_fashion_mnist.py --time-budget 60     # a quick look

Trains SimCLR (Chen et al., 2020) on the 60 000 training images, without their labels, for
``--time-budget`` seconds of wall clock; then embeds both splits with the backbone and prints
the training throughput (images/s, one image = one pair of views), the epochs done, the final
loss, the weighted-kNN accuracy of the embeddings on the 10 000 test images, the same kNN on
raw pixels (flattened, L2-normalised) and the difference. Both kNNs use the same k,
temperature, train split (the memory) and test split (the queries): a like-for-like
comparison in which only the representation differs.

The parts come from selfsup: ``ResNetGenerator("resnet-9")`` (stem changed to one input
channel and stride 2), ``SimCLRProjectionHead``, ``NTXentLoss``, the kNN of
``selfsup.utils.benchmarking`` and the augmentations: the library's ``SimCLRViewTransform``
(plus ``RandomSolarization``) run on whole uint8 batches by ``BatchedMultiViewTransform``,
the on-device path selfsup trains with by default (per-image PIL transforms would cost more
than the network on 2 cores; the same code runs on a GPU).

The recipe (augmentation strengths, temperature, learning rate, network size) was chosen
with equal-epoch runs; see benchmarks/README.md for the figures. ``--method nnclr`` trains
NNCLR (Dwibedi et al., 2021) with the same backbone, views and schedule instead, for
comparison (it was no better at equal epochs and slower per image). ``--loss dclw``,
``--head-hidden``/``--head-layers`` and ``--small-crops`` (multi-crop views) vary the SimCLR
recipe the same way; none was better at equal epochs either (benchmarks/README.md).
"""

from __future__ import annotations

import os

# PyTorch's OpenMP threads spin while waiting for each other. On a CPU shared with other
# processes a descheduled thread then stalls the rest: with 2 threads on 2 busy cores a
# training step was measured 10x slower than with 1. Passive waiting avoids the collapse;
# it must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import math
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fashion_mnist import load_fashion_mnist
from selfsup.embedding._trainer import autocast_or_float32, training_autocast_dtype
from selfsup.embedding.embedding import autocast_dtype, forward_features
from selfsup.loss import DCLWLoss, NTXentLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import (
    NNCLRPredictionHead,
    NNCLRProjectionHead,
    NNMemoryBankModule,
    SimCLRProjectionHead,
)
from selfsup.models.utils import get_weight_decay_parameters
from selfsup.transforms import (
    RandomResizedCrop,
    RandomSolarization,
    SimCLRViewTransform,
    ViewTransform,
)
from selfsup.transforms.batched_view import BatchedMultiViewTransform
from selfsup.utils.benchmarking import knn_accuracy

#: Mean and standard deviation of the Fashion-MNIST training pixels scaled to [0, 1].
MEAN = 0.2860
STD = 0.3530
#: The views' normalisation, ``ViewTransform``'s ``normalize`` argument.
NORMALIZE = {"mean": [MEAN], "std": [STD]}
IMAGE_SIZE = 28


# --------------------------------------------------------------------------------------
# Augmentation on batches
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Augment:
    """Strengths of the batched SimCLR augmentation for 28x28 grayscale images.

    Attributes (the keys of :func:`view_transform`):
        min_scale: smallest fraction of the image area a random crop keeps.
        jitter: brightness and contrast factors are drawn from U(1 - jitter, 1 + jitter).
        jitter_prob: probability of applying the brightness/contrast jitter to a view.
        solarize_prob: probability of inverting the pixels >= 0.5 of a view.
        small_crops: extra low-resolution views per image (multi-crop, Caron et al. 2020),
            ``small_size`` pixels square, area fraction ``U(*small_scale)``; 0 = two views.
    """

    min_scale: float = 0.2
    jitter: float = 0.8
    jitter_prob: float = 0.8
    solarize_prob: float = 0.2
    small_crops: int = 0
    small_size: int = 14
    small_scale: tuple[float, float] = (0.05, 0.3)

    def __post_init__(self) -> None:
        if not 0 < self.min_scale <= 1:
            raise ValueError(f"--min-scale must be in (0, 1], got {self.min_scale}")
        if self.small_crops < 0:
            raise ValueError(f"--small-crops must be >= 0, got {self.small_crops}")
        if not 4 <= self.small_size <= IMAGE_SIZE:
            raise ValueError(f"--small-size must be in [4, {IMAGE_SIZE}], got {self.small_size}")
        lo, hi = self.small_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"--small-scale must be 0 < LOW <= HIGH <= 1, got {lo} {hi}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"--jitter must be in [0, 1), got {self.jitter}")
        for name, p in (
            ("--jitter-prob", self.jitter_prob),
            ("--solarize-prob", self.solarize_prob),
        ):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")


def view_transform(aug: Augment) -> ViewTransform:
    """The library's SimCLR view for 28x28 grayscale images, plus solarisation.

    ``SimCLRViewTransform`` with the recipe's strengths: random resized crop (area fraction
    ``U(min_scale, 1)``) and horizontal flip; with probability ``jitter_prob`` brightness and
    contrast factors from ``U(1 - jitter, 1 + jitter)`` in random order (no saturation or
    hue: the images are grayscale; no grayscale step, no blur); then selfsup's
    ``RandomSolarization`` with probability ``solarize_prob``; normalised with the
    Fashion-MNIST mean and std.
    """
    simclr = SimCLRViewTransform(
        input_size=IMAGE_SIZE,
        cj_prob=aug.jitter_prob,
        cj_bright=aug.jitter,
        cj_contrast=aug.jitter,
        cj_sat=0.0,
        cj_hue=0.0,
        min_scale=aug.min_scale,
        random_gray_scale=0.0,
        gaussian_blur=0.0,
        normalize=None,
    )
    return ViewTransform(
        [*simclr.steps, RandomSolarization(prob=aug.solarize_prob)],
        normalize=NORMALIZE,
    )


def small_view_transform(aug: Augment) -> ViewTransform:
    """A multi-crop view: :func:`view_transform` with its crop replaced by a
    ``small_size``-pixel square crop of area fraction ``U(*small_scale)``."""
    view = view_transform(aug)
    crop = RandomResizedCrop(aug.small_size, scale=aug.small_scale)
    return ViewTransform([crop, *view.steps[1:]], normalize=NORMALIZE)


def augmenter(aug: Augment) -> BatchedMultiViewTransform:
    """Batched views: ``augmenter(aug)(images, generator)`` maps uint8 ``(B, 1, 28, 28)`` to
    two normalised float ``(B, 1, 28, 28)`` views of :func:`view_transform`, then
    ``aug.small_crops`` views ``(B, 1, small_size, small_size)``, on the images' device, with
    fresh per-sample parameters (selfsup's batched on-device path)."""
    view = view_transform(aug)
    small = [small_view_transform(aug)] * aug.small_crops
    return BatchedMultiViewTransform([view, view, *small])


def normalize_images(images: Tensor) -> Tensor:
    """Un-augmented network input: (B, 1, 28, 28) uint8 -> normalised float, same shape."""
    return (images.float() / 255.0 - MEAN) / STD


# --------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------


def make_backbone(model: str, width: float, stem_stride: int) -> tuple[nn.Module, int]:
    """selfsup's lightly-style ResNet as a (B, 1, 28, 28) -> (B, D) feature extractor, and D.

    Two changes for 28x28 grayscale input: the stem takes 1 channel instead of 3, and its
    stride is ``stem_stride``. Stride 2 runs the residual stages on 14x14 instead of 28x28
    maps, about 4x fewer operations, which buys more epochs within the budget on a CPU.
    """
    resnet = ResNetGenerator(model, width=width)
    resnet.conv1 = nn.Conv2d(1, resnet.base, 3, stride=stem_stride, padding=1, bias=False)
    resnet.linear = nn.Identity()
    return resnet, resnet.num_features


class SimCLRModel(nn.Module):
    """Backbone + SimCLR projection head: views (B, 1, 28, 28) -> projections (B, out_dim)."""

    def __init__(
        self, backbone: nn.Module, dim: int, out_dim: int, hidden: int = 0, layers: int = 2
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(dim, hidden or dim, out_dim, layers)

    def forward(self, x: Tensor) -> Tensor:
        features: Tensor = self.backbone(x)
        projections: Tensor = self.projection_head(features)
        return projections


class NNCLRModel(nn.Module):
    """Backbone + NNCLR projection and prediction heads (Dwibedi et al. 2021): views
    (B, 1, 28, 28) -> projections z and predictions p, (B, out_dim) each. The loss takes the
    nearest neighbour of z in a support set as the positive of the other view's p."""

    def __init__(self, backbone: nn.Module, dim: int, out_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = NNCLRProjectionHead(dim, dim, out_dim)
        self.prediction_head = NNCLRPredictionHead(out_dim, 4 * out_dim, out_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z: Tensor = self.projection_head(self.backbone(x))
        p: Tensor = self.prediction_head(z)
        return z, p


# --------------------------------------------------------------------------------------
# Training and evaluation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Every setting of a run; the defaults are the recipe this benchmark reports."""

    time_budget: float = 540.0
    epochs: int | None = None
    batch_size: int = 256
    lr: float = 0.24
    weight_decay: float = 5e-4
    warmup: float = 0.05
    temperature: float = 0.1
    method: str = "simclr"
    loss: str = "ntxent"
    head_hidden: int = 0
    head_layers: int = 2
    bank_size: int = 16384
    nn_start: float = 0.0
    model: str = "resnet-9"
    width: float = 0.25
    stem_stride: int = 2
    out_dim: int = 128
    aug: Augment = field(default_factory=Augment)
    device: str = "cpu"
    threads: int = 2
    seed: int = 0
    knn_k: int = 200
    knn_t: float = 0.1
    precision: str = "auto"
    log_every: float = 60.0


@dataclass
class TrainResult:
    """The trained backbone (in eval mode) and what training cost."""

    backbone: nn.Module
    train_time_s: float
    images_seen: int
    steps: int
    final_loss: float


def lr_at(progress: float, cfg: Config) -> float:
    """Learning rate at ``progress`` in [0, 1]: linear warm-up, then cosine decay to 0.

    Progress is the fraction of the time budget used (or of ``cfg.epochs``), so the cosine
    schedule ends when the budget does, however fast the machine is.
    """
    if progress < cfg.warmup:
        return cfg.lr * progress / cfg.warmup
    p = (progress - cfg.warmup) / max(1e-8, 1 - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))


def training_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step, as ``selfsup train`` resolves
    ``trainer.precision`` (:func:`~selfsup.embedding._trainer.training_autocast_dtype`):
    ``auto`` is bf16 where the CPU or GPU has it natively, ``bf16`` is ``bf16-mixed``,
    ``32`` float32 (None)."""
    lightning: dict[str, int | str] = {"auto": "auto", "bf16": "bf16-mixed", "32": 32}
    return training_autocast_dtype(lightning[precision], on_cpu=device.type != "cuda")


def train(cfg: Config, train_u8: Tensor) -> TrainResult:
    """Train SimCLR on uint8 images (N, 1, 28, 28) that already sit on the target device.

    Stops when ``cfg.time_budget`` seconds have passed (or after ``cfg.epochs`` epochs when
    set, for runs that must be comparable across machines). Each step draws a batch without
    replacement, makes two views of it and minimises NT-Xent with SGD (Nesterov momentum
    0.9, weight decay on weights but not on norms and biases), the forward pass and loss under
    bf16 autocast where ``cfg.precision`` says so, as Lightning's ``bf16-mixed`` runs
    ``selfsup train``'s steps (float32 weights and optimizer). With ``aug.small_crops`` the
    SimCLR loss is the mean over the pair of full views and every (full view, small view)
    pair; ``loss="dclw"`` uses the decoupled, weighted loss (Yeh et al. 2022) instead.
    """
    device = train_u8.device
    n_train = train_u8.shape[0]
    backbone, dim = make_backbone(cfg.model, cfg.width, cfg.stem_stride)
    nnclr = cfg.method == "nnclr"
    model: nn.Module = (
        NNCLRModel(backbone, dim, cfg.out_dim)
        if nnclr
        else SimCLRModel(backbone, dim, cfg.out_dim, cfg.head_hidden, cfg.head_layers)
    )
    model = model.to(device)
    bank = NNMemoryBankModule(size=(cfg.bank_size, cfg.out_dim)).to(device) if nnclr else None
    model = model.to(memory_format=torch.channels_last)  # faster convolutions on CPU and GPU
    criterion: nn.Module = (
        DCLWLoss(temperature=cfg.temperature)
        if cfg.loss == "dclw"
        else NTXentLoss(temperature=cfg.temperature)
    )
    decay, no_decay = get_weight_decay_parameters([model])
    optimizer = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        momentum=0.9,
        nesterov=True,
    )
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    # The views' parameters are drawn on the CPU (as the training loop does), pixels on device.
    param_gen = torch.Generator().manual_seed(cfg.seed + 1)
    views_of = augmenter(cfg.aug)
    steps_per_epoch = n_train // cfg.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"--batch-size {cfg.batch_size} is larger than the {n_train} images")
    max_steps = cfg.epochs * steps_per_epoch if cfg.epochs else None
    step = 0
    loss = torch.zeros(())
    elapsed = 0.0
    next_log = cfg.log_every
    model.train()
    dtype = training_dtype(cfg.precision, device)
    start = time.perf_counter()
    while True:
        perm = torch.randperm(n_train, device=device, generator=gen)
        for i in range(steps_per_epoch):
            progress = step / max_steps if max_steps else elapsed / cfg.time_budget
            if progress >= 1.0:
                backbone.eval()
                seen = step * cfg.batch_size
                return TrainResult(backbone, elapsed, seen, step, float(loss.detach()))
            lr = lr_at(progress, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = train_u8[perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]]
            # Both views in one forward pass: one larger batch is faster than two on a CPU.
            all_views = views_of(batch, param_gen)
            views = torch.cat(all_views[:2])
            n = batch.shape[0]
            if bank is not None:
                with autocast_or_float32(device.type, dtype):
                    z, p = model(views.contiguous(memory_format=torch.channels_last))
                z0, z1 = z[:n], z[n:]
                if progress >= cfg.nn_start:
                    # NNCLR eq. 2: the support set's nearest neighbour of z is the positive.
                    z0, z1 = bank(z0.detach(), update=False), bank(z1.detach(), update=True)
                else:
                    bank(z1.detach(), update=True)
                with autocast_or_float32(device.type, dtype):
                    loss = 0.5 * (criterion(z0, p[n:]) + criterion(z1, p[:n]))
            else:
                with autocast_or_float32(device.type, dtype):
                    z = model(views.contiguous(memory_format=torch.channels_last))
                    loss = criterion(z[:n], z[n:])
                    if len(all_views) > 2:
                        small = torch.cat(all_views[2:]).contiguous(
                            memory_format=torch.channels_last
                        )
                        for zs in model(small).split(n):
                            loss = loss + 0.5 * (criterion(z[:n], zs) + criterion(z[n:], zs))
                        loss = loss / (len(all_views) - 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            elapsed = time.perf_counter() - start
            if elapsed >= next_log:
                next_log += cfg.log_every
                seen = step * cfg.batch_size
                print(
                    f"  {elapsed:5.0f} s  epoch {seen / n_train:5.2f}"
                    f"  loss {float(loss.detach()):.4f}"
                    f"  lr {lr:.4f}  {seen / elapsed:.0f} images/s",
                    flush=True,
                )


@torch.inference_mode()
def embed(backbone: nn.Module, images: Tensor, batch_size: int = 1024) -> Tensor:
    """Backbone features (N, D) float32 of uint8 images (N, 1, 28, 28); ``backbone`` in eval
    mode, through the embed step's forward pass
    (:func:`~selfsup.embedding.embedding.forward_features`, channels-last) in its default
    arithmetic (``embedding.precision=auto``:
    :func:`~selfsup.embedding.embedding.autocast_dtype`)."""
    device = images.device
    dtype = autocast_dtype("auto", device)
    out: list[Tensor] = []
    for start in range(0, images.shape[0], batch_size):
        x = normalize_images(images[start : start + batch_size])
        out.append(forward_features(backbone, x, device, dtype=dtype, channels_last=True))
    return torch.cat(out)


def run(cfg: Config) -> dict[str, float]:
    """Train, embed, and compare kNN accuracies; returns the figures printed by :func:`main`."""
    wall_start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    device = torch.device(cfg.device)
    train_np, train_labels_np = load_fashion_mnist("train")
    test_np, test_labels_np = load_fashion_mnist("test")
    train_u8 = torch.from_numpy(train_np).unsqueeze(1).to(device)
    test_u8 = torch.from_numpy(test_np).unsqueeze(1).to(device)
    train_labels = torch.from_numpy(train_labels_np).to(device)
    test_labels = torch.from_numpy(test_labels_np).to(device)

    result = train(cfg, train_u8)

    t0 = time.perf_counter()
    train_emb = embed(result.backbone, train_u8)
    test_emb = embed(result.backbone, test_u8)
    embed_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc_emb = knn_accuracy(train_emb, train_labels, test_emb, test_labels, cfg.knn_k, cfg.knn_t)
    acc_raw = knn_accuracy(
        train_u8.flatten(1).float(),
        train_labels,
        test_u8.flatten(1).float(),
        test_labels,
        cfg.knn_k,
        cfg.knn_t,
    )
    knn_time = time.perf_counter() - t0
    return {
        "train_time_s": result.train_time_s,
        "images_per_s": result.images_seen / max(result.train_time_s, 1e-9),
        "epochs": result.images_seen / train_u8.shape[0],
        "final_loss": result.final_loss,
        "embedding_dim": float(train_emb.shape[1]),
        "knn_embeddings": acc_emb,
        "knn_raw_pixels": acc_raw,
        "embed_time_s": embed_time,
        "knn_time_s": knn_time,
        "wall_time_s": time.perf_counter() - wall_start,
    }


def parse_args(argv: list[str] | None = None) -> Config:
    """Command-line arguments -> :class:`Config` (defaults from :class:`Config`)."""
    d = Config()
    a_ = Augment()
    parser = argparse.ArgumentParser(
        description="Train SimCLR on Fashion-MNIST for a time budget; compare the kNN accuracy "
        "of its embeddings with kNN on raw pixels.",
    )
    add = parser.add_argument
    add("--time-budget", type=float, default=d.time_budget, help="training seconds (%(default)s)")
    add("--epochs", type=int, default=None, help="train this many epochs instead of a budget")
    add("--batch-size", type=int, default=d.batch_size, help="images per step (%(default)s)")
    add("--lr", type=float, default=None, help="peak SGD learning rate (0.24 x batch-size / 256)")
    add("--weight-decay", type=float, default=d.weight_decay)
    add("--warmup", type=float, default=d.warmup, help="warm-up fraction of the budget")
    add("--temperature", type=float, default=d.temperature, help="NT-Xent temperature")
    add("--method", default=d.method, choices=["simclr", "nnclr"], help="(%(default)s)")
    add("--loss", default=d.loss, choices=["ntxent", "dclw"], help="SimCLR loss (%(default)s)")
    add("--head-hidden", type=int, default=d.head_hidden, help="0: the backbone's size")
    add("--head-layers", type=int, default=d.head_layers, help="projection layers, >= 2")
    add("--bank-size", type=int, default=d.bank_size, help="NNCLR support set (%(default)s)")
    add(
        "--nn-start",
        type=float,
        default=d.nn_start,
        help="NNCLR: progress at which "
        "nearest neighbours replace the other view's projection (%(default)s)",
    )
    add("--model", default=d.model, help="selfsup ResNetGenerator name (%(default)s)")
    add("--width", type=float, default=d.width, help="ResNet width multiplier (%(default)s)")
    add("--stem-stride", type=int, default=d.stem_stride, choices=[1, 2])
    add("--out-dim", type=int, default=d.out_dim, help="projection size (%(default)s)")
    add("--min-scale", type=float, default=a_.min_scale, help="smallest crop area fraction")
    add("--jitter", type=float, default=a_.jitter, help="brightness/contrast strength")
    add("--jitter-prob", type=float, default=a_.jitter_prob)
    add("--solarize-prob", type=float, default=a_.solarize_prob)
    add("--small-crops", type=int, default=a_.small_crops, help="multi-crop views (SimCLR)")
    add("--small-size", type=int, default=a_.small_size, help="their side (%(default)s)")
    add("--small-scale", type=float, nargs=2, default=a_.small_scale, metavar=("LOW", "HIGH"))
    add("--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)")
    add("--threads", type=int, default=d.threads, help="torch CPU threads (%(default)s)")
    add("--seed", type=int, default=d.seed)
    add(
        "--precision",
        default=d.precision,
        choices=["auto", "32", "bf16"],
        help="training arithmetic: auto (bf16 where the CPU or GPU has it natively, as "
        "selfsup train), 32 or bf16 (%(default)s)",
    )
    add("--knn-k", type=int, default=d.knn_k, help="neighbours, both kNNs (%(default)s)")
    add("--knn-t", type=float, default=d.knn_t, help="kNN temperature, both (%(default)s)")
    a = parser.parse_args(argv)
    if a.time_budget <= 0 and a.epochs is None:
        parser.error("--time-budget must be > 0 (or give --epochs)")
    if a.epochs is not None and a.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {a.epochs}")
    if a.batch_size < 2:
        parser.error(f"--batch-size must be >= 2 (SimCLR needs negatives), got {a.batch_size}")
    if a.threads < 1:
        parser.error(f"--threads must be >= 1, got {a.threads}")
    if a.head_hidden < 0:
        parser.error(f"--head-hidden must be >= 0 (0: the backbone's size), got {a.head_hidden}")
    if a.head_layers < 2:
        parser.error(f"--head-layers must be >= 2, got {a.head_layers}")
    if a.method == "nnclr" and (
        a.loss != d.loss or a.small_crops or a.head_hidden or a.head_layers != 2
    ):
        parser.error("--loss, --head-*, and --small-crops apply to --method simclr only")
    device = a.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        aug = Augment(
            a.min_scale,
            a.jitter,
            a.jitter_prob,
            a.solarize_prob,
            a.small_crops,
            a.small_size,
            (a.small_scale[0], a.small_scale[1]),
        )
    except ValueError as exc:
        parser.error(str(exc))
    return Config(
        time_budget=a.time_budget,
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr if a.lr is not None else 0.24 * a.batch_size / 256,
        weight_decay=a.weight_decay,
        warmup=a.warmup,
        temperature=a.temperature,
        method=a.method,
        loss=a.loss,
        head_hidden=a.head_hidden,
        head_layers=a.head_layers,
        bank_size=a.bank_size,
        nn_start=a.nn_start,
        model=a.model,
        width=a.width,
        stem_stride=a.stem_stride,
        out_dim=a.out_dim,
        aug=aug,
        device=device,
        threads=a.threads,
        seed=a.seed,
        knn_k=a.knn_k,
        knn_t=a.knn_t,
        precision=a.precision,
    )


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    print(f"{cfg.method} on Fashion-MNIST: {cfg}", flush=True)
    r = run(cfg)
    knn = f"k={cfg.knn_k}, t={cfg.knn_t}; memory: 60000 train images, queries: 10000 test"
    dtype = training_dtype(cfg.precision, torch.device(cfg.device))
    arithmetic = "bf16 autocast" if dtype is not None else "float32"
    print(f"device:            {cfg.device} ({cfg.threads} threads), training in {arithmetic}")
    print(f"training time:     {r['train_time_s']:.1f} s")
    print(f"throughput:        {r['images_per_s']:.0f} images/s (2 views each)")
    print(f"epochs done:       {r['epochs']:.2f}")
    print(f"final loss:        {r['final_loss']:.4f}")
    print(f"kNN ({knn})")
    print(f"  embeddings:      {100 * r['knn_embeddings']:.2f} % (D={r['embedding_dim']:.0f})")
    print(f"  raw pixels:      {100 * r['knn_raw_pixels']:.2f} % (D=784)")
    diff = 100 * (r["knn_embeddings"] - r["knn_raw_pixels"])
    print(f"  difference:      {diff:+.2f} points")
    print(f"embed + kNN time:  {r['embed_time_s']:.1f} s + {r['knn_time_s']:.1f} s")
    print(f"total wall time:   {r['wall_time_s']:.1f} s (from loading the data to the end)")


if __name__ == "__main__":
    main()
