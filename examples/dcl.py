"""Decoupled contrastive learning (DCL, DCLW) in a plain PyTorch loop, from selfsup's parts.

    python examples/dcl.py --input-dir ./images --epochs 10
    python examples/dcl.py --weighted    # DCLW: positives weighted by a von Mises-Fisher kernel
    python examples/dcl.py               # on generated images (torchvision FakeData)

Yeh et al. 2022: SimCLR's setup, with the positive pair removed from the denominator of the
contrastive loss (eq. 6), which takes away the coupling that makes SimCLR need large batches.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import DCLLoss, DCLWLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import SimCLRProjectionHead
from selfsup.transforms import SimCLRTransform
from selfsup.utils.debug import std_of_l2_normalized


class DCLModel(nn.Module):
    """Backbone (B, 3, H, W) -> (B, D) features, projection head (B, D) -> (B, out_dim)."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimCLRProjectionHead(num_features, num_features, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D) and projections (B, out_dim)."""
        features = self.backbone(x).flatten(start_dim=1)
        z: torch.Tensor = self.projection_head(features)
        return features, z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    parser.add_argument("--weighted", action="store_true", help="DCLW instead of DCL")
    args = parser.parse_args()

    transform = SimCLRTransform(input_size=args.input_size, gaussian_blur=0.0)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = DCLModel(resnet, num_features=resnet.num_features)
    # The paper's temperature 0.1; DCLW's kernel width sigma 0.5.
    criterion = DCLWLoss(temperature=0.1, sigma=0.5) if args.weighted else DCLLoss(temperature=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-6)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            features, z0 = model(x0)
            _, z1 = model(x1)
            loss = criterion(z0, z1)
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
