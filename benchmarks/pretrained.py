"""Scratch SimCLR, a pretrained backbone and a distilled student on Fashion-MNIST.

    python benchmarks/pretrained.py --minutes 10                          # the issue's run
    python benchmarks/pretrained.py --minutes 0.5 --train-samples 5000    # a smoke run
    python benchmarks/pretrained.py --minutes 10 \\
        --weights /data/resnet18.pth --weights-name torchvision/resnet18  # with (b)
    SELFSUP_PRETRAINED_WEIGHTS=/data/r18.pth SELFSUP_PRETRAINED_NAME=torchvision/resnet18 \\
        python benchmarks/pretrained.py

The issue's question: how much do a pretrained backbone, and a small student distilled from
it, give over training from scratch, on the same CPU time? Three arms, each judged the same
way:

(a) **scratch**: SimCLR with ``ssl_fashion_mnist.py``'s recipe (a ResNet-9 of width 0.25
    with a one-channel stem of stride 2) trained for ``--minutes`` of wall clock on
    ``--threads`` CPU threads, on the first ``--train-samples`` training images (labels
    unused).
(b) **pretrained**: a backbone with weights that are already on this machine
    (``--weights`` / ``$SELFSUP_PRETRAINED_WEIGHTS``: a state dict, .safetensors, a model
    folder, a selfsup checkpoint or ``zoo:<name>``; ``--weights-name`` /
    ``$SELFSUP_PRETRAINED_NAME`` names the architecture, e.g. ``torchvision/resnet18``), no
    training. Nothing is downloaded: without weights the arm is skipped with a message. The
    grey 28x28 images are repeated to three channels, resized to ``--pretrained-size``
    pixels and normalised with ImageNet's statistics.
(c) **distilled**: selfsup's ``distillation`` method (:class:`DistillationModel`, the
    default direct loss, its AdamW defaults) trains a student of (a)'s architecture for
    ``--minutes`` to match a frozen teacher on the same images: (b) when it is there;
    otherwise ``--teacher-from scratch`` (the (a) backbone, so the distillation path still
    runs) or ``--teacher-from <selfsup checkpoint>``. The output names the teacher used.

Measures, per arm: the weighted kNN accuracy (k=200, t=0.1, as ``ssl_fashion_mnist.py``)
of ``--test-samples`` test images against the training images' embeddings, and label
efficiency as in ``label_efficiency.py``: a logistic regression on the ``n`` images that
RANDOM or the default selection strategy picks from a pool of ``--pool`` training images,
for n in 50, 100, 500, 1000, its test accuracy as mean over ``--seeds`` seeds. Raw pixels
are the reference row.

How to get weights onto an offline machine: see docs/pretrained.md (save a state dict on a
machine with internet, e.g. ``torch.save(torchvision.models.resnet18(weights="DEFAULT")
.state_dict(), "r18.pth")``, copy the file, then ``--weights r18.pth`` or ``selfsup zoo
add``).
"""

from __future__ import annotations

import os

# As in ssl_fashion_mnist.py: passive OpenMP waiting avoids a 10x slowdown of torch on a
# shared CPU; it must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import label_efficiency as le
from fashion_mnist import load_fashion_mnist
from selfsup.methods import TrainProgress, get_method
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.utils.benchmarking import knn_accuracy
from ssl_fashion_mnist import MEAN, STD, augmenter, embed, make_backbone
from ssl_fashion_mnist import Config as SSLConfig
from ssl_fashion_mnist import train as train_simclr

KNN_K, KNN_T = 200, 0.1


class GrayToRGB(nn.Module):
    """Runs a three-channel ImageNet backbone on this benchmark's inputs.

    (B, 1, 28, 28) images normalised with Fashion-MNIST's statistics -> pixels in [0, 1],
    repeated to three channels, resized to ``size``, normalised with ImageNet's statistics ->
    ``backbone`` -> (B, D) features (D = ``num_features``).
    """

    mean: Tensor
    std: Tensor

    def __init__(self, backbone: nn.Module, num_features: int, size: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_features = num_features
        self.size = size
        mean = torch.tensor(IMAGENET_NORMALIZE["mean"]).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_NORMALIZE["std"]).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        pixels = (x * STD + MEAN).clamp(0, 1).repeat(1, 3, 1, 1)
        if pixels.shape[-1] != self.size:
            pixels = F.interpolate(
                pixels, size=(self.size, self.size), mode="bilinear", align_corners=False
            )
        out: Tensor = self.backbone((pixels - self.mean) / self.std)
        return out.flatten(start_dim=1)


