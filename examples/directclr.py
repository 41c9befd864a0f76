"""DirectCLR in a plain PyTorch loop, from selfsup's parts.

    python examples/directclr.py --input-dir ./images --epochs 10
    python examples/directclr.py         # on generated images (torchvision FakeData)

Jing et al. 2022: SimCLR without a projector, its InfoNCE loss applied directly to the first
d0 dimensions of the backbone's representation (360 of ResNet-50's 2048 in the paper).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import NTXentLoss
from selfsup.models import ResNetGenerator
from selfsup.transforms import SimCLRTransform
from selfsup.utils.debug import std_of_l2_normalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    parser.add_argument(
        "--d0", type=int, default=0, help="dimensions the loss sees (0: paper's ratio)"
    )
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
    model = resnet  # no projector
    # The paper's d0 = 360 of 2048 dimensions, at the same ratio for this backbone.
    d0 = args.d0 or max(1, round(resnet.num_features * 360 / 2048))
    criterion = NTXentLoss(temperature=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-6)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            features = model(x0).flatten(start_dim=1)
            z1 = model(x1).flatten(start_dim=1)
            # InfoNCE on the sub-vectors r[:d0] of the representations themselves.
            loss = criterion(features[:, :d0], z1[:, :d0])
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
