"""SimSiam in a plain PyTorch loop, from selfsup's parts.

    python examples/simsiam.py --input-dir ./images --epochs 10
    python examples/simsiam.py           # on generated images (torchvision FakeData)

Chen & He 2020: a siamese network whose predictor on one view regresses the projection of
the other view; the stop-gradient on that projection is what prevents collapse, with no
negative pairs and no momentum encoder.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import NegativeCosineSimilarity
from selfsup.models import ResNetGenerator
from selfsup.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from selfsup.transforms import SimSiamTransform
from selfsup.utils.debug import std_of_l2_normalized


class SimSiam(nn.Module):
    """Backbone + projection head (B, D) -> (B, out_dim) + prediction head."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimSiamProjectionHead(num_features, 512, out_dim)
        self.prediction_head = SimSiamPredictionHead(out_dim, 64, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D), projection z (detached), prediction p."""
        features = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(features)
        p: torch.Tensor = self.prediction_head(z)
        # Stop-gradient: the projection is a fixed target for the other view's prediction.
        return features, z.detach(), p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    transform = SimSiamTransform(input_size=args.input_size, gaussian_blur=0.0)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = SimSiam(resnet, num_features=resnet.num_features)
    criterion = NegativeCosineSimilarity()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            features, z0, p0 = model(x0)
            _, z1, p1 = model(x1)
            # Symmetric: each view's prediction regresses the other view's projection.
            loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(features.detach())))
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
