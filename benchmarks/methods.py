"""Every registered SSL method on Fashion-MNIST at an equal epoch budget, beside raw pixels.

    python benchmarks/methods.py                                   # CPU: 6,000 images, 2 epochs
    python benchmarks/methods.py --train-samples 60000 --epochs 20 --device cuda   # on a GPU
    python benchmarks/methods.py --methods simclr byol
    python benchmarks/methods.py --jsonl rows.jsonl      # also append each row as it is done
    python benchmarks/methods.py --table-from rows.jsonl  # print the table of saved rows

Each method of ``selfsup.methods`` trains the same backbone (``model.name`` at ``--width``;
methods that need a ViT's tokens train ``--vit-model`` instead; a linear map to
``--num-ftrs``, as ``selfsup train`` builds it) with its own transform,
heads, loss and optimiser defaults, for the same number of epochs on the same images (the
first ``--train-samples`` training images, without labels, grey repeated to RGB). Then
the backbone embeds those images and the 10,000 test images, and the script prints per
method: the weighted kNN accuracy (k=200, t=0.1, the same as ``ssl_fashion_mnist.py``), the
accuracy of a linear probe (logistic regression on the standardised embeddings), the
training throughput (images/s, augmentation included) and the peak memory (the process's
peak RSS on CPU, ``torch.cuda.max_memory_allocated`` on a GPU), and the same two
accuracies for raw pixels and for the ResNet at its random initialisation (no training: the
row a method must beat to show it learnt something at a short budget). Every method runs in
its own process (a fork of this one by default), so peak memory is its own.
The loss columns are the mean of the first and of the last ``--loss-window`` steps: a method
whose loss does not fall, or whose kNN accuracy stays near chance (0.1), has not learnt at
this budget.
"""

from __future__ import annotations

import os

# See ssl_fashion_mnist.py: spinning OpenMP threads collapse on a shared 2-core machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime
import json
import multiprocessing
import multiprocessing.queues
import resource
import subprocess
import sys
import time
import traceback
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fashion_mnist import load_fashion_mnist
from selfsup.config import ModelConfig
from selfsup.core import build_model
from selfsup.methods import (
    MethodModel,
    TrainProgress,
    get_method,
    method_names,
    method_takes_teacher,
)
from selfsup.transforms.utils import IMAGENET_NORMALIZE
from selfsup.utils.benchmarking import knn_accuracy


class _Views(Dataset[tuple[list[Tensor], int, str]]):
    """Fashion-MNIST images as (3, 28, 28) uint8 tensors through a method's transform."""

    def __init__(self, images: npt.NDArray[np.uint8], transform: Any) -> None:
        self.images = torch.from_numpy(images).unsqueeze(1).expand(-1, 3, -1, -1)
        self.transform = transform

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[list[Tensor], int, str]:
        return self.transform(self.images[index]), 0, str(index)


