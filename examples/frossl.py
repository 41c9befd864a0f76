"""FroSSL in a plain PyTorch loop, from selfsup's parts.

    python examples/frossl.py --input-dir ./images --epochs 10
    python examples/frossl.py            # on generated images (torchvision FakeData)

Skean et al. 2023: the log of the Frobenius norm of every view's trace-normalised covariance
is smallest when the embeddings spread evenly over all directions, and a mean-squared error
pulls the views of an image together; no negatives, predictor or momentum encoder. The log
term lies between -log(min(batch, dim)) and 0, so the loss is mostly below zero.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import FroSSLLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import VICRegProjectionHead
from selfsup.transforms import VICRegTransform
from selfsup.utils.debug import std_of_l2_normalized


class FroSSL(nn.Module):
    """Backbone (B, 3, H, W) -> (B, D) features, projector (B, D) -> (B, out_dim)."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 256) -> None:
        super().__init__()
        self.backbone = backbone
        # The authors: hidden 2048, output 1024 (two layers, as VICReg's expander).
        self.projection_head = VICRegProjectionHead(num_features, 2 * out_dim, out_dim, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D) and embedding (B, out_dim)."""
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
    args = parser.parse_args()

    transform = VICRegTransform(input_size=args.input_size)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = FroSSL(resnet, num_features=resnet.num_features)
    criterion = FroSSLLoss()  # invariance weight 1, the authors' setting; any number of views
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-4)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            outputs = [model(x) for x in views]
            loss = criterion([z for _, z in outputs])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(outputs[0][0].detach())))
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
