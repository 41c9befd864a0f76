"""The web app's image grid, thumbnails, detail pages and map data at 100,000 images.

    python benchmarks/web_grid.py                      # build a synthetic 100k run, measure
    python benchmarks/web_grid.py --n 20000            # smaller
    python benchmarks/web_grid.py --folder /tmp/run100k --keep   # build once, keep, reuse
    python benchmarks/web_grid.py --n 2000 --image-size 1024     # thumbnails of big images
    python benchmarks/web_grid.py --older-format       # no selection.csv / projections.csv

The run folder is format-exact but synthetic (tests/_web.py ``build_synthetic_run``: small
real PNGs, the manifest, embedding CSVs, selection.csv, report.json and plots as
``selfsup run`` writes them; the selection itself is random). The PNGs are flat colours of
``--image-size`` px (64), so decoding them is cheap and a thumbnail cache gains little over
no cache; photos take far longer to decode (``--image-size 1024`` shows the difference).
``selfsup view``'s app
(``create_view_app``) is served by uvicorn on 127.0.0.1 (``selfsup.server.testing.LiveServer``)
and measured with httpx over real sockets, one request at a time:

1. **First grid page, cold**: the first ``GET /runs/{id}/images`` of a fresh app with an
   empty cache directory, which opens the folder (manifest, embeddings) and builds the
   caches; then the same on a second app over the now warm cache directory.
2. **Grid pages, warm**: p50/p95 of 50 requests of random pages (200 tiles each) under random
   filters (all / selected / removed / corrupt / duplicate).
3. **Thumbnails**: p50 of 200 first requests of random samples (decode, resize, JPEG, write
   to the cache) and p50 of the same 200 again (cache hits).
4. **Detail page** (explanation and the nearest neighbours, ``selfsup.web.routes.NEIGHBOURS``
   of them, over all embeddings): p50 of 50.
5. **Projection JSON** for the map: size and time, first and again.

Baselines in the same run, served by the same uvicorn over the same folder:

- *naive grid*: one page with every sample (no paging), rendered from the manifest read on
  each request, as a grid without paging or an index would;
- *naive thumbnail*: decode and resize the source with PIL on every request (no cache).

The load generator shares the machine's cores with the server: the figures are an upper
bound of what a browser would wait for on an idle machine.
"""

from __future__ import annotations

import argparse
import html
import importlib
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from PIL import Image

TOKEN = "benchmark-token-web-grid"
STATUSES = ("selected", "removed", "corrupt", "duplicate")
GRID_REQUESTS = 50
THUMB_REQUESTS = 200
DETAIL_REQUESTS = 50
NAIVE_GRID_REQUESTS = 3
THUMB_SIZE = 192

BuildRun = Callable[..., Path]


def _build_synthetic_run() -> BuildRun:
    """``build_synthetic_run`` from tests/_web.py (the tests' builder, not a copy)."""
    tests = Path(__file__).resolve().parent.parent / "tests"
    sys.path.insert(0, str(tests))
    builder: BuildRun = importlib.import_module("_web").build_synthetic_run
    return builder


@dataclass
class Timing:
    """Seconds of repeated requests."""

    seconds: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    @property
    def p95(self) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _get(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    """GET ``path``; seconds until the whole body arrived, and the response (must be 200)."""
    start = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"GET {path} -> {response.status_code}: {response.text[:300]}")
    return elapsed, response


def _timed(client: httpx.Client, paths: Sequence[str]) -> Timing:
    return Timing([_get(client, p)[0] for p in paths])


@contextmanager
def _served(app: FastAPI, login: bool = True) -> Iterator[httpx.Client]:
    """``app`` on a loopback port and a client, logged in (``/?token=`` sets the cookie)
    unless ``login`` is false (the baselines have no login)."""
    from selfsup.server.testing import LiveServer

    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=600) as client:
        if login:
            response = client.get(f"/?token={TOKEN}", follow_redirects=True)
            if response.status_code != 200 or not client.cookies:
                raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
        yield client


def _view_app(folder: Path, cache: Path) -> FastAPI:
    from selfsup.web.app import create_view_app

    return create_view_app([folder], token=TOKEN, cache_dir=cache)


def _run_id(client: httpx.Client) -> str:
    runs = client.get("/ui-api/runs").json()["runs"]
    if len(runs) != 1:
        raise RuntimeError(f"expected one run, the app lists {len(runs)}")
    return str(runs[0]["id"])


# --------------------------------------------------------------------------- baselines


