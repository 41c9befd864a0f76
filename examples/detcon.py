"""DetCon-S in a plain PyTorch loop, from selfsup's parts.

    python examples/detcon.py --input-dir ./images --epochs 10
    python examples/detcon.py            # on generated images (torchvision FakeData)

Hénaff et al. 2021: the backbone's feature map is pooled under region masks (here the
spatial heuristic, a 4 x 4 grid of image regions carried into each view by its location grid),
and the same region of the same image in the other view is the positive of a contrastive loss
over all regions of the batch. DetCon-B does the same with BYOL's online/target networks
(``DetConBTransform``, ``DetConBLoss``; ``selfsup train method=detconb``).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import DetConSLoss
from selfsup.methods.detcon import region_pool, sample_regions, spatial_regions
from selfsup.models import ResNetGenerator
from selfsup.models.feature_map import embedding_and_feature_map
from selfsup.models.modules import SimCLRProjectionHead
from selfsup.transforms import DetConSTransform
from selfsup.utils.debug import std_of_l2_normalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    grid_size = max(1, args.input_size // 8)  # the ResNet below maps 32 pixels to 4 x 4
    transform = DetConSTransform(input_size=args.input_size, grid_size=grid_size)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    head = SimCLRProjectionHead(resnet.num_features, resnet.num_features, 128)
    model = nn.ModuleDict({"backbone": resnet, "head": head})
    criterion = DetConSLoss(temperature=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-6)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1, grid0, grid1), _, _ in loader:
            regions = [spatial_regions(grid0), spatial_regions(grid1)]
            ids = sample_regions(regions[0], regions[1], count=16, n_regions=16)
            projections = []
            for x, region in zip((x0, x1), regions, strict=True):
                embedding, fmap = embedding_and_feature_map(resnet, x)
                pooled = region_pool(F.adaptive_avg_pool2d(fmap, grid_size), region, ids)
                z = head(pooled.flatten(0, 1)).reshape(*ids.shape, -1)  # (B, M, 128)
                projections.append(z)
            loss = criterion(projections[0], projections[1], ids, ids)
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
