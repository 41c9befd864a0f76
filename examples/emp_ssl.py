"""EMP-SSL in a plain PyTorch loop, from selfsup's parts.

    python examples/emp_ssl.py --input-dir ./images --epochs 2
    python examples/emp_ssl.py            # on generated images (torchvision FakeData)

Tong, Chen, Ma & LeCun 2023: many small patches of every image go through one network; the
total coding rate keeps each patch's batch of embeddings spread over many directions, and a
cosine term pulls every patch towards the mean embedding of its image. The loss is the
negative of that objective, so it is below zero and falls as training goes.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import EMPSSLLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import ProjectionHead
from selfsup.transforms import EMPSSLTransform
from selfsup.utils.debug import std_of_l2_normalized


class EMPSSL(nn.Module):
    """Backbone (B, 3, H, W) -> (B, D) features, projector (B, D) -> unit (B, out_dim)."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 256) -> None:
        super().__init__()
        self.backbone = backbone
        hidden = 4 * out_dim  # the authors: 4096 for 1024
        self.projection_head = ProjectionHead(
            [
                (num_features, hidden, nn.BatchNorm1d(hidden), nn.ReLU()),
                (hidden, hidden, nn.BatchNorm1d(hidden), nn.ReLU()),
                (hidden, out_dim, None, None),
            ]
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D) and unit embedding (B, out_dim)."""
        features = self.backbone(x).flatten(start_dim=1)
        z = F.normalize(self.projection_head(features), dim=1)
        return features, z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    parser.add_argument("--num-patches", type=int, default=4, help="the authors: 100")
    args = parser.parse_args()

    transform = EMPSSLTransform(num_patches=args.num_patches, input_size=args.input_size)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = EMPSSL(resnet, num_features=resnet.num_features)
    criterion = EMPSSLLoss()  # coding-rate ε² 0.2, invariance weight 200 (the authors' code)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-4)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for patches, _, _ in loader:
            # Every patch of every image in one pass: batch norm sees them all.
            features, z = model(torch.cat(patches))
            loss = criterion(z.chunk(len(patches)))
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