def _naive_app(folder: Path) -> FastAPI:
    """The baselines: an unpaged grid from the manifest, thumbnails without a cache."""
    from selfsup.curation.manifest import read_filename_list, read_manifest

    app = FastAPI()
    input_dir = Path(json.loads((folder / "report.json").read_text())["job"]["input_dir"])
    sources = [r.source for r in read_manifest(folder / "data" / "manifest.jsonl").records]

    @app.get("/naive/grid")
    def grid() -> HTMLResponse:
        records = read_manifest(folder / "data" / "manifest.jsonl").records
        selected = set(
            read_filename_list(folder / "filenames" / "sampled_filenames_excluding_datapool.txt")
        )
        tiles = []
        for r in records:
            status = r.status if r.status != "ok" else (
                "selected" if r.filename in selected else "removed"
            )  # fmt: skip
            name = html.escape(r.filename)
            tiles.append(
                f'<a class="tile" href="/naive/images/{r.id}" data-status="{status}">'
                f'<img src="/naive/thumb/{r.id}" alt="{name}" loading="lazy" width="192" '
                f'height="192"><span>{name}</span></a>'
            )
        return HTMLResponse(f"<!doctype html><html><body>{''.join(tiles)}</body></html>")

    @app.get("/naive/thumb/{index}")
    def thumb(index: int) -> Response:
        with Image.open(input_dir / sources[index]) as img:
            small = img.convert("RGB")
        small.thumbnail((THUMB_SIZE, THUMB_SIZE))
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=85)
        return Response(buffer.getvalue(), media_type="image/jpeg")

    return app


# --------------------------------------------------------------------------- measurement


@dataclass
class Results:
    n: int
    build_s: float | None
    cold_first_grid_s: float
    warm_cache_first_grid_s: float
    grid: Timing
    grid_bytes: int
    thumb_first: Timing
    thumb_cached: Timing
    detail_first_s: float
    detail: Timing
    projection_first_s: float
    projection_again_s: float
    projection_bytes: int
    projection_points: int
    naive_grid: Timing
    naive_grid_bytes: int
    naive_thumb: Timing


