"""Training speed: selfsup's default input path against the reference library's (issue 16).

    python benchmarks/train_speed.py                    # both parts, 2 interleaved rounds
    python benchmarks/train_speed.py --part loop --steps 6 --rounds 3
    python benchmarks/train_speed.py --part cache --steps 4 --rounds 3
    python benchmarks/train_speed.py --part loop --compile --steps 4 --rounds 3
    PYTHONPATH=/tmp/lightly_ref python benchmarks/train_speed.py   # with lightly 1.5.0

Part ``loop``: training images/s of one training loop fed three ways, same model and loop.

* selfsup: the library default, ``selfsup.core.build_train_loader`` (method simclr,
  ``collate.input_size=28``): the loader's workers decode uint8 images resized once, and
  the SimCLR views are made in batches where the model runs
  (``selfsup.embedding._method.train_views``, what ``MethodEmbedding`` calls); the step in
  the default ``trainer.precision=auto`` (bf16 autocast where the CPU has bf16
  instructions, as Lightning's ``bf16-mixed`` runs it; else float32);
* selfsup float32: the same input path, the step in float32 (``trainer.precision=32``), so
  that the input path's share and the arithmetic's share of the gain can be told apart (the
  same arm as the default where auto is float32: then it is left out);
* selfsup per-image: the default with ``loader.augment=workers`` (PIL views in the workers,
  the path before issue 16, measured at 0.87-1.0x lightly's images/s in the issue);
* model alone (``--model-alone``): the same model and loop on one fixed pair of views made
  once, no input path, in the default's arithmetic: the time of forward + backward + step,
  the floor of the default arm;
* lightly: lightly 1.5.0's documented pipeline, ``LightlyDataset`` with its
  ``SimCLRTransform(input_size=28)`` applied per image (PIL) in DataLoader workers and
  ``MultiViewCollate``, in float32 (lightly's default ``trainer.precision`` is 32).

Both train ResNet-18 at width 0.5 (each library's ``ResNetGenerator``, the same
architecture) with a SimCLR projection head and NT-Xent loss (each library's), batch 256,
SGD, on the same Fashion-MNIST PNGs (28 px, exported with ``fashion_mnist.py``), with
``--workers`` loader workers. Each arm runs ``--steps`` timed steps after one untimed
warm-up step (which starts the workers); arms alternate A B A B so that a change of the
machine's load hits both; every line prints the 1-minute load average.

With ``--compile`` the loop part times two arms only: selfsup's default and the same with
``model.compile=true`` (the backbone compiled in place by
``selfsup.models.compile.compile_method_model``, inductor), starting from the same weights;
their untimed warm-up step is timed apart and printed: the compilation paid once.

Part ``cli``: wall time of ``selfsup train`` against ``lightly-ssl-train`` with the same keys
(``trainer.max_epochs=1 loader.batch_size=128 collate.input_size=32 model.name=resnet-18
loader.num_workers=2``) on ``--cli-images`` Fashion-MNIST PNGs, interleaved.

Part ``cache`` (run alone: ``--part cache``): epochs 2+ of selfsup's default loader
without and with ``loader.cache_dir`` (the cache filled and published by one untimed first
epoch), A B A B: the images/s of the loader alone (``--input-steps`` source batches of a
fresh pass: the workers' decoding or cache reads), of the input path (``--input-steps``
batches of views, no model) and of the training loop (``--steps`` steps, model included).

The lightly arms are skipped, with a message, when lightly is not importable. It must not be
installed into selfsup's environment: ``pip install --no-deps --target /tmp/lightly_ref
lightly==1.5.0 lightly_utils aenum hydra-core omegaconf antlr4-python3-runtime==4.9.3`` and run
with ``PYTHONPATH=/tmp/lightly_ref``; ``_lightly_ref`` shims what lightly 1.5.0 needs of
pydantic 1, numpy 1 and older torchvision, in the benchmark's processes only (``lightly-train``,
the 1.5.0 name of ``lightly-ssl-train``, runs as ``python -c`` with the same shims).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _lightly_ref import LIGHTLY_TRAIN_SOURCE, import_lightly
from fashion_mnist import export_images

BATCH = 256
INPUT_SIZE = 28
WIDTH = 0.5


def _load() -> float:
    return os.getloadavg()[0]


def _lightly() -> Any | None:
    """lightly when it imports (through ``_lightly_ref``'s shims); None, with why, otherwise.
    selfsup's modules are imported first: the pydantic swap lasts for lightly's import only."""
    import selfsup.config
    import selfsup.core  # noqa: F401

    return import_lightly()


def _selfsup_arm(
    folder: Path, workers: int, augment: str, cache_dir: str = ""
) -> tuple[Iterator[list[torch.Tensor]], nn.Module]:
    """selfsup's build_train_loader: ``augment="device"`` (the default) yields uint8 sources
    whose views are made in the loop; ``"workers"`` augments per image in the workers.
    ``cache_dir``: ``loader.cache_dir``; one untimed pass over the loader (epoch 1, without
    the model) fills and publishes the cache, so the arm times epochs 2+."""
    batches, model, _ = _selfsup_arm_and_loader(folder, workers, augment, cache_dir)
    return batches, model


def _selfsup_arm_and_loader(
    folder: Path, workers: int, augment: str, cache_dir: str = ""
) -> tuple[Iterator[list[torch.Tensor]], nn.Module, Any]:
    """:func:`_selfsup_arm` and its DataLoader."""
    from selfsup.config import CollateConfig, LoaderConfig
    from selfsup.core import build_train_loader
    from selfsup.embedding._method import loader_device_views, train_views
    from selfsup.loss import NTXentLoss
    from selfsup.models import ResNetGenerator
    from selfsup.models.modules import SimCLRProjectionHead

    loader = build_train_loader(
        str(folder),
        LoaderConfig.model_validate(
            {
                "batch_size": BATCH,
                "num_workers": workers,
                "augment": augment,
                "cache_dir": cache_dir,
            }
        ),
        CollateConfig(input_size=INPUT_SIZE),
        method="simclr",
    )
    device_views = loader_device_views(loader)
    if (device_views is None) != (augment == "workers"):
        raise RuntimeError(f"build_train_loader did not take the {augment} path for simclr")
    if cache_dir:
        for _ in loader:  # epoch 1: the workers fill the cache, the loader publishes it
            pass
        if not getattr(getattr(loader.dataset, "cache", None), "complete", False):
            raise RuntimeError(f"the loader did not publish its cache in {cache_dir}")
    model = _Model(ResNetGenerator("resnet-18", width=WIDTH), SimCLRProjectionHead, NTXentLoss)

    def batches() -> Iterator[list[torch.Tensor]]:
        while True:
            for batch in loader:
                yield train_views(batch, device_views, "cpu")

    return batches(), model, loader


def _lightly_arm(
    lightly: Any, folder: Path, workers: int
) -> tuple[Iterator[list[torch.Tensor]], nn.Module]:
    """lightly 1.5.0's documented pipeline: per-image SimCLRTransform in the workers."""
    from lightly.data import LightlyDataset  # type: ignore[import-not-found]
    from lightly.data.multi_view_collate import MultiViewCollate  # type: ignore[import-not-found]
    from lightly.loss import NTXentLoss  # type: ignore[import-not-found]
    from lightly.models import ResNetGenerator  # type: ignore[import-not-found]
    from lightly.models.modules import SimCLRProjectionHead  # type: ignore[import-not-found]
    from lightly.transforms import SimCLRTransform  # type: ignore[import-not-found]

    dataset = LightlyDataset(str(folder), transform=SimCLRTransform(input_size=INPUT_SIZE))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        collate_fn=MultiViewCollate(),
        persistent_workers=workers > 0,
    )
    model = _Model(ResNetGenerator("resnet-18", width=WIDTH), SimCLRProjectionHead, NTXentLoss)

    def batches() -> Iterator[list[torch.Tensor]]:
        while True:
            for views, _, _ in loader:
                yield list(views)

    return batches(), model


