"""NNCLR in a plain PyTorch loop, from selfsup's parts.

    python examples/nnclr.py --input-dir ./images --epochs 10
    python examples/nnclr.py             # on generated images (torchvision FakeData)

Dwibedi et al. 2021: SimCLR with the positive of each view replaced by its nearest
neighbour in a support set of embeddings from earlier batches, so that positives cover
more variation than augmentations alone; a prediction head sits on the other branch.
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
from selfsup.models.modules import NNCLRPredictionHead, NNCLRProjectionHead, NNMemoryBankModule
from selfsup.transforms import SimCLRTransform
from selfsup.utils.debug import std_of_l2_normalized


class NNCLR(nn.Module):
    """Backbone, projection head (B, D) -> z (B, out_dim), prediction head z -> p."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = NNCLRProjectionHead(num_features, 512, out_dim)
        self.prediction_head = NNCLRPredictionHead(out_dim, 512, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D), projection z and prediction p."""
        features = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(features)
        p: torch.Tensor = self.prediction_head(z)
        return features, z, p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    parser.add_argument("--support-set-size", type=int, default=4096)
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
    model = NNCLR(resnet, num_features=resnet.num_features)
    # The support set starts as random unit vectors and fills with the projections of
    # the second views, batch after batch (paper: 98304 entries; 4096 for small data).
    support_set = NNMemoryBankModule(size=(args.support_set_size, 128))
    criterion = NTXentLoss(temperature=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            features, z0, p0 = model(x0)
            _, z1, p1 = model(x1)
            # Each projection is replaced by its nearest neighbour among past embeddings
            # (no gradient flows into the support set); predictions stay as they are.
            nn0 = support_set(z0.detach(), update=False)
            nn1 = support_set(z1.detach(), update=True)
            loss = 0.5 * (criterion(nn0, p1) + criterion(nn1, p0))
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
