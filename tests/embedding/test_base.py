"""BaseEmbedding (lightly's SelfSupervisedEmbedding loop): checkpoints hold BatchNorm statistics
of the weights they are saved with."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from selfsup.embedding import SelfSupervisedEmbedding


class _TwoView(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())

    def forward(self, x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
        return self.backbone(x0), self.backbone(x1)


def _mse(y0: Tensor, y1: Tensor) -> Tensor:
    return (y0 - y1).pow(2).mean()


class _Loss(nn.Module):
    def forward(self, y0: Tensor, y1: Tensor) -> Tensor:
        return _mse(y0, y1)


def test_the_saved_statistics_are_those_of_the_final_weights(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(12, 4) * 5 + 3
    samples = [([a, a + 0.1], 0, str(i)) for i, a in enumerate(x)]
    loader: DataLoader[tuple[list[Tensor], int, str]] = DataLoader(samples, batch_size=4)
    model = _TwoView()
    embedding = SelfSupervisedEmbedding(
        model, _Loss(), torch.optim.SGD(model.parameters(), lr=1.0), loader
    )
    checkpoint = embedding.train_embedding(
        gpus=0, max_epochs=1, checkpoint_dir=tmp_path, enable_progress_bar=False
    )
    bn = model.backbone[1]
    assert isinstance(bn, nn.BatchNorm1d)
    with torch.no_grad():
        hidden = [model.backbone[0](batch[0][0]) for batch in loader]
    mean = torch.stack([h.mean(0) for h in hidden]).mean(0)
    var = torch.stack([h.var(0) for h in hidden]).mean(0)
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.allclose(saved["model.backbone.1.running_mean"], mean, atol=1e-5)
    assert torch.allclose(saved["model.backbone.1.running_var"], var, rtol=1e-4)
