"""MMCR in a plain PyTorch loop, from selfsup's parts.

    python examples/mmcr.py --input-dir ./images --epochs 10
    python examples/mmcr.py              # on generated images (torchvision FakeData)

Yerxa et al. 2023: an online network and its momentum copy embed k views of every image;
the loss maximises the nuclear norm of the matrix of the images' centroids, which spreads the
images apart and pulls each image's views together.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import MMCRLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import MMCRProjectionHead
from selfsup.models.utils import cosine_schedule, deactivate_requires_grad, update_momentum
from selfsup.transforms import MMCRTransform
from selfsup.utils.debug import std_of_l2_normalized


class MMCR(nn.Module):
    """Online backbone + projector; their momentum copies."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 256) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = MMCRProjectionHead(num_features, 1024, out_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D) and online embeddings (B, out_dim)."""
        features = self.backbone(x).flatten(start_dim=1)
        z: torch.Tensor = self.projection_head(features)
        return features, z

    @torch.no_grad()
    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> momentum embeddings (B, out_dim)."""
        features = self.backbone_momentum(x).flatten(start_dim=1)
        z: torch.Tensor = self.projection_head_momentum(features)
        return z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    parser.add_argument("--views", type=int, default=4, help="views per image (k)")
    args = parser.parse_args()

    # k views drawn like BYOL's first view; blur is left out at CIFAR-like sizes.
    transform = MMCRTransform(k=args.views, input_size=args.input_size, gaussian_blur=0.0)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = MMCR(resnet, num_features=resnet.num_features)
    criterion = MMCRLoss(lmda=5e-3)  # the paper's ImageNet value
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-6)

    steps = args.epochs * len(loader)
    step = 0
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            # The momentum rises from 0.99 to 1 over training (cosine schedule).
            m = cosine_schedule(step, max(steps, 1), 0.99, 1.0)
            update_momentum(model.backbone, model.backbone_momentum, m=m)
            update_momentum(model.projection_head, model.projection_head_momentum, m=m)
            # All k views in one batch; then (k * B, D) -> (B, k, D), the views of an image
            # side by side.
            k, batch = len(views), views[0].shape[0]
            features, z = model(torch.cat(views))
            online = z.reshape(k, batch, -1).transpose(0, 1)
            momentum = model.forward_momentum(torch.cat(views)).reshape(k, batch, -1)
            loss = criterion(online, momentum.transpose(0, 1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(features.detach())))
            step += 1
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
