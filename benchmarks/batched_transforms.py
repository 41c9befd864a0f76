"""Images per second of SimCLRTransform: per-image (PIL) against batched (tensor) views.

    python benchmarks/batched_transforms.py                  # 256 at 32 px, 64 at 224 px, CPU
    python benchmarks/batched_transforms.py --rounds 5 --device cuda

Per-image is what a data loader worker does today: ``SimCLRTransform(input_size=s)`` called
on every PIL image (two views each: crop, flip, colour jitter, grayscale, blur with PIL, then
to tensor and normalise), and the views stacked into two ``(B, 3, s, s)`` batches as the
collate function does. Batched is ``BatchedMultiViewTransform(SimCLRTransform(input_size=s))``
on the same images as one uint8 batch ``(B, 3, s, s)`` (what decoding and collating give), on
``--device``: parameters drawn with ``sample_batch`` on the CPU, pixels processed in a few
batched tensor operations. Both get the same source images (random, ``s x s``); both produce
two normalised float views per image. The two paths alternate (A B A B ...) so that a change
in the machine's load hits both alike; each line gives the seconds, the images per second and
the 1-minute load average, and the summary the median rate of each path and their ratio.
One process, no DataLoader workers, ``--threads`` torch threads (default 1, what torch gives
each DataLoader worker; on a shared machine more threads than free cores make every small
tensor operation wait for the others, which can slow both paths several-fold).

``--steps`` also prints where the batched path's time goes: the seconds each step type
(crop, flip, colour jitter, ...) took per batch, summed over its chunks and views, from the
timed rounds (``to_float`` and normalisation, run between steps, are not counted).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from PIL import Image

import selfsup.transforms.batched_view as batched_view
from selfsup.transforms import SimCLRTransform
from selfsup.transforms.batched_view import BatchedMultiViewTransform


def _images(n: int, size: int, seed: int) -> tuple[list[Image.Image], torch.Tensor]:
    """``n`` random RGB images ``size x size``: as PIL images and as a uint8 batch."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return [Image.fromarray(p) for p in pixels], torch.from_numpy(pixels).permute(0, 3, 1, 2)


def _per_image(transform: SimCLRTransform, images: list[Image.Image]) -> list[torch.Tensor]:
    views = [transform(img) for img in images]
    return [torch.stack([v[i] for v in views]) for i in range(2)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _step_timer(device: torch.device, seconds: dict[str, float]) -> Iterator[None]:
    """Add the time of every batched step (``batched_view._apply``) to ``seconds[step type]``
    while the context is open (on a GPU each step is synchronised, which costs a little)."""
    original: Callable[..., torch.Tensor] = batched_view._apply

    def timed(step: Any, images: torch.Tensor, params: Any) -> torch.Tensor:
        start = time.perf_counter()
        out = original(step, images, params)
        _sync(device)
        seconds[type(step).__name__] += time.perf_counter() - start
        return out

    batched_view._apply = timed
    try:
        yield
    finally:
        batched_view._apply = original


def run_case(
    batch: int, size: int, rounds: int, device: torch.device, steps: bool = False
) -> tuple[float, float]:
    """Time both paths ``rounds`` times, interleaved; return their median images/s. With
    ``steps``, also print the batched path's seconds per step type per batch."""
    transform = SimCLRTransform(input_size=size)
    batched = BatchedMultiViewTransform(transform)
    pil_images, u8 = _images(batch, size, seed=size)
    u8 = u8.to(device)
    generator = torch.Generator().manual_seed(0)
    # One untimed call each: first-call costs (allocations, kernel selection) are not the rate.
    _per_image(transform, pil_images[:2])
    batched(u8, generator)
    _sync(device)
    rates: dict[str, list[float]] = {"per-image PIL": [], f"batched {device.type}": []}
    step_seconds: dict[str, float] = defaultdict(float)
    for round_index in range(rounds):
        for name in rates:
            start = time.perf_counter()
            if name.startswith("per-image"):
                views = _per_image(transform, pil_images)
            elif steps:
                with _step_timer(device, step_seconds):
                    views = batched(u8, generator)
                    _sync(device)
            else:
                views = batched(u8, generator)
                _sync(device)
            seconds = time.perf_counter() - start
            assert [tuple(v.shape) for v in views] == [(batch, 3, size, size)] * 2
            rates[name].append(batch / seconds)
            print(
                f"  {size:>3} px, batch {batch:>3}, round {round_index + 1}: {name:<16} "
                f"{seconds:7.3f} s  {batch / seconds:9.1f} images/s  "
                f"load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    per, bat = (statistics.median(r) for r in rates.values())
    if steps:
        parts = ", ".join(f"{name} {t / rounds:.3f}" for name, t in step_seconds.items())
        print(f"  {size:>3} px, batch {batch:>3}: batched seconds per batch by step: {parts}")
    print(
        f"{size:>3} px, batch {batch:>3}: per-image PIL {per:.1f} images/s, batched "
        f"{device.type} {bat:.1f} images/s, ratio {bat / per:.2f}x (medians of {rounds})",
        flush=True,
    )
    return per, bat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per path")
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["256x32", "64x224"],
        help="BATCHxSIZE cases (default: 256x32 64x224)",
    )
    parser.add_argument("--device", default="cpu", help="device of the batched path")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--steps", action="store_true", help="also print the batched seconds of each step"
    )
    args = parser.parse_args()
    if args.threads < 1:
        parser.error(f"--threads {args.threads}: expected an integer >= 1")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"SimCLRTransform views/s; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, batched on {device}; load average {os.getloadavg()}",
        flush=True,
    )
    for case in args.cases:
        batch_text, _, size_text = case.partition("x")
        if not (batch_text.isdigit() and size_text.isdigit()):
            parser.error(f"--cases {case!r}: expected BATCHxSIZE, e.g. 256x32")
        run_case(int(batch_text), int(size_text), args.rounds, device, args.steps)


if __name__ == "__main__":
    main()