class _Model(nn.Module):
    """ResNet-18 features -> SimCLR projection head -> NT-Xent of two views."""

    def __init__(self, resnet: nn.Module, head: Callable[..., nn.Module], loss: Any) -> None:
        super().__init__()
        linear = resnet.linear
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"expected a ResNetGenerator with a linear head, got {linear!r}")
        dim = linear.in_features
        resnet.linear = nn.Identity()
        self.backbone = resnet
        self.head = head(dim, dim, 128)
        self.loss = loss()

    def forward(self, views: list[torch.Tensor]) -> torch.Tensor:
        z0, z1 = (self.head(self.backbone(v).flatten(1)) for v in views[:2])
        out: torch.Tensor = self.loss(z0, z1)
        return out


def default_dtype() -> torch.dtype | None:
    """The autocast dtype of ``selfsup train``'s default ``trainer.precision=auto`` on the
    CPU: bfloat16 where it has bf16 instructions, else None (float32)."""
    from selfsup.embedding._trainer import training_autocast_dtype

    return training_autocast_dtype("auto", on_cpu=True)


def _rate(
    batches: Iterator[list[torch.Tensor]],
    model: nn.Module,
    steps: int,
    dtype: torch.dtype | None = None,
) -> float:
    """Images/s of ``steps`` training steps (data wait + views + forward + backward), the
    forward pass and loss under CPU autocast to ``dtype`` (None: float32)."""
    from selfsup.embedding._trainer import autocast_or_float32

    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)
    start = time.perf_counter()
    for _ in range(steps):
        views = next(batches)
        with autocast_or_float32("cpu", dtype):
            loss = model(views)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return steps * BATCH / (time.perf_counter() - start)


