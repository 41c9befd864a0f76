"""DenseCL in a plain PyTorch loop, from selfsup's parts.

    python examples/densecl.py --input-dir ./images --epochs 10
    python examples/densecl.py            # on generated images (torchvision FakeData)

Wang et al. 2021: MoCo v2 (momentum key encoder, queue of keys, InfoNCE on pooled features)
plus the same contrast between the locations of the two views' feature maps, each query
location paired with the key location whose backbone feature is most similar.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import DenseCLLoss
from selfsup.models import ResNetGenerator
from selfsup.models.feature_map import embedding_and_feature_map
from selfsup.models.modules import DenseCLProjectionHead
from selfsup.models.utils import deactivate_requires_grad, update_momentum
from selfsup.transforms import DenseCLTransform
from selfsup.utils.debug import std_of_l2_normalized


class Encoder(nn.Module):
    """Backbone with a global and a dense head: (B, 3, H, W) -> embedding (B, D), global
    (B, 128), dense (B, h·w, 128) projections and backbone features (B, h·w, D)."""

    def __init__(self, backbone: nn.Module, num_features: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = DenseCLProjectionHead(num_features, num_features, 128)
        self.dense_head = DenseCLProjectionHead(num_features, num_features, 128)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedding, fmap = embedding_and_feature_map(self.backbone, x)
        features = fmap.flatten(start_dim=2).transpose(1, 2)
        return embedding, self.head(embedding), self.dense_head(features), features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    transform = DenseCLTransform(input_size=args.input_size)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    query = Encoder(resnet, num_features=resnet.num_features)
    key = copy.deepcopy(query)
    deactivate_requires_grad(key)
    # lambda 0.5, tau 0.2 (the paper's); a queue of 256 keys for this small dataset.
    criterion = DenseCLLoss(temperature=0.2, memory_bank_size=(256, 128))
    optimizer = torch.optim.SGD(query.parameters(), lr=0.06, momentum=0.9, weight_decay=1e-4)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x_query, x_key), _, _ in loader:
            update_momentum(query, key, 0.99)
            embedding, q_global, q_dense, q_features = query(x_query)
            with torch.no_grad():
                _, k_global, k_dense, k_features = key(x_key)
            loss = criterion(q_global, k_global, q_dense, k_dense, q_features, k_features)
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