@dataclass
class Arm:
    """One row of the results: what was embedded, how it was made, how it scores."""

    name: str
    how: str
    seconds: float = 0.0
    knn: float = float("nan")
    label_efficiency: dict[str, dict[int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Data:
    """The images (uint8 (N, 1, 28, 28)) and labels of both subsets."""

    train: Tensor
    train_labels: Tensor
    test: Tensor
    test_labels: Tensor


def load_data(train_samples: int, test_samples: int) -> Data:
    """The first ``train_samples`` training and ``test_samples`` test images."""
    train_np, train_y = load_fashion_mnist("train")
    test_np, test_y = load_fashion_mnist("test")
    return Data(
        torch.from_numpy(train_np[:train_samples]).unsqueeze(1),
        torch.from_numpy(train_y[:train_samples]),
        torch.from_numpy(test_np[:test_samples]).unsqueeze(1),
        torch.from_numpy(test_y[:test_samples]),
    )


def evaluate(
    arm: Arm, train_emb: Tensor, test_emb: Tensor, data: Data, args: argparse.Namespace
) -> None:
    """kNN accuracy and label efficiency of embeddings (N, D) and (M, D), into ``arm``."""
    arm.knn = knn_accuracy(train_emb, data.train_labels, test_emb, data.test_labels, KNN_K, KNN_T)
    emb = le.Embeddings(
        train_emb.float().numpy().astype(np.float32),
        test_emb.float().numpy().astype(np.float32),
        {},
    )
    methods = [le.parse_method(le.RANDOM), le.Method("default", le.default_strategies())]
    budgets = tuple(b for b in le.BUDGETS if b <= args.pool)
    print(f"  label efficiency of {arm.name}:", flush=True)
    res = le.run_benchmark(
        emb,
        data.train_labels.numpy(),
        data.test_labels.numpy(),
        methods,
        budgets,
        tuple(range(args.seeds)),
        args.pool,
        args.C,
    )
    arm.label_efficiency = {
        name: {b: float(np.mean(accs)) for b, accs in per_budget.items()}
        for name, per_budget in res.accuracy.items()
    }


def scratch_arm(data: Data, args: argparse.Namespace) -> tuple[Arm, nn.Module]:
    """(a): SimCLR for ``--minutes``; returns the arm and the trained backbone (eval mode)."""
    cfg = SSLConfig(time_budget=60 * args.minutes, threads=args.threads, seed=args.seed)
    print(
        f"(a) scratch SimCLR for {args.minutes:g} min on {data.train.shape[0]} images", flush=True
    )
    result = train_simclr(cfg, data.train)
    epochs = result.images_seen / data.train.shape[0]
    arm = Arm("scratch", f"SimCLR, {result.steps} steps, {epochs:.2f} epochs", result.train_time_s)
    evaluate(arm, embed(result.backbone, data.train), embed(result.backbone, data.test), data, args)
    return arm, result.backbone


def pretrained_backbone(args: argparse.Namespace) -> GrayToRGB | None:
    """(b)'s backbone with its local weights, or None (with a message) when there are none."""
    if not args.weights:
        print(
            "(b) pretrained: skipped: no weights given (--weights or $SELFSUP_PRETRAINED_WEIGHTS; "
            "nothing is downloaded, see docs/pretrained.md for copying weights to this machine)",
            flush=True,
        )
        return None
    from selfsup.models.backbones import get_backbone
    from selfsup.models.weights import load_backbone_weights

    name = args.weights_name
    if not name and args.weights.startswith("zoo:"):
        from selfsup.models.zoo import resolve_entry

        name = resolve_entry(args.weights[len("zoo:") :]).model
    if not name:
        raise SystemExit(
            "--weights needs --weights-name (or $SELFSUP_PRETRAINED_NAME): the architecture "
            "the weights were saved from, e.g. torchvision/resnet18 or timm/<name>"
        )
    if not args.weights.startswith("zoo:") and not Path(args.weights).exists():
        print(f"(b) pretrained: skipped: {args.weights} does not exist on this machine", flush=True)
        return None
    backbone = get_backbone(name)
    load_backbone_weights(backbone, args.weights)
    backbone.eval()
    return GrayToRGB(backbone, backbone.num_features, args.pretrained_size)


def checkpoint_teacher(path: str, size: int) -> GrayToRGB:
    """The backbone of a selfsup checkpoint (embeddings of ``model.num_ftrs``), on this
    benchmark's inputs."""
    from selfsup.config import ModelConfig
    from selfsup.core import model_from_checkpoint

    model, model_cfg = model_from_checkpoint(path, ModelConfig())
    model.eval()
    return GrayToRGB(model.backbone, model_cfg.num_ftrs, size)


def distill(
    teacher: nn.Module, teacher_dim: int, data: Data, args: argparse.Namespace
) -> tuple[nn.Module, int, float]:
    """(c): train a student of (a)'s architecture to match ``teacher`` for ``--minutes``.

    Each step draws a batch, makes two views with ``ssl_fashion_mnist``'s augmentation and
    takes the distillation method's loss (both views to student and teacher). Returns the
    student backbone (eval mode), the steps and the seconds trained.
    """
    cfg = SSLConfig(threads=args.threads, seed=args.seed)
    student, dim = make_backbone(cfg.model, cfg.width, cfg.stem_stride)
    method = get_method("distillation")
    model = method.build_model(
        student, dim, 0, teacher=teacher, teacher_dim=teacher_dim, memory_bank_size=args.queue
    )
    optimizer = method.optimizer.build(model)
    gen = torch.Generator().manual_seed(args.seed)
    n = data.train.shape[0]
    budget = 60 * args.minutes
    step = 0
    views_of = augmenter(cfg.aug)
    model.train()
    start = time.perf_counter()
    while time.perf_counter() - start < budget:
        batch = data.train[torch.randint(n, (cfg.batch_size,), generator=gen)]
        views = views_of(batch, gen)
        loss = model.training_loss(views, TrainProgress(step=step, total_steps=0))
        optimizer.zero_grad(set_to_none=True)
        torch.autograd.backward(loss)
        optimizer.step()
        step += 1
    seconds = time.perf_counter() - start
    print(
        f"  distilled {step} steps in {seconds:.0f} s, last loss {float(loss.detach()):.4f}",
        flush=True,
    )
    model.backbone.eval()
    return model.backbone, step, seconds


def print_results(arms: list[Arm]) -> None:
    """One table: kNN accuracy and label-efficiency accuracies (%) per arm."""
    budgets = sorted({b for arm in arms for per in arm.label_efficiency.values() for b in per})
    strategies = sorted({s for arm in arms for s in arm.label_efficiency})
    head = "".join(f"{f'{s} n={b}':>18}" for s in strategies for b in budgets)
    print(f"\n{'arm':<12}{'train s':>9}{'kNN %':>8}{head}")
    for arm in arms:
        cells = "".join(
            f"{100 * arm.label_efficiency.get(s, {}).get(b, float('nan')):>18.2f}"
            for s in strategies
            for b in budgets
        )
        print(f"{arm.name:<12}{arm.seconds:>9.0f}{100 * arm.knn:>8.2f}{cells}")
    print()
    for arm in arms:
        print(f"{arm.name}: {arm.how}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    add = parser.add_argument
    add(
        "--minutes",
        type=float,
        default=0.5,
        help="training minutes of (a) and (c) each (%(default)s; the issue's run uses 10)",
    )
    add("--train-samples", type=int, default=10000, help="training images (%(default)s)")
    add("--test-samples", type=int, default=2000, help="test images (%(default)s)")
    add("--pool", type=int, default=5000, help="label-efficiency pool size (%(default)s)")
    add("--seeds", type=int, default=3, help="label-efficiency seeds (%(default)s)")
    add("--C", type=float, default=1.0, help="inverse regularisation of the probe")
    add(
        "--weights",
        default=os.environ.get("SELFSUP_PRETRAINED_WEIGHTS", ""),
        help="(b)'s local weights ($SELFSUP_PRETRAINED_WEIGHTS)",
    )
    add(
        "--weights-name",
        default=os.environ.get("SELFSUP_PRETRAINED_NAME", ""),
        help="(b)'s architecture, e.g. torchvision/resnet18 ($SELFSUP_PRETRAINED_NAME)",
    )
    add("--pretrained-size", type=int, default=64, help="pixels (b) sees (%(default)s)")
    add(
        "--teacher-from",
        default="scratch",
        help="(c)'s teacher when (b) is absent: "
        "'scratch' (the (a) model) or a selfsup checkpoint (%(default)s)",
    )
    add("--queue", type=int, default=0, help="distillation queue (0: direct loss)")
    add("--threads", type=int, default=2, help="torch CPU threads (%(default)s)")
    add("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.pool > args.train_samples or args.seeds < 1:
        parser.error("need --minutes > 0, --pool <= --train-samples and --seeds >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    data = load_data(args.train_samples, args.test_samples)
    arms: list[Arm] = []

    raw = Arm("raw pixels", "flattened pixels, no model")
    print("raw pixels", flush=True)
    evaluate(raw, data.train.flatten(1).float(), data.test.flatten(1).float(), data, args)
    arms.append(raw)

    scratch, scratch_backbone = scratch_arm(data, args)
    arms.append(scratch)

    pretrained = pretrained_backbone(args)
    if pretrained is not None:
        print(f"(b) pretrained {args.weights_name or args.weights}, no training", flush=True)
        arm = Arm("pretrained", f"{args.weights_name} weights {args.weights}, no training")
        evaluate(arm, embed(pretrained, data.train), embed(pretrained, data.test), data, args)
        arms.append(arm)

    teacher: nn.Module
    if pretrained is not None:
        teacher, teacher_dim = pretrained, pretrained.num_features
        described = f"(b) {args.weights_name} from {args.weights}"
    elif args.teacher_from == "scratch":
        teacher = scratch_backbone
        teacher_dim = int(embed(scratch_backbone, data.train[:2]).shape[1])
        described = "(a) the scratch SimCLR model (no pretrained weights on this machine)"
    else:
        teacher = checkpoint_teacher(args.teacher_from, args.pretrained_size)
        teacher_dim = int(teacher.num_features)
        described = f"the selfsup checkpoint {args.teacher_from}"
    print(f"(c) distilling for {args.minutes:g} min; teacher: {described}", flush=True)
    student, steps, seconds = distill(teacher, teacher_dim, data, args)
    arm = Arm("distilled", f"student of (a)'s architecture, {steps} steps; teacher: {described}")
    arm.seconds = seconds
    evaluate(arm, embed(student, data.train), embed(student, data.test), data, args)
    arms.append(arm)
    print_results(arms)


if __name__ == "__main__":
    main()