def _model_alone_arm(folder: Path, workers: int) -> tuple[Iterator[list[torch.Tensor]], nn.Module]:
    """The same model and loop fed one fixed pair of views (made once by selfsup's default
    path): forward + backward + SGD step alone, the images/s no input path can beat."""
    batches, model = _selfsup_arm(folder, workers, "device")
    views = [v.clone() for v in next(batches)]
    return itertools.repeat(views), model


def _compiled_arm(
    folder: Path, workers: int, like: nn.Module
) -> tuple[Iterator[list[torch.Tensor]], nn.Module]:
    """selfsup's default arm with ``model.compile=true``, from ``like``'s weights."""
    from selfsup.models.compile import compile_method_model

    batches, model = _selfsup_arm(folder, workers, "device")
    model.load_state_dict(like.state_dict())
    return batches, compile_method_model(model, True, what="the benchmark model")


def part_loop(
    folder: Path, steps: int, rounds: int, workers: int, model_alone: bool, compile_: bool = False
) -> None:
    dtype = default_dtype()
    print(f"selfsup default arithmetic: {'bf16 autocast' if dtype else 'float32'}", flush=True)
    # Each arm: its batches, its model and the autocast dtype of its steps (None: float32).
    default = _selfsup_arm(folder, workers, "device")
    arms: dict[str, tuple[Iterator[list[torch.Tensor]], nn.Module, torch.dtype | None]] = {
        "selfsup default": (*default, dtype),
    }
    if compile_:
        arms["selfsup compiled"] = (*_compiled_arm(folder, workers, default[1]), dtype)
    else:
        if dtype is not None:
            arms["selfsup float32"] = (*_selfsup_arm(folder, workers, "device"), None)
        arms["selfsup per-image"] = (*_selfsup_arm(folder, workers, "workers"), dtype)
        lightly = _lightly()
        if lightly is None:
            print("the lightly arm is skipped (see the docstring)")
        else:
            arms[f"lightly {lightly.__version__}"] = (
                *_lightly_arm(lightly, folder, workers),
                None,
            )
        if model_alone:
            arms["model alone"] = (*_model_alone_arm(folder, workers), dtype)
    for name, (batches, model, arm_dtype) in arms.items():
        start = time.perf_counter()
        # warm-up: workers start, first allocations (compilation)
        _rate(batches, model, 1, arm_dtype)
        print(
            f"  warm-up step: {name:<16} {time.perf_counter() - start:8.1f} s  "
            f"load average {_load():.2f}",
            flush=True,
        )
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for round_index in range(rounds):
        for name, (batches, model, arm_dtype) in arms.items():
            rate = _rate(batches, model, steps, arm_dtype)
            rates[name].append(rate)
            print(
                f"  round {round_index + 1}: {name:<16} {rate:8.1f} images/s  "
                f"load average {_load():.2f}",
                flush=True,
            )
    medians = {name: statistics.median(r) for name, r in rates.items()}
    line = ", ".join(f"{name} {rate:.1f} images/s" for name, rate in medians.items())
    ours = medians["selfsup default"]
    ratios = ", ".join(
        f"{ours / rate:.2f}x {name}" for name, rate in medians.items() if name != "selfsup default"
    )
    print(f"training loop (medians of {rounds}): {line}; selfsup default = {ratios}", flush=True)


def _views_rate(batches: Iterator[list[torch.Tensor]], steps: int) -> float:
    """Images/s of the input path alone: ``steps`` batches of views (the wait for the
    loader's workers plus the views made in the loop), no model."""
    start = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return steps * BATCH / (time.perf_counter() - start)


def _loader_rate(loader: Any, steps: int) -> float:
    """Images/s of ``steps`` source batches of the loader alone: decoding (or cache reads)
    in its workers, no views, no model; a fresh pass each time (the first batches wait for
    the workers, as at every epoch start)."""
    start = time.perf_counter()
    n = sum(1 for _ in itertools.islice(loader, steps))
    return n * BATCH / (time.perf_counter() - start)


