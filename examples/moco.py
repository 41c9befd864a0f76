"""MoCo v2 in a plain PyTorch loop, from selfsup's parts.

    python examples/moco.py --input-dir ./images --epochs 10
    python examples/moco.py              # on generated images (torchvision FakeData)

He et al. 2019 / Chen et al. 2020: a query encoder trained by backpropagation, a key encoder
that is its exponential moving average, and an InfoNCE loss whose negatives come from a
queue (memory bank) of past keys.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import NTXentLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import MoCoProjectionHead
from selfsup.models.utils import cosine_schedule, deactivate_requires_grad, update_momentum
from selfsup.transforms import MoCoV2Transform


class MoCo(nn.Module):
    """Query encoder and its momentum (key) copy, each backbone + projection head."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = MoCoProjectionHead(num_features, 512, out_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z: torch.Tensor = self.projection_head(self.backbone(x).flatten(start_dim=1))
        return z

    @torch.no_grad()
    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone_momentum(x).flatten(start_dim=1)
        z: torch.Tensor = self.projection_head_momentum(features)
        return z.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--memory-bank-size", type=int, default=1024)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    transform = MoCoV2Transform(input_size=args.input_size, gaussian_blur=0.0)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()
    model = MoCo(resnet, num_features=resnet.num_features)
    criterion = NTXentLoss(temperature=0.1, memory_bank_size=args.memory_bank_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)

    steps = args.epochs * len(loader)
    step = 0
    for epoch in range(args.epochs):
        total = 0.0
        for (x_query, x_key), _, _ in loader:
            # The key encoder's momentum rises from 0.996 to 1 over training (cosine schedule).
            m = cosine_schedule(step, max(steps, 1), 0.996, 1.0)
            update_momentum(model.backbone, model.backbone_momentum, m=m)
            update_momentum(model.projection_head, model.projection_head_momentum, m=m)
            query = model(x_query)
            key = model.forward_momentum(x_key)
            loss = criterion(query, key)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            step += 1
        print(f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}")


if __name__ == "__main__":
    main()