@torch.no_grad()
def embed(backbone: torch.nn.Module, images: npt.NDArray[np.uint8], device: str) -> Tensor:
    """(N, num_ftrs) backbone features of (N, 28, 28) uint8 images, normalised as in training."""
    backbone.eval()
    mean = torch.tensor(IMAGENET_NORMALIZE["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_NORMALIZE["std"], device=device).view(1, 3, 1, 1)
    out = []
    for start in range(0, len(images), 1024):
        x = torch.from_numpy(images[start : start + 1024]).to(device).unsqueeze(1)
        x = (x.float().div(255).expand(-1, 3, -1, -1) - mean) / std
        out.append(backbone(x).flatten(1).float().cpu())
    return torch.cat(out)


def linear_probe(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> float:
    """Test accuracy of a logistic regression on standardised features (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x.numpy())
    probe = LogisticRegression(max_iter=300)
    probe.fit(scaler.transform(train_x.numpy()), train_y.numpy())
    return float(probe.score(scaler.transform(test_x.numpy()), test_y.numpy()))


#: Fashion-MNIST splits loaded once per process (a forked child inherits them).
_DATA: dict[str, tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]] = {}


def _data(split: Literal["train", "test"]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    if split not in _DATA:
        _DATA[split] = load_fashion_mnist(split)
    return _DATA[split]


def _forked(args: argparse.Namespace, name: str) -> dict[str, Any] | str:
    """``run_method`` for ``name`` in a forked child: torch, the methods and the data are
    imported and loaded once by the parent instead of once per method (on a busy 2-core
    machine a fresh interpreter took longer to start than the method took to train). The
    child is its own process, so its peak RSS is its own (from the shared start on).
    Returns the row, or the error text."""
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.queues.SimpleQueue[dict[str, Any] | str] = context.SimpleQueue()

    def child() -> None:
        try:
            queue.put(run_method(argparse.Namespace(**{**vars(args), "one": name})))
        except Exception:  # noqa: BLE001  # reported by the parent, which goes on
            queue.put(traceback.format_exc())

    process = context.Process(target=child)
    process.start()
    process.join(args.timeout or None)
    if process.is_alive():
        process.kill()
        process.join()
        return f"stopped after --timeout {args.timeout:g} s"
    if queue.empty():
        return f"exited with status {process.exitcode} without a result"
    return queue.get()


def run_method(args: argparse.Namespace) -> dict[str, Any]:
    """Train one method and measure it (runs in a child process)."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    method = get_method(args.one)
    train_np, train_labels = _data("train")
    test_np, test_labels = _data("test")
    train_np, train_labels = train_np[: args.train_samples], train_labels[: args.train_samples]
    test_np, test_labels = test_np[: args.test_samples], test_labels[: args.test_samples]
    # Methods on a ViT's tokens (MAE, SimMIM, I-JEPA, ...) cannot use a ResNet; ViTs take no
    # width multiplier.
    model_name, width = (args.vit_model, 1.0) if method.needs_vit else (args.model, args.width)
    config = ModelConfig(name=model_name, width=width, num_ftrs=args.num_ftrs, out_dim=args.out_dim)
    model: MethodModel = build_model(config, method.name).to(args.device)
    optimizer = method.optimizer.build(model)
    loader = DataLoader(
        _Views(train_np, method.build_transform(args.input_size)),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )
    total_steps = args.epochs * len(loader)
    step, seen = 0, 0
    losses: list[float] = []
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        for views, _, _ in loader:
            views = [v.to(args.device, non_blocking=True) for v in views]
            progress = TrainProgress(epoch, args.epochs, step, total_steps)
            loss: Tensor = model.training_loss(views, progress)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            model.before_optimizer_step(progress)
            optimizer.step()
            step += 1
            seen += views[0].shape[0]
            losses.append(float(loss.detach()))
    train_time = time.perf_counter() - start
    window = max(1, min(args.loss_window, len(losses) // 2))
    if not losses:  # the untrained reference row
        losses = [float("nan")]
    start = time.perf_counter()
    train_emb = embed(model.backbone, train_np, args.device)
    test_emb = embed(model.backbone, test_np, args.device)
    y_train, y_test = torch.from_numpy(train_labels), torch.from_numpy(test_labels)
    knn = knn_accuracy(train_emb, y_train, test_emb, y_test, k=200, t=0.1)
    linear = linear_probe(train_emb, y_train, test_emb, y_test)
    eval_time = time.perf_counter() - start
    if args.device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": method.name,
        "model": f"{model_name} x{width:g}",
        "knn": knn,
        "linear": linear,
        "images_per_s": seen / max(train_time, 1e-9),
        "peak_mb": peak_mb,
        "first_loss": float(np.mean(losses[:window])),
        "final_loss": float(np.mean(losses[-window:])),
        "train_time_s": train_time,
        "eval_time_s": eval_time,
        "optimizer": f"{method.optimizer.name} lr {method.optimizer.lr:g} "
        f"wd {method.optimizer.weight_decay:g}",
    }


def untrained(args: argparse.Namespace) -> dict[str, Any]:
    """The same accuracies for the ResNet backbone at its random initialisation (SimCLR's
    model, no step taken): what a method's row must beat to show that training taught the
    backbone something, rather than that a random convolutional network already separates
    the classes."""
    row = run_method(argparse.Namespace(**{**vars(args), "one": "simclr", "epochs": 0}))
    return {**row, "method": "untrained (random init)", "optimizer": "-", "images_per_s": 0.0}


def raw_pixels(train_samples: int, test_samples: int) -> dict[str, Any]:
    """The same two accuracies on raw pixels (flattened; the kNN L2-normalises them)."""
    train_np, train_labels = _data("train")
    test_np, test_labels = _data("test")
    train_x = torch.from_numpy(train_np[:train_samples]).flatten(1).float()
    test_x = torch.from_numpy(test_np[:test_samples]).flatten(1).float()
    y_train = torch.from_numpy(train_labels[:train_samples])
    y_test = torch.from_numpy(test_labels[:test_samples])
    return {
        "method": "raw pixels",
        "knn": knn_accuracy(train_x, y_train, test_x, y_test, k=200, t=0.1),
        "linear": linear_probe(train_x, y_train, test_x, y_test),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    add = parser.add_argument
    # A method that distils a teacher needs teacher weights, which this benchmark has none of.
    own = [name for name in method_names() if not method_takes_teacher(name)]
    add("--methods", nargs="+", default=own, help="registered method names (all without a teacher)")
    add("--epochs", type=int, default=2, help="epochs of every method (%(default)s)")
    add("--train-samples", type=int, default=6000, help="training images (%(default)s)")
    add("--test-samples", type=int, default=10000, help="test images scored (%(default)s)")
    add("--batch-size", type=int, default=256)
    add("--input-size", type=int, default=28, help="crop size in pixels (%(default)s)")
    add("--model", default="resnet-9", help="backbone name (%(default)s)")
    add("--width", type=float, default=0.5, help="ResNet width multiplier (%(default)s)")
    add("--vit-model", default="vit-tiny-p4", help="backbone of ViT-only methods (%(default)s)")
    add("--num-ftrs", type=int, default=64, help="embedding size (%(default)s)")
    add("--out-dim", type=int, default=128, help="projection size (%(default)s)")
    add("--device", default="cpu", help="cpu or cuda")
    add("--threads", type=int, default=2, help="torch CPU threads (%(default)s)")
    add("--workers", type=int, default=1, help="data loader processes (%(default)s)")
    add("--seed", type=int, default=0)
    add("--loss-window", type=int, default=5, help="steps averaged for first/final loss")
    add("--timeout", type=float, default=0, help="seconds per method, 0: none (%(default)s)")
    add(
        "--no-fork",
        action="store_true",
        help="run each method in a fresh interpreter instead of a fork of this process",
    )
    add("--jsonl", default="", help="append each method's row (JSON) to this file")
    add("--table-from", default="", help="print the table of the rows in this JSONL file")
    add("--one", default="", help=argparse.SUPPRESS)  # the child process's method
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.train_samples < args.batch_size:
        parser.error("need --epochs >= 1 and --train-samples >= --batch-size")
    if not 1 <= args.test_samples <= 10000:
        parser.error(f"--test-samples must be 1 to 10000 (the test split), got {args.test_samples}")
    for name in args.methods:
        if name not in method_names():
            parser.error(f"unknown method {name!r}; registered: {', '.join(method_names())}")
    return args


def print_table(rows: list[dict[str, Any]], header: dict[str, Any]) -> None:
    """The markdown table of ``rows`` (one per method, then raw pixels last); a method
    saved twice (runs split over processes) is shown once, its first row."""
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        first.setdefault(row["method"], row)
    rows = list(first.values())
    baseline = next(row for row in rows if row["method"] == "raw pixels")
    print(
        f"# {header['epochs']} epoch(s) on {header['train_samples']} Fashion-MNIST images "
        f"(scored on {header['test_samples']} test images), {header['model']} width "
        f"{header['width']} (ViT-only methods: {header['vit_model']}), batch "
        f"{header['batch_size']}, {header['device']}, {header['date']}, load average "
        f"{header['load_start']:.2f} at the start, {header['load_end']:.2f} at the end"
    )
    print(
        "| method | backbone | optimizer | kNN acc | linear acc | images/s | peak MB "
        "| first loss | final loss | beats raw kNN |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        if row["method"] in ("raw pixels", "untrained (random init)"):
            continue
        beats = "yes" if row["knn"] > baseline["knn"] else "no"
        print(
            f"| {row['method']} | {row['model']} | {row.get('optimizer', '-')} | "
            f"{row['knn']:.3f} | {row['linear']:.3f} | {row['images_per_s']:.0f} | "
            f"{row['peak_mb']:.0f} | {row.get('first_loss', float('nan')):.3f} | "
            f"{row['final_loss']:.3f} | {beats} |"
        )
    for row in rows:
        if row["method"] == "untrained (random init)":
            print(
                f"| untrained (random init) | {row['model']} | - | {row['knn']:.3f} "
                f"| {row['linear']:.3f} | - | {row['peak_mb']:.0f} | - | - | "
                f"{'yes' if row['knn'] > baseline['knn'] else 'no'} |"
            )
    print(
        f"| raw pixels | - | - | {baseline['knn']:.3f} | {baseline['linear']:.3f} "
        "| - | - | - | - | - |"
    )


def _read_jsonl(path: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The header and rows saved by ``--jsonl`` (the last header wins)."""
    header: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                if "header" in record:
                    header = record["header"]
                else:
                    rows.append(record)
    return header, rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.one:
        print(json.dumps(run_method(args)))
        return
    header = {
        key: getattr(args, key)
        for key in (
            "epochs",
            "train_samples",
            "test_samples",
            "model",
            "width",
            "vit_model",
            "batch_size",
            "device",
        )
    }
    header["date"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header["load_start"] = os.getloadavg()[0]
    if args.table_from:
        # Rows of runs that were stopped (or split over processes) have no header or raw
        # pixels row yet: this run's arguments stand in, and raw pixels are scored now.
        saved_header, saved = _read_jsonl(args.table_from)
        if not any(row["method"] == "raw pixels" for row in saved):
            saved.append(raw_pixels(args.train_samples, args.test_samples))
        if not any(row["method"] == "untrained (random init)" for row in saved):
            saved.append(untrained(args))
        print_table(saved, {**header, "load_end": header["load_start"], **saved_header})
        return

    def save(record: dict[str, Any]) -> None:
        if args.jsonl:
            with open(args.jsonl, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    rows = []
    passthrough = list(argv if argv is not None else sys.argv[1:])
    fork = not args.no_fork and "fork" in multiprocessing.get_all_start_methods()
    if fork:
        # Everything the children share, loaded before forking; one thread, so that no
        # OpenMP pool exists in the parent when it forks.
        torch.set_num_threads(1)
        for name in args.methods:
            get_method(name)
        _data("train"), _data("test")
    for name in args.methods:
        if fork:
            result = _forked(args, name)
            if isinstance(result, str):
                print(f"{name}: failed\n{result[-2000:]}", file=sys.stderr)
                continue
            rows.append(result)
            save(rows[-1])
            print(f"done: {name} ({os.getloadavg()[0]:.2f} load)", file=sys.stderr)
            continue
        cmd = [sys.executable, os.path.abspath(__file__), *passthrough, "--one", name]
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, check=False, timeout=args.timeout or None
            )
        except subprocess.TimeoutExpired:
            print(f"{name}: stopped after --timeout {args.timeout:g} s", file=sys.stderr)
            continue
        if out.returncode != 0:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        save(rows[-1])
        print(f"done: {name} ({os.getloadavg()[0]:.2f} load)", file=sys.stderr)
    rows.append(untrained(args))
    save(rows[-1])
    rows.append(raw_pixels(args.train_samples, args.test_samples))
    save(rows[-1])
    header["load_end"] = os.getloadavg()[0]
    save({"header": header})
    print_table(rows, header)


if __name__ == "__main__":
    main()