def part_cache(folder: Path, steps: int, input_steps: int, rounds: int, workers: int) -> None:
    """Epochs 2+ of selfsup's default loader without and with ``loader.cache_dir`` (filled
    by an untimed first epoch), A B A B: images/s of the loader alone (``input_steps`` source
    batches), of the input path (``input_steps`` batches of views, no model) and of the
    training loop (``steps`` steps, the model included)."""
    with tempfile.TemporaryDirectory(prefix="train-speed-cache-") as cache_dir:
        arms = {
            "no cache": _selfsup_arm_and_loader(folder, workers, "device"),
            "cache": _selfsup_arm_and_loader(folder, workers, "device", cache_dir),
        }
        for batches, model, _ in arms.values():
            _rate(batches, model, 1)  # warm-up: workers start, first allocations
        rates: dict[tuple[str, str], list[float]] = {}
        for round_index in range(rounds):
            for name, (batches, model, loader) in arms.items():
                for what, rate in (
                    ("loader", _loader_rate(loader, input_steps)),
                    ("input path", _views_rate(batches, input_steps)),
                    ("loop", _rate(batches, model, steps)),
                ):
                    rates.setdefault((what, name), []).append(rate)
                    print(
                        f"  round {round_index + 1}: {what:<10} {name:<8} {rate:8.1f} images/s  "
                        f"load average {_load():.2f}",
                        flush=True,
                    )
    for what in ("loader", "input path", "loop"):
        without = statistics.median(rates[(what, "no cache")])
        with_cache = statistics.median(rates[(what, "cache")])
        print(
            f"{what} (medians of {rounds}), epochs 2+: no cache {without:.1f} images/s, "
            f"cache {with_cache:.1f} images/s; cache = {with_cache / without:.2f}x",
            flush=True,
        )


CLI_KEYS = [
    "trainer.max_epochs=1",
    "loader.batch_size=128",
    "collate.input_size=32",
    "model.name=resnet-18",
    "loader.num_workers=2",
]


def _cli_commands(folder: Path, out: Path) -> dict[str, list[str]]:
    commands = {
        "selfsup train": [
            sys.executable,
            "-c",
            "import sys; from selfsup.cli.main import main; sys.exit(main())",
            "train",
            f"input_dir={folder}",
            f"output_dir={out / 'selfsup'}",
            *CLI_KEYS,
        ]
    }
    if _lightly() is not None:
        commands["lightly-ssl-train"] = [
            sys.executable,
            "-c",
            LIGHTLY_TRAIN_SOURCE,
            f"input_dir={folder}",
            f"hydra.run.dir={out / 'lightly'}",
            *CLI_KEYS,
        ]
    else:
        print("lightly is not importable: the lightly-ssl-train arm is skipped")
    return commands


def part_cli(folder: Path, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="train-speed-") as tmp:
        commands = _cli_commands(folder, Path(tmp))
        times: dict[str, list[float]] = {name: [] for name in commands}
        for round_index in range(rounds):
            for name, command in commands.items():
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                seconds = time.perf_counter() - start
                if done.returncode != 0:
                    print(done.stdout[-2000:], done.stderr[-4000:], sep="\n")
                    raise SystemExit(f"{name} failed (exit {done.returncode})")
                times[name].append(seconds)
                print(
                    f"  round {round_index + 1}: {name:<18} {seconds:7.1f} s  "
                    f"load average {_load():.2f}",
                    flush=True,
                )
    medians = {name: statistics.median(t) for name, t in times.items()}
    line = ", ".join(f"{name} {t:.1f} s" for name, t in medians.items())
    if len(medians) == 2:
        ours, theirs = medians.values()
        line += f"; lightly takes {theirs / ours:.2f}x selfsup's time"
    print(f"command line (medians of {rounds}): {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument(
        "--part",
        choices=["loop", "cli", "both", "cache"],
        default="both",
        help="cache: epochs 2+ without and with loader.cache_dir (not part of both)",
    )
    parser.add_argument("--steps", type=int, default=4, help="timed steps per arm and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (loop)")
    parser.add_argument("--images", type=int, default=4096, help="PNGs for the loop part")
    parser.add_argument("--cli-images", type=int, default=2000, help="PNGs for the cli part")
    parser.add_argument(
        "--model-alone",
        action="store_true",
        help="loop part: also time the model on one fixed batch (no input path)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="loop part: selfsup's default with and without model.compile=true, only",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the loop")
    parser.add_argument(
        "--input-steps", type=int, default=16, help="cache part: batches per input-path timing"
    )
    args = parser.parse_args()
    for name in ("steps", "rounds", "images", "cli_images", "threads", "input_steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"train speed; torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} "
        f"CPUs; load average {os.getloadavg()}",
        flush=True,
    )
    tmp = Path(tempfile.mkdtemp(prefix="train-speed-data-"))
    try:
        if args.part in ("loop", "both"):
            folder = export_images(tmp / "loop", split="train", n=args.images)
            part_loop(folder, args.steps, args.rounds, args.workers, args.model_alone, args.compile)
        if args.part == "cache":
            folder = export_images(tmp / "loop", split="train", n=args.images)
            part_cache(folder, args.steps, args.input_steps, args.rounds, args.workers)
        if args.part in ("cli", "both"):
            folder = export_images(tmp / "cli", split="train", n=args.cli_images)
            part_cli(folder, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
