"""File opens per input file and wall time of the check + embed steps of ``selfsup run``.

Issue 14 ("the manifest is the dataset"): the check step decodes every file once and writes
``data/manifest.jsonl``; later steps should read samples through it instead of listing the
folder and probing every file again. This benchmark measures that:

* **opens per file**: every ``open`` audit event (:func:`sys.addaudithook`) with a mode (one
  per ``open()``; the ``os.open`` of an opener has none) of a path under the input folder
  during one in-process ``selfsup run``, divided by the number of input files; also the
  folder listings (``os.scandir``/``os.listdir`` events) under it. The run
  uses ``num_workers=0`` (check in-process) and ``lightly.loader.num_workers=0`` (loading
  in-process) so that the hook sees every Python-level open; PyAV opens videos from C, which
  no audit hook sees, so video opens are not counted.
* **check + embed wall time**: ``job.step_durations_s`` of ``report.json``.

The input is ``--count`` small images (PNG and JPEG, in ``--classes`` subfolders) plus
``--videos`` short MP4s; the model is a randomly initialised, small ResNet saved as a
checkpoint once, and the run embeds with it (``enable_training=false``), so training does not
dominate. Each measurement runs in a fresh subprocess: the source tree under test is put first
on ``PYTHONPATH``, so ``--src`` runs another checkout (e.g. ``git worktree add /tmp/base
<commit>``) on the same input, interleaved A B A B with this tree. Printed: per run and
median, opens per file, listings, check and embed seconds, the ratio B/A and the load average.

Usage::

    python benchmarks/run_io.py --src /tmp/base              # A = /tmp/base, B = this tree
    python benchmarks/run_io.py --count 2000 --rounds 1      # this tree only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent

#: Small model and input so embedding costs milliseconds per image, not training time.
MODEL = {"name": "resnet-9", "width": 0.125, "num_ftrs": 16, "out_dim": 16}
INPUT_SIZE = 32


def make_input(root: Path, count: int, classes: int, videos: int, size: int) -> int:
    """Write ``count`` images (every 4th a JPEG) in ``classes`` subfolders and ``videos`` MP4s.

    Returns the number of files written.
    """
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for k in range(count):
        folder = root / f"class_{k % classes:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if k % 4 == 3:
            image.save(folder / f"img_{k:06d}.jpg", quality=90)
        else:
            image.save(folder / f"img_{k:06d}.png")
    written = count
    if videos:
        import av

        folder = root / "videos"
        folder.mkdir(parents=True, exist_ok=True)
        for v in range(videos):
            with av.open(str(folder / f"clip_{v}.mp4"), "w") as container:
                stream = container.add_stream("mpeg4", rate=10)
                stream.width = stream.height = size
                stream.pix_fmt = "yuv420p"
                for _ in range(20):
                    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            written += 1
    return written


def make_checkpoint(path: Path) -> None:
    """Save a randomly initialised SimCLR model of :data:`MODEL` as a plain checkpoint."""
    import torch

    from selfsup.config import ModelConfig
    from selfsup.core import build_model
    from selfsup.embedding import CHECKPOINT_METADATA_KEY

    torch.manual_seed(0)
    model = build_model(ModelConfig(**MODEL), "simclr")
    metadata = {"model": MODEL, "method": "simclr", "criterion": {}, "version": 1}
    torch.save({"state_dict": model.state_dict(), CHECKPOINT_METADATA_KEY: metadata}, path)


def child(input_dir: str, output_dir: str, checkpoint: str) -> dict[str, Any]:
    """One in-process ``selfsup run``; opens and listings under ``input_dir``, step times."""
    root = os.path.realpath(input_dir) + os.sep
    opens = 0
    listings = 0
    step = "SETUP"
    by_step: dict[str, int] = {}

    def on_step(name: str) -> None:
        nonlocal step
        step = name

    def under(path: Any) -> bool:
        if isinstance(path, int) or path is None:
            return False
        try:
            text = os.fsdecode(path)
        except TypeError:
            return False
        return os.path.realpath(text).startswith(root)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal opens, listings
        # One event with a mode per open(); the os.open of its opener (safe_open's
        # regular-file check) raises a second one with mode None, not counted.
        if event == "open" and len(args) > 1 and args[1] is not None and under(args[0]):
            opens += 1
            by_step[step] = by_step.get(step, 0) + 1
        elif event in ("os.scandir", "os.listdir") and args and under(args[0]):
            listings += 1

    from selfsup.config import RunConfig, resolve
    from selfsup.curation.pipeline import run

    overrides = [
        f"input_dir={input_dir}",
        f"output_dir={output_dir}",
        f"checkpoint={checkpoint}",
        "enable_training=false",
        "num_workers=0",
        "umap=false",
        "method=coreset",
        "stopping_condition.n_samples=100",
        "lightly.loader.num_workers=0",
        "lightly.loader.batch_size=256",
        "lightly.trainer.gpus=0",
        f"lightly.collate.input_size={INPUT_SIZE}",
        *(f"lightly.model.{k}={v}" for k, v in MODEL.items()),
    ]
    cfg = resolve(RunConfig, overrides=overrides)
    sys.addaudithook(hook)
    start = time.perf_counter()
    run(cfg, overrides, progress=False, on_step=on_step)
    total = time.perf_counter() - start
    report = json.loads((Path(output_dir) / "report.json").read_text())
    durations = report["job"]["step_durations_s"]
    return {
        "opens": opens,
        "listings": listings,
        "opens_by_step": by_step,
        "check_s": durations["check"],
        "embed_s": durations["embed"],
        "total_s": total,
    }


def measure(src: Path, input_dir: Path, out: Path, checkpoint: Path) -> dict[str, Any]:
    """Run :func:`child` in a subprocess with ``src/src`` first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(src / "src"), env.get("PYTHONPATH", "")])
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(input_dir),
        str(out),
        str(checkpoint),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"run with {src} failed:\n{proc.stderr[-4000:]}")
    last = proc.stdout.strip().splitlines()[-1]
    result: dict[str, Any] = json.loads(last)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000, help="images to generate")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--classes", type=int, default=10, help="subfolders (classes)")
    parser.add_argument("--videos", type=int, default=2, help="20-frame MP4s to add")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (interleaved)")
    parser.add_argument("--src", type=Path, default=None, help="checkout to compare (A)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return

    trees: list[tuple[str, Path]] = []
    if args.src is not None:
        trees.append(("A " + str(args.src), args.src.resolve()))
    trees.append(("B " + str(HERE), HERE))
    with tempfile.TemporaryDirectory(prefix="run_io_") as tmp:
        base = Path(tmp)
        input_dir = base / "input"
        n_files = make_input(input_dir, args.count, args.classes, args.videos, args.size)
        checkpoint = base / "model.ckpt"
        make_checkpoint(checkpoint)
        print(
            f"{n_files} input files ({args.count} images, {args.videos} videos), "
            f"{args.size}x{args.size}; loadavg before {os.getloadavg()}"
        )
        results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
        for r in range(args.rounds):
            for name, src in trees:
                out = base / f"out_{r}_{name[0]}"
                res = measure(src, input_dir, out, checkpoint)
                results[name].append(res)
                print(
                    f"round {r} {name}: opens/file {res['opens'] / n_files:.2f} "
                    f"listings {res['listings']} check {res['check_s']:.2f} s "
                    f"embed {res['embed_s']:.2f} s total {res['total_s']:.2f} s "
                    f"loadavg {os.getloadavg()}\n  opens by step: {res['opens_by_step']}",
                    flush=True,
                )
        medians: dict[str, dict[str, float]] = {}
        for name, runs in results.items():
            medians[name] = {
                key: statistics.median(run[key] for run in runs)
                for key in ("opens", "listings", "check_s", "embed_s", "total_s")
            }
            m = medians[name]
            print(
                f"median {name}: opens/file {m['opens'] / n_files:.2f} listings "
                f"{m['listings']:.0f} check+embed {m['check_s'] + m['embed_s']:.2f} s "
                f"(check {m['check_s']:.2f}, embed {m['embed_s']:.2f})"
            )
        if len(trees) == 2:
            a, b = (medians[name] for name, _ in trees)
            print(
                f"ratio B/A: opens {b['opens'] / max(a['opens'], 1):.3f}, check+embed "
                f"{(b['check_s'] + b['embed_s']) / (a['check_s'] + a['embed_s']):.3f}"
            )
        print(f"loadavg after {os.getloadavg()}")


if __name__ == "__main__":
    main()