def measure(folder: Path, cache_root: Path, seed: int) -> Results:
    """Every figure of the module docstring over the run in ``folder``."""
    from selfsup.curation.manifest import read_manifest

    rng = random.Random(seed)
    records = read_manifest(folder / "data" / "manifest.jsonl").records
    n = len(records)
    usable = [r.id for r in records if r.status == "ok"]
    cache = cache_root / "cache"

    with _served(_view_app(folder, cache)) as client:
        run = _run_id(client)
        cold_first_grid_s, first = _get(client, f"/runs/{run}/images")
        # Pages are drawn within each filter's range (an out-of-range page would measure the
        # error path); the totals are the app's own grid-total of each filter.
        totals: dict[str | None, int] = {None: n}
        for name in STATUSES:
            _, response = _get(client, f"/runs/{run}/images?status={name}&per_page=1")
            marker = 'data-testid="grid-total" data-value="'
            start = response.text.index(marker) + len(marker)
            totals[name] = int(response.text[start : response.text.index('"', start)])
        paths = []
        for _ in range(GRID_REQUESTS):
            status = rng.choice((None, *STATUSES))
            pages = max(1, -(-totals[status] // 200))
            query = f"?page={rng.randint(1, pages)}" + (f"&status={status}" if status else "")
            paths.append(f"/runs/{run}/images{query}")
        grid = _timed(client, paths)

        picks = rng.sample(usable, THUMB_REQUESTS)
        thumb_first = _timed(client, [f"/runs/{run}/thumbs/{i}" for i in picks])
        thumb_cached = _timed(client, [f"/runs/{run}/thumbs/{i}" for i in picks])

        details = rng.sample(usable, DETAIL_REQUESTS + 1)
        detail_first_s, _ = _get(client, f"/runs/{run}/images/{details[0]}")
        detail = _timed(client, [f"/runs/{run}/images/{i}" for i in details[1:]])

        projection_first_s, projection = _get(client, f"/ui-api/runs/{run}/projection")
        projection_again_s, _ = _get(client, f"/ui-api/runs/{run}/projection")
        points = len(projection.json()["index"])

    # A second app over the same (now warm) cache directory: the cost of a restart.
    with _served(_view_app(folder, cache)) as client:
        warm_cache_first_grid_s, _ = _get(client, f"/runs/{_run_id(client)}/images")

    with _served(_naive_app(folder), login=False) as client:
        naive_grid = _timed(client, ["/naive/grid"] * NAIVE_GRID_REQUESTS)
        naive_grid_bytes = len(client.get("/naive/grid").content)
        naive_thumb = _timed(client, [f"/naive/thumb/{i}" for i in picks])

    return Results(
        n=n,
        build_s=None,
        cold_first_grid_s=cold_first_grid_s,
        warm_cache_first_grid_s=warm_cache_first_grid_s,
        grid=grid,
        grid_bytes=len(first.content),
        thumb_first=thumb_first,
        thumb_cached=thumb_cached,
        detail_first_s=detail_first_s,
        detail=detail,
        projection_first_s=projection_first_s,
        projection_again_s=projection_again_s,
        projection_bytes=len(projection.content),
        projection_points=points,
        naive_grid=naive_grid,
        naive_grid_bytes=naive_grid_bytes,
        naive_thumb=naive_thumb,
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms"


def report(r: Results) -> str:
    """The results as a plain-text table."""
    rows: list[tuple[str, str, str]] = [
        ("samples", f"{r.n:,}", ""),
        ("build synthetic run", "-" if r.build_s is None else f"{r.build_s:.1f} s", ""),
        ("first grid page, cold (opens folder)", _ms(r.cold_first_grid_s), ""),
        ("first grid page, warm cache dir", _ms(r.warm_cache_first_grid_s), ""),
        (
            f"grid page (200 tiles), {len(r.grid.seconds)} random",
            f"p50 {_ms(r.grid.p50)}",
            f"p95 {_ms(r.grid.p95)}",
        ),
        ("grid page size", f"{r.grid_bytes / 1024:,.0f} kB", ""),
        ("naive unpaged grid (all samples)", f"p50 {_ms(r.naive_grid.p50)}", ""),
        ("naive grid size", f"{r.naive_grid_bytes / 1e6:,.1f} MB", ""),
        ("  ratio naive / paged p50", f"{r.naive_grid.p50 / r.grid.p50:,.0f}x", ""),
        (
            f"thumbnail, first ({len(r.thumb_first.seconds)} random)",
            f"p50 {_ms(r.thumb_first.p50)}",
            f"p95 {_ms(r.thumb_first.p95)}",
        ),
        (
            "thumbnail, cached",
            f"p50 {_ms(r.thumb_cached.p50)}",
            f"p95 {_ms(r.thumb_cached.p95)}",
        ),
        (
            "naive thumbnail (PIL every request)",
            f"p50 {_ms(r.naive_thumb.p50)}",
            f"p95 {_ms(r.naive_thumb.p95)}",
        ),
        ("  ratio naive / cached p50", f"{r.naive_thumb.p50 / r.thumb_cached.p50:,.1f}x", ""),
        ("detail page + neighbours, first", _ms(r.detail_first_s), ""),
        (
            f"detail page + neighbours ({len(r.detail.seconds)} random)",
            f"p50 {_ms(r.detail.p50)}",
            f"p95 {_ms(r.detail.p95)}",
        ),
        (
            f"projection JSON ({r.projection_points:,} points)",
            f"{r.projection_bytes / 1e6:,.2f} MB",
            "",
        ),
        ("  first / again", _ms(r.projection_first_s), _ms(r.projection_again_s)),
    ]
    width = max(len(label) for label, _, _ in rows)
    return "\n".join(f"{label:<{width}}  {a:>18}  {b:>18}".rstrip() for label, a, b in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="samples (default 100,000)")
    parser.add_argument(
        "--folder",
        type=Path,
        help="root of a synthetic run (its out/ folder is used); built there if missing",
    )
    parser.add_argument("--keep", action="store_true", help="keep the built run folder")
    parser.add_argument(
        "--image-size",
        type=int,
        default=64,
        help="edge of the synthetic PNGs in px (64); thumbnails of larger images cost more "
        "to make, e.g. --n 2000 --image-size 1024",
    )
    parser.add_argument(
        "--older-format",
        action="store_true",
        help="build the run without data/selection.csv and data/projections.csv, as runs "
        "of selfsup before the web app (the app derives both)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    root = args.folder or Path(tempfile.mkdtemp(prefix="selfsup-web-grid-"))
    work = Path(tempfile.mkdtemp(prefix="selfsup-web-grid-cache-"))
    build_s: float | None = None
    try:
        folder = root / "out"
        if not (folder / "report.json").is_file():
            print(f"building a synthetic run of {args.n:,} samples in {root} ...", flush=True)
            start = time.perf_counter()
            folder = _build_synthetic_run()(
                root, n=args.n, seed=args.seed, size=args.image_size, older_format=args.older_format
            )
            build_s = time.perf_counter() - start
        else:
            print(f"reusing {folder}", flush=True)
        results = measure(folder, work, args.seed)
        results.build_s = build_s
        print(report(results))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if args.folder is None and not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        elif build_s is not None:
            print(f"kept {root} (reuse with --folder {root})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
