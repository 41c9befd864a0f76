"""SwaVPrototypes: scores zᵀc_k, unit prototypes, multiple sets, frozen first steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.errors import ConfigError
from selfsup.models.modules import SwaVPrototypes


def test_scores_are_dot_products_with_the_prototypes() -> None:
    prototypes = SwaVPrototypes(input_dim=4, n_prototypes=6)
    head = prototypes.heads[0]
    assert isinstance(head, nn.Linear)
    assert head.bias is None  # the paper's zᵀc_k, no offset
    x = torch.randn(3, 4)
    out = prototypes(x)
    assert isinstance(out, torch.Tensor)
    assert out.shape == (3, 6)
    torch.testing.assert_close(out, x @ head.weight.T)


def test_normalize_puts_every_prototype_on_the_unit_sphere() -> None:
    prototypes = SwaVPrototypes(input_dim=5, n_prototypes=[7, 3])
    for head in prototypes.heads:
        assert isinstance(head, nn.Linear)
        with torch.no_grad():
            head.weight.mul_(3.0)
    prototypes.normalize()
    for head in prototypes.heads:
        assert isinstance(head, nn.Linear)
        torch.testing.assert_close(head.weight.norm(dim=1), torch.ones(head.out_features))
    # Unit features against unit prototypes: cosine similarities.
    z = nn.functional.normalize(torch.randn(4, 5), dim=1)
    outs = prototypes(z)
    assert isinstance(outs, list)
    assert [tuple(o.shape) for o in outs] == [(4, 7), (4, 3)]
    assert all(o.abs().max() <= 1 + 1e-6 for o in outs)


def test_defaults_match_lightly() -> None:
    prototypes = SwaVPrototypes()
    assert prototypes.n_prototypes == [3000]
    assert prototypes.n_steps_frozen_prototypes == 0
    head = prototypes.heads[0]
    assert isinstance(head, nn.Linear)
    assert head.in_features == 128


def test_prototypes_are_frozen_for_the_first_steps() -> None:
    prototypes = SwaVPrototypes(input_dim=4, n_prototypes=5, n_steps_frozen_prototypes=3)
    x = torch.randn(2, 4, requires_grad=True)
    for step, trainable in [(0, False), (2, False), (3, True), (10, True)]:
        out = prototypes(x, step=step)
        assert isinstance(out, torch.Tensor)
        assert all(p.requires_grad is trainable for p in prototypes.parameters())
        out.sum().backward()
        assert x.grad is not None  # the features still get gradients
    with pytest.raises(ConfigError, match="n_steps_frozen_prototypes=3 needs the current step"):
        prototypes(x)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_prototypes": 0}, "n_prototypes must be an integer >= 1, got 0"),
        ({"n_prototypes": [4, 0]}, "n_prototypes must be an integer >= 1, got 0"),
        ({"n_prototypes": []}, r"n_prototypes=\[\] holds no set"),
        ({"n_prototypes": 2.5}, "n_prototypes must be an integer >= 1 or a list of them"),
        ({"input_dim": 0}, "input_dim must be an integer >= 1, got 0"),
        ({"n_steps_frozen_prototypes": -1}, "n_steps_frozen_prototypes must be an integer >= 0"),
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="SwaVPrototypes: " + message):
        SwaVPrototypes(**kwargs)  # type: ignore[arg-type]  # bad input on purpose
