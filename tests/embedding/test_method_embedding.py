"""MethodEmbedding tells a method where training stands, once per step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from selfsup.embedding import MethodEmbedding
from selfsup.methods import MethodModel, TrainProgress


class _Spy(MethodModel):
    """A linear 'method' recording the progress each hook receives."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Linear(4, 2)
        self.seen: list[tuple[str, TrainProgress]] = []

    def training_loss(self, views: Sequence[Tensor], progress: TrainProgress) -> Tensor:
        self.seen.append(("loss", progress))
        return (self.backbone(views[0]) - self.backbone(views[1])).pow(2).mean()

    def before_optimizer_step(self, progress: TrainProgress) -> None:
        self.seen.append(("step", progress))


def test_progress_counts_steps_of_the_whole_run(tmp_path: Path) -> None:
    x = torch.randn(8, 4)
    # Batches of (views, labels, names) as a method's transform and default collate give.
    dataset = TensorDataset(x, x + 0.1, torch.zeros(8))
    loader = DataLoader(
        [([a, b], int(t), str(i)) for i, (a, b, t) in enumerate(dataset)], batch_size=4
    )
    model = _Spy()
    embedding = MethodEmbedding(model, torch.optim.SGD(model.parameters(), lr=0.1), loader)
    embedding.train_embedding(
        gpus=0, max_epochs=2, checkpoint_dir=tmp_path, enable_progress_bar=False
    )
    losses = [p for kind, p in model.seen if kind == "loss"]
    steps = [p for kind, p in model.seen if kind == "step"]
    assert [(p.epoch, p.step) for p in losses] == [(0, 0), (0, 1), (1, 2), (1, 3)]
    assert {(p.max_epochs, p.total_steps) for p in losses} == {(2, 4)}
    # The optimiser hook of a step sees that step's progress.
    assert steps == losses
