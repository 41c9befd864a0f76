"""SMoGPrototypes and the SMoG heads against the paper's group assignment and update, in loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from selfsup.errors import ConfigError, DataError
from selfsup.models.modules import SMoGPredictionHead, SMoGProjectionHead, SMoGPrototypes

Matrix = list[list[float]]


def _cos(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def ref_logits(x: Matrix, groups: Matrix, tau: float) -> Matrix:
    """cos(x_i, g_k) / τ."""
    return [[_cos(row, g) / tau for g in groups] for row in x]


def ref_update(groups: Matrix, x: Matrix, beta: float) -> Matrix:
    """Assign every x_i to argmax_k cos(x_i, g_k); g_k ← β g_k + (1 − β) mean of its members."""
    members: dict[int, list[list[float]]] = {}
    for row in x:
        sims = [_cos(row, g) for g in groups]
        members.setdefault(sims.index(max(sims)), []).append(row)
    out = []
    for k, g in enumerate(groups):
        if k not in members:
            out.append(list(g))
            continue
        rows = members[k]
        mean = [sum(r[j] for r in rows) / len(rows) for j in range(len(g))]
        out.append([beta * gj + (1 - beta) * mj for gj, mj in zip(g, mean, strict=True)])
    return out


def _rand(seed: int, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("seed", range(5))
def test_logits_assignments_and_update_follow_the_paper(seed: int) -> None:
    groups, x = _rand(seed, 5, 3), _rand(seed + 100, 7, 3)
    smog = SMoGPrototypes(groups, beta=0.9)
    expected_logits = torch.tensor(ref_logits(x.tolist(), groups.tolist(), 0.1), dtype=x.dtype)
    torch.testing.assert_close(smog(x, groups, temperature=0.1), expected_logits)
    rows = x.tolist()
    expected_groups = [max(range(5), key=lambda k: _cos(r, groups[k].tolist())) for r in rows]
    assert smog.assign_groups(x).tolist() == expected_groups
    updated = smog.get_updated_group_features(x)
    torch.testing.assert_close(
        updated, torch.tensor(ref_update(groups.tolist(), rows, 0.9), dtype=x.dtype)
    )
    # The stored groups change only when set.
    torch.testing.assert_close(smog.group_features.data, groups)
    smog.set_group_features(updated)
    torch.testing.assert_close(smog.group_features.data, updated)


def test_groups_without_members_keep_their_value() -> None:
    groups = torch.eye(3, dtype=torch.float64)
    x = torch.tensor([[2.0, 0.1, 0.0], [4.0, -0.1, 0.0]], dtype=torch.float64)  # both: group 0
    updated = SMoGPrototypes(groups, beta=0.5).get_updated_group_features(x)
    torch.testing.assert_close(updated[0], 0.5 * groups[0] + 0.5 * x.mean(dim=0))
    torch.testing.assert_close(updated[1:], groups[1:])


def test_gradients_reach_the_features_through_the_updated_groups() -> None:
    groups = F.normalize(_rand(0, 4, 3), dim=1)
    smog = SMoGPrototypes(groups, beta=0.5)
    x = _rand(1, 6, 3).requires_grad_(True)
    updated = smog.get_updated_group_features(x)
    (grad,) = torch.autograd.grad(updated.sum(), x)
    assert grad.abs().sum() > 0
    assert not smog.group_features.requires_grad


def test_group_features_are_saved_with_the_model() -> None:
    smog = SMoGPrototypes(torch.eye(2), beta=0.99)
    assert "group_features" in smog.state_dict()
    assert next(iter(smog.parameters())).requires_grad is False


@pytest.mark.parametrize("beta", [-0.1, 1.5, math.nan, True, "0.9"])
def test_bad_beta_is_rejected(beta: object) -> None:
    with pytest.raises(ConfigError, match=r"SMoGPrototypes: beta must be a number in \[0, 1\]"):
        SMoGPrototypes(torch.eye(2), beta=beta)  # type: ignore[arg-type]  # bad input on purpose


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ConfigError, match=r"\(n_groups, dim\) tensor"):
        SMoGPrototypes(torch.ones(3), beta=0.9)
    smog = SMoGPrototypes(torch.eye(3), beta=0.9)
    with pytest.raises(DataError, match=r"expected features \(batch_size, 3\), got shape \(2, 4\)"):
        smog(torch.ones(2, 4), smog.group_features)
    with pytest.raises(DataError, match=r"must have shape \(3, 3\), got \(2, 3\)"):
        smog.set_group_features(torch.ones(2, 3))


def test_heads_follow_the_paper() -> None:
    projection = SMoGProjectionHead(8, 16, 4)
    last = projection.layers[-1]
    assert isinstance(last, nn.BatchNorm1d)
    assert not last.affine
    assert [type(m) for m in SMoGPredictionHead(4, 16, 4).layers][-1] is nn.Linear
    assert projection(torch.randn(5, 8)).shape == (5, 4)
    assert [m.out_features for m in SMoGProjectionHead().layers if isinstance(m, nn.Linear)] == [
        2048,
        128,
    ]


# --- k-means reset ----------------------------------------------------------------------


def test_kmeans_finds_separated_clusters_and_is_a_fixed_point() -> None:
    from selfsup.models.modules.smog import smog_kmeans

    g = torch.Generator().manual_seed(0)
    centres = torch.eye(4, 6, dtype=torch.float64)
    points = torch.cat(
        [c + 0.05 * torch.randn(10, 6, generator=g, dtype=torch.float64) for c in centres]
    )
    found = smog_kmeans(points, 4, generator=torch.Generator().manual_seed(1))
    assert found.shape == (4, 6)
    torch.testing.assert_close(found.norm(dim=1), torch.ones(4, dtype=torch.float64))
    # Each true centre is found (up to order), and each found centre is the normalised mean
    # of the points closest to it.
    assert sorted(found.argmax(dim=1).tolist()) == [0, 1, 2, 3]
    x = F.normalize(points, dim=1)
    assignments = (x @ found.T).argmax(dim=1)
    for k in range(4):
        torch.testing.assert_close(found[k], F.normalize(x[assignments == k].mean(0), dim=0))


def test_kmeans_needs_as_many_features_as_groups() -> None:
    from selfsup.models.modules.smog import smog_kmeans

    with pytest.raises(DataError, match="N >= n_groups = 5"):
        smog_kmeans(torch.randn(4, 3), 5)
