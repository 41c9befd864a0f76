"""Run output folders for the web app's tests and benchmark.

Two builders:

- :func:`build_small_run`: a REAL output folder of ``selfsup run`` (the pipeline itself) over
  a few dozen generated images in visually distinct classes (a red disc, a green square, a
  blue triangle, yellow stripes), with planted corrupt files and one exact duplicate.
  Embeddings are precomputed (one tight cluster per class), so nearest neighbours are
  meaningful and the run takes seconds without training a model.
- :func:`build_synthetic_run`: a format-exact output folder at scale (100,000 samples by
  default) written WITHOUT the pipeline: tiny real PNGs, the manifest, embedding CSVs,
  filename lists, selection.csv and report.json/plots/report.pdf from the report writer
  itself. The selection is random (not a coreset) so the folder is made in seconds; the
  files have the layout and formats the pipeline writes, which is what the web app reads.

Both return the run's output folder; its images lie in a sibling ``images`` folder whose
absolute path is ``report.json``'s ``job.input_dir``.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import shutil
import struct
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageEnhance

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Error, Locator, Page, Response

    from selfsup.server.testing import ServerHarness

# --------------------------------------------------------------------------- small real run

#: Class folders of the small run, each a shape in a colour no other class uses.
SMALL_CLASSES: Final[tuple[str, ...]] = ("red_disc", "green_square", "blue_triangle", "stripes")
#: Folder of the planted corrupt files (names as tests/conftest.py's write_corrupt_files).
SMALL_CORRUPT_FOLDER: Final = "broken"
SMALL_CORRUPT: Final[tuple[str, ...]] = ("truncated.jpg", "empty.png", "notimage.png")
#: The exact duplicate: a byte copy of the first image of the first class.
SMALL_DUPLICATE: Final = f"{SMALL_CLASSES[0]}/zz_copy_of_img_00.png"
SMALL_DUPLICATE_OF: Final = f"{SMALL_CLASSES[0]}/img_00.png"


def _shape_image(cls: int, variant: int, size: int, rng: np.random.Generator) -> Image.Image:
    """Image ``variant`` of class ``cls``: the class's shape and colour on a grey background,
    jittered in position and with pixel noise so no two images have identical pixels."""
    img = Image.new("RGB", (size, size), (120, 120, 120))
    draw = ImageDraw.Draw(img)
    s = size
    dx, dy = (int(v) for v in rng.integers(-s // 10, s // 10 + 1, size=2))
    box = (s // 5 + dx, s // 5 + dy, 4 * s // 5 + dx, 4 * s // 5 + dy)
    kind = cls % 4
    if kind == 0:
        draw.ellipse(box, fill=(220, 30, 30))
    elif kind == 1:
        draw.rectangle(box, fill=(30, 200, 40))
    elif kind == 2:
        draw.polygon(
            [(s // 2 + dx, s // 6 + dy), (s // 6 + dx, 5 * s // 6), (5 * s // 6 + dx, 5 * s // 6)],
            fill=(40, 60, 230),
        )
    else:
        for x in range(0, s, max(s // 6, 2)):
            draw.rectangle((x + dx % 3, 0, x + dx % 3 + max(s // 12, 1), s), fill=(240, 220, 30))
    arr = np.asarray(img, dtype=np.int16)
    noise = rng.integers(-12, 13, size=arr.shape, dtype=np.int16)
    out = np.clip(arr + noise, 0, 255).astype(np.uint8)
    # A pixel carrying the variant index keeps every image unique even if noise collided.
    out[0, 0] = (cls * 40 % 256, variant % 256, 7)
    return Image.fromarray(out, mode="RGB")


def write_small_images(
    folder: Path, n_per_class: int = 12, size: int = 32, seed: int = 0
) -> list[str]:
    """Write the small run's images, the duplicate and the corrupt files into ``folder``.

    Returns the usable image names (relative POSIX paths, sorted): the ones that enter
    selection. ``SMALL_DUPLICATE`` and the files in ``SMALL_CORRUPT_FOLDER`` come on top.
    """
    # tests/conftest.py plants the corrupt files every test uses; imported by name at run
    # time so that type-checking this module does not pull in (and re-check) conftest.
    conftest = importlib.import_module("conftest")
    write_corrupt_files: Callable[[Path, Sequence[str]], list[str]] = conftest.write_corrupt_files
    rng = np.random.default_rng(seed)
    names: list[str] = []
    for cls, name in enumerate(SMALL_CLASSES):
        sub = folder / name
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            _shape_image(cls, i, size, rng).save(sub / f"img_{i:02d}.png")
            names.append(f"{name}/img_{i:02d}.png")
    (folder / SMALL_DUPLICATE).write_bytes((folder / SMALL_DUPLICATE_OF).read_bytes())
    write_corrupt_files(folder / SMALL_CORRUPT_FOLDER, SMALL_CORRUPT)
    return sorted(names)


def cluster_embeddings(
    classes: NDArray[np.integer[Any]], n_classes: int, dim: int, seed: int, spread: float
) -> NDArray[np.float32]:
    """``(N, dim)`` float32 embeddings, row ``i`` near the centre of class ``classes[i]``.

    The centres are orthonormal (rows of a random orthogonal matrix) when ``n_classes <=
    dim``, so classes are ~1.41 apart after L2 normalisation; ``spread`` is the norm of the
    Gaussian noise added to a unit centre (0.15: tight clusters, 0.8: overlapping ones).
    """
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(dim, max(dim, n_classes))))
    centres = q.T[:n_classes] if n_classes <= dim else rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.normal(scale=spread / np.sqrt(dim), size=(len(classes), dim))
    out: NDArray[np.float32] = (centres[np.asarray(classes)] + noise).astype(np.float32)
    return out


def build_small_run(
    root: Path,
    *,
    n_per_class: int = 12,
    n_samples: int = 10,
    size: int = 32,
    seed: int = 0,
    umap: bool = False,
    extra_images: Sequence[str] = (),
    planted: Mapping[str, Callable[[Path], Image.Image]] | None = None,
    out_name: str = "out",
) -> Path:
    """Run the real pipeline over freshly generated images; returns the output folder.

    ``root/images`` holds ``len(SMALL_CLASSES) * n_per_class`` usable images plus one exact
    duplicate (:data:`SMALL_DUPLICATE`) and three corrupt files; ``root/<out_name>`` is the
    output folder of a ``selfsup run`` selecting ``n_samples`` of the usable images from
    precomputed 8-dimensional embeddings (one cluster per class). No model is trained; with
    ``umap=False`` the run takes a few seconds (mostly the report's plots).

    ``extra_images`` are further usable images (random pixels) at these relative names; the
    first part of each name must be one of :data:`SMALL_CLASSES` (its embedding cluster).
    ``planted`` maps further names (same rule) to a function of the images folder that makes
    the image, called once the class images exist: a dark image, or an edited copy of one of
    them (a near duplicate).
    """
    from selfsup.config import RunConfig, resolve
    from selfsup.curation.pipeline import run
    from selfsup.utils.io import save_embeddings

    images = root / "images"
    names = write_small_images(images, n_per_class=n_per_class, size=size, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for name in extra_images:
        pixels = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode="RGB").save(images / name)
    for name, make in (planted or {}).items():
        make(images).save(images / name)
    names = sorted([*names, *extra_images, *(planted or {})])
    labels = [SMALL_CLASSES.index(n.split("/", 1)[0]) for n in names]
    emb = cluster_embeddings(np.array(labels), len(SMALL_CLASSES), 8, seed, spread=0.15)
    csv = root / "precomputed_embeddings.csv"
    save_embeddings(csv, emb, labels, names)
    out = root / out_name
    cfg = resolve(
        RunConfig,
        overrides=[
            f"input_dir={images}",
            f"output_dir={out}",
            f"embeddings={csv}",
            f"stopping_condition.n_samples={n_samples}",
            f"umap={'true' if umap else 'false'}",
            "num_workers=0",
        ],
    )
    run(cfg, progress=False)
    return out


#: The planted images of :func:`build_explore_run`: a dark image, and a near duplicate (a
#: 10 % brighter copy) of one class image.
EXPLORE_DARK: Final = "red_disc/dark.png"
EXPLORE_COPY: Final = "green_square/copy_of_img_00.png"
EXPLORE_ORIGINAL: Final = "green_square/img_00.png"


def _dark_image(images: Path) -> Image.Image:
    rng = np.random.default_rng(5)
    return Image.fromarray(rng.integers(0, 6, size=(32, 32, 3), dtype=np.uint8), mode="RGB")


def _brighter_copy(images: Path) -> Image.Image:
    original = Image.open(images / EXPLORE_ORIGINAL).convert("RGB")
    return ImageEnhance.Brightness(original).enhance(1.1)


def build_explore_run(root: Path) -> Path:
    """:func:`build_small_run` (3 images per class) with :data:`EXPLORE_DARK` (flagged dark by
    the quality check) and :data:`EXPLORE_COPY` (a near duplicate of
    :data:`EXPLORE_ORIGINAL`) planted: the run the tests of exploring by signal share."""
    return build_small_run(
        root, n_per_class=3, planted={EXPLORE_DARK: _dark_image, EXPLORE_COPY: _brighter_copy}
    )


def build_model_run(root: Path, n_images: int = 8) -> Path:
    """A real run over ``n_images`` random 32x32 images in two folders (``c0``, ``c1``) in
    ``root/images`` that embedded with a tiny untrained checkpoint (``root/tiny.ckpt``, no
    training): a run with a model, for "find similar" from an uploaded image. Returns the
    output folder ``root/out``."""
    from faults._input_helpers import run_config, tiny_checkpoint
    from selfsup.curation.pipeline import run

    rng = np.random.default_rng(3)
    for i in range(n_images):
        folder = root / "images" / f"c{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{i}.png")
    checkpoint = tiny_checkpoint(root / "tiny.ckpt")
    out = root / "out"
    cfg = run_config(root / "images", out, checkpoint, "stopping_condition.n_samples=3")
    run(cfg, progress=False)
    return out


def complete_local_run(
    server: ServerHarness,
    token: str,
    images: Path,
    out: Path,
    outputs: Path,
    *,
    name: str = "shapes",
    worker_config: Mapping[str, Any] | None = None,
) -> tuple[str, Path]:
    """A ``selfsup serve`` job of ``token``'s user over LOCAL datasources (``images`` in,
    ``out`` for the outputs), claimed by a worker that leaves a copy of ``outputs`` as its
    run folder and completes it: (the scheduled id, that run folder). No pipeline runs."""
    client = server.client(token)
    client.create_dataset(name)
    client.set_local_config(resource_path=str(images), purpose="INPUT")
    client.set_local_config(resource_path=str(out), purpose="LIGHTLY")
    job = client.schedule_compute_worker_run(
        worker_config=worker_config or {"stopping_condition": {"n_samples": 2}}
    )
    workers = server.worker_client(token)
    worker_id = workers.register("w1").id
    claim = workers.claim(worker_id)
    assert claim is not None
    folder = out / "runs" / claim.run.id
    shutil.copytree(outputs, folder)
    workers.set_state(worker_id, claim.run.id, "COMPLETED", "done")
    return job, folder


# --------------------------------------------------------------------------- synthetic run

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(pixels: NDArray[np.uint8]) -> bytes:
    """A PNG file of an ``(H, W, 3)`` uint8 RGB image (8 bit, no filter, zlib level 1).

    Written by hand because PIL's encoder costs ~130 µs for a 16 px image against ~10 µs
    here (2,000 calls each on the 2-core dev machine), most of the time of a 100,000-image
    folder; the output decodes with any PNG reader.
    """
    h, w, _ = pixels.shape
    raw = np.zeros((h, 1 + 3 * w), dtype=np.uint8)  # filter byte 0 (None) per row
    raw[:, 1:] = pixels.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 1))
        + _png_chunk(b"IEND", b"")
    )


def synthetic_name(index: int) -> str:
    """Sample name of row ``index`` of a synthetic run: 1,000 files per folder, so the name
    order (the manifest's order) is the index order."""
    return f"part_{index // 1000:04d}/img_{index:07d}.png"


def build_synthetic_run(
    root: Path,
    n: int = 100_000,
    dim: int = 64,
    seed: int = 0,
    *,
    n_classes: int = 10,
    size: int = 16,
    selected_fraction: float = 0.1,
    corrupt_every: int = 997,
    duplicate_every: int = 499,
    older_format: bool = False,
) -> Path:
    """A format-exact run output folder with ``n`` samples, written without the pipeline.

    ``root/images`` gets ``n`` tiny real PNGs (``size`` x ``size``; class colour plus a pixel
    encoding the index, so every file differs); samples ``i`` with ``i % corrupt_every ==
    corrupt_every - 1`` are corrupt (empty files or text named .png) and those with ``i %
    duplicate_every == duplicate_every - 1`` are byte copies of sample ``i - 1`` (exact
    duplicates). ``root/out`` gets: data/manifest.jsonl (every sample), data/embeddings.csv
    and normalized_embeddings.csv (usable samples, ``dim`` columns, one cluster per class),
    a random selection of ``selected_fraction`` of them in a random pick order, with the
    exact pick distances of that order (selected_embeddings.csv, filenames/*.txt,
    data/selection.csv), config/config.yaml, and
    report.json + data/projections.csv + plots + report.pdf from
    :func:`selfsup.curation.report.write_report`. ``older_format=True`` leaves out
    data/selection.csv and data/projections.csv, as folders of selfsup before the web app.
    Took 40 s for 100,000 samples on the shared 2-core dev machine.
    """
    from selfsup.config import RunConfig, resolve, to_yaml
    from selfsup.curation.manifest import CorruptReason, SampleRecord, count_by_reason
    from selfsup.curation.report import (
        JobInfo,
        ReportInputs,
        ReportOptions,
        SampleCounts,
        folder_image_loader,
        write_report,
    )
    from selfsup.runfolder import RunFolder

    if n < 10:
        raise ValueError(f"build_synthetic_run needs n >= 10 samples, got {n}")
    started = time.time()
    rng = np.random.default_rng(seed)
    images = (root / "images").resolve()
    out = root / "out"
    classes = rng.integers(0, n_classes, size=n)
    palette = rng.integers(40, 255, size=(n_classes, 3), dtype=np.uint8)

    # --- images and their manifest records
    records: list[SampleRecord] = []
    last_bytes = b""
    for i in range(n):
        name = synthetic_name(i)
        path = images / name
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        corrupt = i % corrupt_every == corrupt_every - 1
        duplicate = not corrupt and i % duplicate_every == duplicate_every - 1 and bool(last_bytes)
        if corrupt:
            data = b"" if i % 2 else b"this is not an image\n"
        elif duplicate:
            data = last_bytes
        else:
            pixels = np.empty((size, size, 3), dtype=np.uint8)
            pixels[...] = palette[classes[i]]
            pixels[0, 0] = (i >> 16 & 255, i >> 8 & 255, i & 255)
            data = png_bytes(pixels)
        path.write_bytes(data)
        stat = path.stat()
        common: dict[str, Any] = {
            "id": i,
            "filename": name,
            "source": name,
            "frame_index": None,
            "file_size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        if corrupt:
            reason = CorruptReason.UNKNOWN_FORMAT if data else CorruptReason.EMPTY
            detail = "file is empty" if not data else "cannot identify image file"
            file_hash = hashlib.blake2b(data, digest_size=16).hexdigest()
            records.append(
                SampleRecord(
                    **common, file_hash=file_hash, status="corrupt", reason=reason, detail=detail
                )
            )
            continue
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        base = SampleRecord(
            **common,
            file_hash=digest,
            pixel_hash=digest,
            format="PNG",
            width=size,
            height=size,
            brightness=float(palette[classes[i]].mean()),
            contrast=0.0,
            sharpness=0.0,
            saturation=0.0,
        )
        if duplicate:
            # Kept: the previous usable sample with these bytes (the earlier one in order).
            base = replace(base, status="duplicate", duplicate_of=records[-1].filename)
            classes[i] = classes[i - 1]
        else:
            last_bytes = data
        records.append(base)
    folder = RunFolder(out)  # every path and format of the run folder
    folder.write_manifest(records)
    folder.write_corrupt_filenames(records)
    folder.write_duplicate_filenames(records)
    t_images = time.time() - started

    # --- embeddings of the usable samples
    usable = [r for r in records if r.is_ok]
    names = [r.filename for r in usable]
    class_names = [f"class_{c}" for c in range(n_classes)]
    usable_classes = classes[[r.id for r in usable]]
    emb = cluster_embeddings(usable_classes, n_classes, dim, seed, spread=0.8)
    labels = usable_classes.tolist()
    folder.write_embeddings(folder.embeddings, emb, labels, names)
    normalized = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    folder.write_embeddings(folder.normalized_embeddings, normalized, labels, names)

    # --- a random selection in a random pick order
    k = max(1, round(selected_fraction * len(names)))
    order = rng.permutation(len(names))[:k].astype(np.int64)
    pick_distances = pick_distances_of(normalized[order])
    chosen = np.zeros(len(names), dtype=bool)
    chosen[order] = True
    selected = [names[i] for i in order.tolist()]
    removed = [name for name, c in zip(names, chosen.tolist(), strict=True) if not c]
    folder.write_embeddings(
        folder.selected_embeddings, emb[order], [labels[i] for i in order.tolist()], selected
    )
    folder.write_filename_list(folder.sampled_filenames, selected)
    folder.write_filename_list(folder.removed_filenames, removed)
    if not older_format:
        # A pure diversity selection's score is log(pick distance) (strength 1).
        with np.errstate(divide="ignore"):
            scores = np.log(pick_distances)
        folder.write_selection(
            names,
            order,
            pick_distances,
            scores,
            np.full(len(names), -1, dtype=np.int64),
            [],
            np.zeros(0, dtype=np.int64),
        )

    # --- config and report (report.json last)
    cfg = resolve(
        RunConfig,
        overrides=[
            f"input_dir={images}",
            f"output_dir={out.resolve()}",
            f"stopping_condition.n_samples={k}",
            "umap=false",
        ],
    )
    folder.write_config(to_yaml(cfg), [])
    n_corrupt = sum(1 for r in records if r.status == "corrupt")
    n_duplicates = sum(1 for r in records if r.status == "duplicate")
    job = JobInfo(
        run_name=out.name,
        started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        duration_s=time.time() - started,
        input_dir=str(images),
        config=cfg.model_dump(mode="json"),
        step_durations_s={"check": t_images},
        extra={
            "model": "synthetic embeddings (tests/_web.py build_synthetic_run)",
            "n_preselected_from_datapool": 0,
            "candidates": "samples",
            "selection_note": "random selection (synthetic run)",
        },
    )
    counts = SampleCounts(
        n_files_found=n,
        n_samples_found=n,
        n_corrupt=n_corrupt,
        n_duplicates=n_duplicates,
        n_input_to_selection=len(names),
        n_selected=k,
        corrupt_reasons=count_by_reason(records),
    )
    write_report(
        ReportInputs(
            job=job,
            counts=counts,
            embeddings=emb,
            filenames=names,
            selected_indices=order,
            selection_distances=pick_distances,
            stop_reason="n_samples",
            n_requested=k,
            labels=[class_names[c] for c in usable_classes],
            load_image=folder_image_loader(images),
        ),
        out,
        ReportOptions(umap_neighbors=()),
    )
    if older_format:
        # Folders of selfsup before the web app have neither file; report.json stays last.
        folder.projections_csv.unlink(missing_ok=True)
    return out


def pick_distances_of(picked: NDArray[np.floating[Any]], block: int = 1024) -> NDArray[np.float64]:
    """``(k,)`` distance of each pick to the nearest earlier pick (``inf`` for the first),
    as ``SelectionResult.distances`` reports them, for ``(k, D)`` picks in pick order.

    Exact, in blocks of ``block`` picks against all earlier ones: ``k^2 D / 2``
    multiply-adds (~1 s for 10,000 picks of 64 dimensions), memory ``block x k``.
    """
    x = np.asarray(picked, dtype=np.float32)
    k = x.shape[0]
    sq = (x * x).sum(axis=1)
    out = np.full(k, np.inf)
    for start in range(1, k, block):
        stop = min(start + block, k)
        d2 = sq[start:stop, None] + sq[None, :stop] - 2.0 * (x[start:stop] @ x[:stop].T)
        # Only picks made before each row count: mask the row's own and later columns.
        later = np.arange(stop)[None, :] >= np.arange(start, stop)[:, None]
        d2[later] = np.inf
        out[start:stop] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def report_counts(report: Mapping[str, Any]) -> dict[str, int]:
    """The integer entries of a parsed report.json's ``counts``: what a run page shows as
    ``count-<key>`` elements (:meth:`WebPage.shown_counts`)."""
    return {k: v for k, v in report["counts"].items() if isinstance(v, int)}


# --------------------------------------------------------------------------- browser tests

#: Debian's Chromium (``$SELFSUP_CHROMIUM`` names another binary); Playwright drives it
#: instead of a browser it would download.
CHROMIUM: Final = Path(os.environ.get("SELFSUP_CHROMIUM") or "/usr/bin/chromium")
CHROMIUM_ARGS: Final[tuple[str, ...]] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
)
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
ARTIFACTS_ENV: Final = "SELFSUP_E2E_ARTIFACTS"


def artifacts_dir() -> Path:
    """Where screenshots go: ``$SELFSUP_E2E_ARTIFACTS``, else ``<repo>/test-artifacts/e2e``."""
    configured = os.environ.get(ARTIFACTS_ENV)
    folder = Path(configured) if configured else REPO_ROOT / "test-artifacts" / "e2e"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def artifact_name(test_name: str, label: str = "") -> str:
    """File name of a screenshot of ``test_name`` (pytest's node name) and ``label``: letters,
    digits, ``-``, ``_`` and ``.`` only (parametrised ids become dashes)."""
    stem = f"{test_name}-{label}" if label else test_name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-") + ".png"


def number(text: str) -> int:
    """The integer shown in ``text``: thousands separators (``,``, ``.``, thin and narrow
    no-break spaces) and surrounding words are ignored; exactly one number must be there."""
    found = re.findall(r"\d[\d,.\u202f\u2009\u00a0 ]*", text.strip())
    if len(found) != 1:
        raise ValueError(f"expected one number in {text!r}, found {found}")
    return int(re.sub(r"\D", "", found[0]))


class WebPage:
    """One browser tab of a test: its own context (cookies), console and page errors
    collected, screenshots named after the test.

    Args:
        page: a page of a fresh browser context.
        base_url: the app's URL, e.g. ``http://127.0.0.1:12345``.
        test_name: pytest's name of the test, for screenshot names.
    """

    def __init__(self, page: Page, base_url: str, test_name: str) -> None:
        self.page = page
        self.base_url = base_url.rstrip("/")
        self.test_name = test_name
        self.errors: list[str] = []
        self._allowed: list[re.Pattern[str]] = []
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        text = f"console error on {self.page.url}: {message.text}"
        if not any(p.search(message.text) for p in self._allowed):
            self.errors.append(text)

    def _on_page_error(self, error: Error) -> None:
        self.errors.append(f"page error on {self.page.url}: {error.name}: {error.message}")

    def allow_console_error(self, pattern: str) -> None:
        """Do not count console errors matching ``pattern`` (e.g. the browser's own message
        for a 404 the test asked for on purpose)."""
        self._allowed.append(re.compile(pattern))

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on the app."""
        return f"{self.base_url}{path}"

    def goto(self, path: str, expected_status: int | None = 200) -> Response | None:
        """Open ``path`` and wait until the page is loaded; checks the final status."""
        response = self.page.goto(self.url(path), wait_until="load")
        if expected_status is not None:
            assert response is not None, f"no response for {path}"
            assert response.status == expected_status, (
                f"GET {path} -> {response.status} {response.url}, expected {expected_status}"
            )
        return response

    def login(self, token: str, next_path: str = "/") -> None:
        """Log in through the form (types the token, presses the button) and wait for
        ``next_path``."""
        from urllib.parse import quote

        self.goto(f"/login?next={quote(next_path, safe='')}")
        self.submit_token(token)
        path = self.page.url[len(self.base_url) :]
        assert path == next_path, f"login led to {self.page.url}, expected {next_path}"

    def submit_token(self, token: str) -> None:
        """Type ``token`` into the login form on the page, submit it and wait for the page
        the login leads to."""
        self.page.get_by_test_id("token-input").fill(token)
        with self.page.expect_navigation(wait_until="load"):
            self.page.get_by_test_id("login-submit").click()

    def refused_token(self, token: str) -> str:
        """Submit ``token`` on the login form on the page, which must refuse it; returns the
        error the form shows."""
        self.page.get_by_test_id("token-input").fill(token)
        self.page.get_by_test_id("login-submit").click()
        error = self.page.get_by_test_id("login-error")
        error.wait_for()
        return error.inner_text()

    def shown_counts(self) -> dict[str, int]:
        """The counts on a run page: ``{key: number}`` of every ``count-<key>`` element."""
        return {
            str(el.get_attribute("data-testid")).removeprefix("count-"): number(el.inner_text())
            for el in self.page.locator("[data-testid^='count-']").all()
        }

    def download_report_pdf(self) -> Locator:
        """On a run page: click the first download, which must be report.pdf, and check that
        a PDF named report.pdf arrives; returns the locator of every download link."""
        links = self.page.get_by_test_id("download")
        assert links.first.inner_text().strip().endswith("report.pdf")
        with self.page.expect_download() as download:
            links.first.click()
        assert download.value.suggested_filename == "report.pdf"
        assert Path(download.value.path()).read_bytes().startswith(b"%PDF")
        return links

    def wait_images_loaded(self, selector: str) -> None:
        """Scroll every ``<img>`` matching ``selector`` into view (grids load lazily) and
        wait until each one decoded to a non-empty bitmap."""
        for img in self.page.locator(selector).all():
            img.scroll_into_view_if_needed()
        self.page.wait_for_function(
            "sel => [...document.querySelectorAll(sel)]"
            ".every(i => i.complete && i.naturalWidth > 0)",
            arg=selector,
        )

    def shot(self, label: str = "") -> Path:
        """A full-page PNG of the current page in :func:`artifacts_dir`."""
        path = artifacts_dir() / artifact_name(self.test_name, label)
        # From the top: a sticky header would otherwise be drawn where the view was scrolled.
        self.page.evaluate("() => window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=True)
        return path


#: ``open_page(base_url)`` of tests/e2e/conftest.py: a logged-out tab of the app.
OpenPage = Callable[[str], WebPage]
