"""DetCon's regions: the spatial heuristic on view grids, region sampling and mask pooling."""

from __future__ import annotations

import torch

from selfsup.methods.detcon import region_pool, sample_regions, spatial_regions


def test_spatial_regions_split_the_image_into_a_grid() -> None:
    grid = torch.tensor([[[[0.1, 0.1], [0.1, 0.9]], [[0.6, 0.3], [0.99, 1.0]]]])
    assert spatial_regions(grid, n=2).tolist() == [[[0, 1], [2, 3]]]
    assert spatial_regions(grid, n=4).tolist() == [[[0, 3], [9, 15]]]


def test_region_pool_is_the_mean_over_each_regions_cells() -> None:
    fmap = torch.arange(2 * 2 * 2, dtype=torch.float64).reshape(1, 2, 2, 2)  # (B, C, h, w)
    regions = torch.tensor([[[0, 0], [1, 5]]])
    ids = torch.tensor([[0, 1, 7]])
    pooled = region_pool(fmap, regions, ids)
    cells = fmap.flatten(2)[0].T  # (h·w, C)
    expected = torch.stack([cells[:2].mean(dim=0), cells[2], torch.zeros(2, dtype=torch.float64)])
    torch.testing.assert_close(pooled[0], expected)


def test_sampled_regions_are_shown_by_both_views_when_they_share_any() -> None:
    regions0 = torch.tensor([[[0, 1], [2, 3]], [[0, 0], [0, 0]]])
    regions1 = torch.tensor([[[2, 3], [5, 5]], [[4, 4], [4, 4]]])
    torch.manual_seed(0)
    ids = sample_regions(regions0, regions1, count=50, n_regions=6)
    assert set(ids[0].tolist()) == {2, 3}
    assert set(ids[1].tolist()) == {0}  # nothing shared: the first view's regions
