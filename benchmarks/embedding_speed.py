"""Embedding images/s: selfsup's default input path vs the reference library's (issue 16).

Arms, each embedding the same images with the same ResNet-18 (torchvision's, random weights
from seed 0, ``fc`` removed), the same batch size and the same number of loader workers:

* ``selfsup``: the default embed step, ``selfsup.core.build_embed_loader(decode="uint8")``
  (torchvision decoding to uint8, one resize, normalised on the device) and
  ``SelfSupervisedEmbedding.embed`` (inference mode, ``embedding.precision=auto``);
* ``lightly``: lightly 1.5.0's documented pipeline, ``lightly.data.LightlyDataset`` with
  torchvision ``Resize((S, S))``, ``ToTensor``, ``Normalize`` and
  ``lightly.embedding.SelfSupervisedEmbedding.embed``. lightly is not a dependency; install
  it aside (``pip install --no-deps --target /tmp/lightly_ref lightly==1.5.0 lightly_utils
  aenum omegaconf antlr4-python3-runtime==4.9.3 hydra-core``) and pass ``--lightly
  /tmp/lightly_ref``. Without it the arm is skipped with a message and ``selfsup`` is compared
  with ``pil``;
* ``pil``: selfsup's per-image path (``embedding.decode=pil``: PIL ``Resize``, ``ToTensor``,
  ``Normalize`` in the loader), the path before issue 16;
* ``selfsup-compile`` (``--compile``, instead of the reference): the default embed step with
  ``model.compile=true`` (the backbone compiled in place by
  ``selfsup.models.compile.compile_method_model``, inductor, static shapes), compared with
  ``selfsup``. Its untimed warm-up (one full batch) pays the compilation, printed as
  ``warm-up``; a smaller last batch is padded to the full size, as ``selfsup embed`` does.

Data: ``--fmnist N`` Fashion-MNIST test PNGs (28 px, exported with ``fashion_mnist.py``) and
``--jpegs N`` random-texture 224-px JPEGs written here. Every arm runs in its own process
(lightly 1.5.0 needs pydantic v1 and numpy<2 names, shimmed only in its process), A B A B
interleaved, ``--rounds`` times; each process embeds a few images first (not timed). Prints
images/s per run, the ratio selfsup / reference per round and ``os.getloadavg()``.
``--input-only`` times the input path alone: the loader's batches copied to the device and,
for uint8 batches, normalised there; no model.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/embedding_speed.py --lightly /tmp/lightly_ref
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np

HERE = Path(__file__).resolve().parent

#: ``--input-only``: time the loader (decode, resize, batch, copy, normalise), no model.
INPUT_ONLY = False


def write_jpegs(root: Path, n: int, side: int = 224, seed: int = 0) -> None:
    """``n`` JPEGs of ``side`` px in 4 class folders: smooth random colour fields plus noise
    (JPEG sizes like photos', not like flat colours)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        folder = root / f"class_{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((side, side), Image.Resampling.BICUBIC)
        noisy = np.asarray(image, dtype=np.int16) + rng.integers(-20, 21, size=(side, side, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(
            folder / f"img_{i:05d}.jpg", quality=90
        )


def _model() -> Any:
    import torch
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18()
    net.fc = torch.nn.Identity()
    return net


def _arm_selfsup(
    folder: str,
    side: int,
    batch: int,
    workers: int,
    device: str,
    decode: Literal["uint8", "pil"],
    compiled: bool = False,
) -> int:
    import torch
    from torch import nn

    from selfsup.config.lightly_config import LoaderConfig
    from selfsup.core import build_embed_loader
    from selfsup.embedding import SelfSupervisedEmbedding

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = _model()

    model = Wrapped().to(device)
    if compiled:
        from selfsup.models.compile import compile_method_model

        compile_method_model(model, True, what="the benchmark model", pad_batches=True)
    cfg = LoaderConfig(batch_size=batch, num_workers=workers)
    loader = build_embed_loader(
        folder,
        cfg,
        side,
        decode=decode,
        pin_memory=device == "cuda",
    )
    if INPUT_ONLY:
        from selfsup.embedding.embedding import model_input, split_batch

        n = 0
        for batch_ in loader:  # the input path alone: load, copy, normalise
            images = model_input(split_batch(batch_)[0], torch.device(device))
            n += int(images.shape[0])
        return n
    embedding = SelfSupervisedEmbedding(
        model, nn.Identity(), torch.optim.SGD(model.parameters()), loader
    )
    emb, _, _ = embedding.embed(loader, device=device, progress=False)
    return int(emb.shape[0])


def _arm_lightly(folder: str, side: int, batch: int, workers: int, device: str) -> int:
    import torch
    import torchvision.transforms as T
    from torch import nn

    # lightly 1.5.0 predates pydantic 2, numpy 2 and torchvision 0.29: _lightly_ref shims the
    # names it needs, in this process only.
    from _lightly_ref import import_lightly

    lightly = import_lightly()
    if lightly is None:
        raise SystemExit("the lightly arm needs lightly 1.5.0 on the path (--lightly)")
    LightlyDataset = lightly.data.LightlyDataset
    SelfSupervisedEmbedding = lightly.embedding.SelfSupervisedEmbedding

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = _model()

    model = Wrapped().to(device)
    transform = T.Compose(
        [
            T.Resize((side, side)),
            T.ToTensor(),
            T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        ]
    )
    dataset = LightlyDataset(input_dir=folder, transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=False, num_workers=workers
    )
    if INPUT_ONLY:
        return sum(int(images.to(device).shape[0]) for images, _, _ in loader)
    embedding = SelfSupervisedEmbedding(model, None, None, None)
    emb, _, _ = embedding.embed(loader, device=torch.device(device))
    return int(emb.shape[0])


def run_arm(arm: str, folder: str, side: int, batch: int, workers: int, device: str) -> int:
    if arm == "lightly":
        return _arm_lightly(folder, side, batch, workers, device)
    return _arm_selfsup(
        folder,
        side,
        batch,
        workers,
        device,
        "pil" if arm == "pil" else "uint8",
        compiled=arm == "selfsup-compile",
    )


def child(args: argparse.Namespace) -> None:
    """One timed embedding in this process; prints a JSON line."""
    import shutil

    import torch

    global INPUT_ONLY
    INPUT_ONLY = args.input_only
    torch.set_num_threads(args.threads or torch.get_num_threads())
    # Warm-up: the first batches of a fresh process pay for allocations and kernels.
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm"
        names = sorted(Path(args.folder).rglob("*.*"))[: args.batch]
        for k, name in enumerate(names):
            target = warm / "c" / f"{k:03d}{name.suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(name, target)
        start = time.perf_counter()
        run_arm(args.arm, str(warm), args.side, args.batch, 0, args.device)
        warm_seconds = time.perf_counter() - start
    start = time.perf_counter()
    n = run_arm(args.arm, args.folder, args.side, args.batch, args.workers, args.device)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {"arm": args.arm, "n": n, "seconds": seconds, "per_s": n / seconds,
             "warm_s": warm_seconds}
        )
    )  # fmt: skip


def _spawn(arm: str, folder: Path, side: int, args: argparse.Namespace) -> dict[str, Any] | None:
    env = dict(os.environ)
    paths = [str(HERE.parent / "src")]
    if arm == "lightly":
        paths.insert(0, args.lightly)
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    env["PYTHONWARNINGS"] = "ignore"
    command = [
        sys.executable, __file__, "--child", "--arm", arm, "--folder", str(folder),
        "--side", str(side), "--batch", str(args.batch), "--workers", str(args.workers),
        "--device", args.device, "--threads", str(args.threads),
    ] + (["--input-only"] if args.input_only else [])  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        print(f"  {arm} failed (exit {done.returncode}): {done.stderr.strip()[-600:]}")
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def lightly_available(path: str) -> bool:
    return bool(path) and (Path(path) / "lightly" / "__init__.py").is_file()


def compare(name: str, folder: Path, side: int, args: argparse.Namespace) -> None:
    ours = "selfsup"
    if args.compile:  # model.compile on (A) against off (B), same everything else
        ours, reference = "selfsup-compile", "selfsup"
    elif lightly_available(args.lightly):
        reference = "lightly"
    else:
        reference = "pil"
        print("lightly 1.5.0 not found (--lightly): comparing with selfsup's per-image PIL path")
    print(f"\n== {name}: {folder} at {side}x{side}, batch {args.batch}, "
          f"{args.workers} loader workers, {args.device} ==")  # fmt: skip
    ratios: list[float] = []
    for round_ in range(args.rounds):
        results = {}
        for arm in (ours, reference):
            load = tuple(round(x, 2) for x in os.getloadavg())
            result = _spawn(arm, folder, side, args)
            if result is None:
                return
            results[arm] = result
            print(f"  round {round_ + 1} {arm:8s} {result['per_s']:8.1f} images/s "
                  f"({result['n']} in {result['seconds']:.1f} s; warm-up "
                  f"{result['warm_s']:.1f} s) loadavg {load}")  # fmt: skip
        ratios.append(results[ours]["per_s"] / results[reference]["per_s"])
        print(f"  round {round_ + 1} ratio {ours} / {reference}: {ratios[-1]:.2f}x")
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    median = float(np.median(ratios))
    print(f"  {name}: median ratio {ours} / {reference} = {median:.2f}x (rounds: {rounds}); "
          f"loadavg {os.getloadavg()}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fmnist", type=int, default=2000, help="Fashion-MNIST PNGs (0: skip)")
    parser.add_argument("--fmnist-side", type=int, default=32, help="side to embed them at")
    parser.add_argument("--jpegs", type=int, default=500, help="224-px JPEGs (0: skip)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=2, help="loader workers, both arms")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--lightly", default="", help="folder with lightly 1.5.0 installed")
    parser.add_argument(
        "--input-only", action="store_true", help="time the input path alone (no model)"
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="compare model.compile=true (selfsup-compile) with the default instead of a reference",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--arm", default="selfsup", help=argparse.SUPPRESS)
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    parser.add_argument("--side", type=int, default=32, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory(prefix="selfsup-embed-bench-") as tmp:
        if args.fmnist:
            from fashion_mnist import export_images

            fmnist = Path(tmp) / "fmnist"
            export_images(fmnist, split="test", n=args.fmnist, seed=0)
            compare("Fashion-MNIST PNGs", fmnist, args.fmnist_side, args)
        if args.jpegs:
            jpegs = Path(tmp) / "jpegs"
            write_jpegs(jpegs, args.jpegs)
            compare("224-px JPEGs", jpegs, 224, args)


if __name__ == "__main__":
    main()
