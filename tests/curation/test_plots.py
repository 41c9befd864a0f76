"""Report figures: what each one draws, atomic saving, and the 2-D projections."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from selfsup.curation.plots import (
    COLORS,
    Tile,
    distance_histogram_figure,
    filter_decision_figure,
    pca_2d,
    save_figure,
    scatter_figure,
    shorten,
    umap_2d,
)


def _scatter_sets(fig: Figure) -> dict[str, np.ndarray]:
    """Legend label (without count) -> offsets of that scatter collection."""
    out = {}
    for coll in fig.axes[0].collections:
        assert isinstance(coll, PathCollection)
        out[coll.get_label().split(" (")[0]] = np.asarray(coll.get_offsets())
    return out


def test_histogram_bars_are_densities_on_shared_edges() -> None:
    rng = np.random.default_rng(0)
    d = rng.uniform(0.2, 1.4, size=500)
    edges = np.linspace(0.0, 2.0, 21)
    fig = distance_histogram_figure(d, edges, title="t", subtitle="s")
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    expected, _ = np.histogram(d, bins=edges, density=True)
    np.testing.assert_allclose([b.get_height() for b in bars], expected)
    np.testing.assert_allclose([b.get_x() for b in bars], edges[:-1], atol=1e-12)
    subtitle = fig.axes[0].get_title(loc="left")
    assert subtitle.startswith("s")
    assert f"mean {d.mean():.3f}" in subtitle
    assert "skewness" in subtitle


def test_histogram_after_draws_before_as_outline() -> None:
    rng = np.random.default_rng(1)
    before, after = rng.uniform(0, 2, 300), rng.uniform(0.5, 2, 50)
    edges = np.linspace(0, 2, 11)
    fig = distance_histogram_figure(after, edges, title="t", subtitle="s", reference=before)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[:2] == ["after selection", "before selection"]
    constant = np.zeros(10)
    fig = distance_histogram_figure(constant + 0.3, edges, title="t", subtitle="s")
    assert "skewness n/a" in fig.axes[0].get_title(loc="left")


def test_scatter_overlay_separates_selected_from_removed() -> None:
    coords = np.arange(20, dtype=np.float64).reshape(10, 2)
    mask = np.zeros(10, dtype=bool)
    mask[[1, 4, 7]] = True
    fig = scatter_figure(coords, selected=mask, title="t", subtitle="s", axis_labels=("x", "y"))
    sets = _scatter_sets(fig)
    np.testing.assert_array_equal(sets["selected"], coords[mask])
    np.testing.assert_array_equal(sets["removed"], coords[~mask])
    # Selected drawn last, i.e. on top.
    assert fig.axes[0].collections[-1].get_label().startswith("selected")


def test_scatter_without_overlay_is_one_colour_or_by_label() -> None:
    coords = np.random.default_rng(0).normal(size=(30, 2))
    fig = scatter_figure(coords, title="t", subtitle="s", axis_labels=("x", "y"))
    assert len(fig.axes[0].collections) == 1
    labels = [f"c{i % 12}" for i in range(30)]  # 12 labels: 10 coloured, 2 become "other"
    fig = scatter_figure(coords, labels=labels, title="t", subtitle="s", axis_labels=("x", "y"))
    sets = _scatter_sets(fig)
    assert len(sets) == 11
    assert "other" in sets
    assert sum(len(v) for v in sets.values()) == 30
    assert len(sets["c0"]) == 3


def test_filter_decision_figure_panels_and_placeholder() -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    kept = Tile(img, "a/kept.png")
    neighbors = [Tile(img, "b/n1.png", "d = 0.100"), Tile(None, "b/missing.png", "d = 0.200")]
    fig = filter_decision_figure(kept, neighbors, position=11, n_selected=66)
    axes = fig.axes
    assert len(axes) == 3
    assert axes[0].get_title() == "kept (pick 12)"
    assert axes[2].get_title() == "removed, d = 0.200"
    assert [len(ax.images) for ax in axes] == [1, 1, 0]  # placeholder has no image
    assert axes[2].get_xlabel() == "b/missing.png"
    assert axes[0].spines["left"].get_edgecolor()[:3] == pytest.approx(
        tuple(int(COLORS["selected"][i : i + 2], 16) / 255 for i in (1, 3, 5))
    )
    # The thumbnail keeps its 2:1 aspect inside the unit square.
    left, right, bottom, top = axes[0].images[0].get_extent()
    assert (right - left) / (top - bottom) == pytest.approx(2.0)


def test_save_figure_writes_png_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fig = scatter_figure(np.zeros((3, 2)), title="t", subtitle="s", axis_labels=("x", "y"))
    target = tmp_path / "sub" / "plot.png"
    save_figure(fig, target, dpi=30)
    with Image.open(target) as img:
        assert img.format == "PNG"
    before = target.read_bytes()

    def broken(self: Figure, fname: Any, **kwargs: Any) -> None:
        Path(fname).write_bytes(b"partial")
        raise RuntimeError("boom")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(RuntimeError, match="boom"):
        save_figure(fig, target)
    assert target.read_bytes() == before  # old file untouched
    assert [p.name for p in target.parent.iterdir()] == ["plot.png"]


def test_pca_matches_svd_reference() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 5)) * np.array([5.0, 2.0, 1.0, 0.5, 0.1])
    coords, ratio = pca_2d(x)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    reference = centred @ vt[:2].T
    for j in range(2):  # components are defined up to sign
        sign = np.sign(coords[:, j] @ reference[:, j])
        np.testing.assert_allclose(coords[:, j] * sign, reference[:, j], atol=1e-8)
    np.testing.assert_allclose(ratio, (s**2 / (s**2).sum())[:2])


def test_shorten_keeps_both_ends() -> None:
    assert shorten("short", 10) == "short"
    out = shorten("folder/deep/path/image_0001.png", 15)
    assert len(out) == 15
    assert out.startswith("folder")
    assert out.endswith(".png")
    assert "…" in out


def test_umap_rejects_bad_neighbours() -> None:
    with pytest.raises(ValueError, match=r"n_neighbors must lie in \[2, 4\]"):
        umap_2d(np.zeros((5, 3), dtype=np.float32), n_neighbors=5)


@pytest.mark.slow
def test_umap_keeps_separated_clusters_apart() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(100, 8)) * 0.1
    b = rng.normal(size=(100, 8)) * 0.1 + 3.0
    x = np.concatenate([a, b]).astype(np.float32)
    coords = umap_2d(x, n_neighbors=15, seed=0)
    assert coords.shape == (200, 2)
    assert np.isfinite(coords).all()
    ca, cb = coords[:100], coords[100:]
    gap = np.linalg.norm(ca.mean(0) - cb.mean(0))
    spread = max(
        np.linalg.norm(ca - ca.mean(0), axis=1).max(), np.linalg.norm(cb - cb.mean(0), axis=1).max()
    )
    assert gap > 2 * spread
    np.testing.assert_array_equal(coords, umap_2d(x, n_neighbors=15, seed=0))  # seeded
    tiny = umap_2d(x[:6], n_neighbors=5, seed=0)  # random init path for tiny inputs
    assert tiny.shape == (6, 2)
    assert np.isfinite(tiny).all()
