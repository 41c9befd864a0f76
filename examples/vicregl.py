"""VICRegL in a plain PyTorch loop, from selfsup's parts.

    python examples/vicregl.py --input-dir ./images --epochs 10
    python examples/vicregl.py            # on generated images (torchvision FakeData)

Bardes, Ponce & LeCun 2022: VICReg on the pooled embeddings of two views, and VICReg on the
cells of the backbone's feature map before pooling, each cell paired with the cell of the
other view at the nearest image location and with its nearest cell in feature space.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import VICRegLLoss
from selfsup.models import ResNetGenerator
from selfsup.models.feature_map import embedding_and_feature_map
from selfsup.models.modules import VICRegProjectionHead
from selfsup.transforms import VICRegLTransform
from selfsup.utils.debug import std_of_l2_normalized


class VICRegL(nn.Module):
    """Backbone; a global expander on its embedding and a local one on every map cell."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 256) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = VICRegProjectionHead(num_features, out_dim, out_dim, 2)
        self.local_projection_head = VICRegProjectionHead(num_features, out_dim, out_dim, 2)

    def forward(
        self, x: torch.Tensor, grid_size: int
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """(B, 3, H, W) -> embedding (B, D), and global (B, out) and local (B, g, g, out)."""
        embedding, fmap = embedding_and_feature_map(self.backbone, x)
        cells = F.adaptive_avg_pool2d(fmap, grid_size).permute(0, 2, 3, 1)  # (B, g, g, D)
        local = self.local_projection_head(cells.flatten(0, 2))
        z = self.projection_head(embedding)
        return embedding, (z, local.reshape(*cells.shape[:3], -1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # Two global views and no local ones, as the authors do for ResNets; a ResNet's map of a
    # 32-pixel input is 4 x 4 (stride 8 here), so grids of 4 cells per side.
    grid_size = max(1, args.input_size // 8)
    transform = VICRegLTransform(
        global_crop_size=args.input_size, n_local_views=0, global_grid_size=grid_size
    )
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = VICRegL(resnet, num_features=resnet.num_features)
    criterion = VICRegLLoss()  # the authors' weights, alpha 0.75, (20, 4) matches
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1, grid0, grid1), _, _ in loader:
            embedding, features0 = model(x0, grid_size)
            _, features1 = model(x1, grid_size)
            loss = criterion([features0, features1], [grid0, grid1])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(embedding.detach())))
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
