"""SwAV's model: unit prototypes, frozen in the first epoch, the queue used once full."""

from __future__ import annotations

import torch
from torch import nn

from selfsup.methods import TrainProgress, get_method
from selfsup.methods.swav import SwaVModel


def _model(**kwargs: int) -> SwaVModel:
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(1), nn.Linear(3 * 16, 12))
    return SwaVModel(backbone, num_ftrs=12, out_dim=4, **kwargs)


def _views(n: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    sizes = [16, 16, 8, 8, 8]  # 2 high-resolution crops, 3 small ones
    return [torch.rand(n, 3, s, s, generator=g) for s in sizes]


def _prototypes(model: SwaVModel) -> torch.Tensor:
    head = model.prototypes.heads[0]
    assert isinstance(head, nn.Linear)
    return head.weight


def test_prototypes_are_normalised_every_step() -> None:
    model = _model()
    assert _prototypes(model).shape == (16, 4)  # K = 4 * out_dim
    with torch.no_grad():
        _prototypes(model).mul_(5.0)
    model.training_loss(_views(), TrainProgress())
    torch.testing.assert_close(_prototypes(model).norm(dim=1), torch.ones(16))


def test_prototypes_are_frozen_during_the_first_epoch() -> None:
    model = _model()
    for progress, frozen in [
        (TrainProgress(epoch=0, max_epochs=3), True),
        (TrainProgress(epoch=1, max_epochs=3), False),
        (TrainProgress(epoch=0, max_epochs=1), False),  # a one-epoch run trains them
    ]:
        model.zero_grad()
        model.training_loss(_views(), progress).backward()
        model.before_optimizer_step(progress)
        assert (_prototypes(model).grad is None) is frozen
        assert all(p.grad is not None for p in model.projection_head.parameters())


class _Spy(nn.Module):
    """The model's criterion, recording the queue scores of every call."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.queues: list[list[torch.Tensor] | None] = []

    def forward(
        self,
        high: list[torch.Tensor],
        low: list[torch.Tensor],
        queue: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        self.queues.append(queue)
        loss: torch.Tensor = self.inner(high, low, queue)
        return loss


def test_queue_is_used_once_it_holds_real_features() -> None:
    model = _model(memory_bank_size=8)
    assert len(model.queues) == 2
    spy = _Spy(model.criterion)
    model.criterion = spy  # type: ignore[assignment]
    views = _views()
    with torch.no_grad():  # evaluation does not fill the queue
        model.training_loss(views, TrainProgress())
    assert int(model.queued) == 0
    for _ in range(3):
        model.training_loss(views, TrainProgress())
    # 4 + 4 samples fill a queue of 8: the fourth call (third training step) uses it.
    assert [queue is not None for queue in spy.queues] == [False, False, False, True]
    last = spy.queues[-1]
    assert last is not None
    assert [tuple(q.shape) for q in last] == [(8, 16), (8, 16)]
    assert not any(q.requires_grad for q in last)


def test_defaults() -> None:
    model = _model()
    assert len(model.queues) == 0
    assert model.criterion.temperature == 0.1
    method = get_method("swav")
    views = method.build_transform(32)(torch.rand(3, 40, 40))
    assert [tuple(v.shape[1:]) for v in views] == [(32, 32)] * 2 + [(14, 14)] * 6
