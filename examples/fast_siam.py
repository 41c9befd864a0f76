"""FastSiam in a plain PyTorch loop, from selfsup's parts.

    python examples/fast_siam.py --input-dir ./images --epochs 10
    python examples/fast_siam.py         # on generated images (torchvision FakeData)

Pototzky et al. 2022: SimSiam with four views of each image; each view's prediction
regresses the mean projection of the other three (a steadier target than one view, so
fewer epochs are needed), with SimSiam's stop-gradient on that target.
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
from selfsup.transforms import FastSiamTransform
from selfsup.utils.debug import std_of_l2_normalized


class FastSiam(nn.Module):
    """Backbone + SimSiam's projection head (B, D) -> (B, out_dim) + prediction head."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SimSiamProjectionHead(num_features, 512, out_dim)
        self.prediction_head = SimSiamPredictionHead(out_dim, 64, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D), projection z, prediction p."""
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
    args = parser.parse_args()

    transform = FastSiamTransform(num_views=4, input_size=args.input_size, gaussian_blur=0.0)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = FastSiam(resnet, num_features=resnet.num_features)
    criterion = NegativeCosineSimilarity()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            # All views in one forward pass: (V * B, 3, H, W).
            features, z, p = model(torch.cat(views))
            zs, ps = z.chunk(len(views)), p.chunk(len(views))
            loss = torch.zeros(())
            for i, p_i in enumerate(ps):
                # Target: the mean projection of the other views, without gradient.
                others = torch.stack([zs[j] for j in range(len(views)) if j != i])
                loss = loss + criterion(p_i, others.mean(dim=0).detach()) / len(views)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(features[: len(views[0])].detach())))
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
