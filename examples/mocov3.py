"""MoCo v3 (ResNet) in a plain PyTorch loop, from selfsup's parts.

    python examples/mocov3.py --input-dir ./images --epochs 10
    python examples/mocov3.py              # on generated images (torchvision FakeData)

Chen, Xie and He 2021: a query encoder (backbone, projector, predictor) and a momentum key
encoder (backbone, projector); each view's query is contrasted with the keys of the other
view of the batch (no queue), in both view orders.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import MoCoV3Loss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import MoCoV3PredictionHead, MoCoV3ProjectionHead
from selfsup.models.utils import cosine_schedule, deactivate_requires_grad, update_momentum
from selfsup.transforms import BYOLTransform, BYOLView1Transform, BYOLView2Transform
from selfsup.utils.debug import std_of_l2_normalized


class MoCoV3(nn.Module):
    """Query encoder f_q (backbone, projector, predictor); key encoder f_k, its moving average
    without the predictor."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 256) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = MoCoV3ProjectionHead(num_features, 1024, out_dim)
        self.prediction_head = MoCoV3PredictionHead(out_dim, 1024, out_dim)
        self.backbone_momentum = copy.deepcopy(backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> backbone features (B, D) and queries (B, out_dim)."""
        features = self.backbone(x).flatten(start_dim=1)
        q: torch.Tensor = self.prediction_head(self.projection_head(features))
        return features, q

    @torch.no_grad()
    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> keys (B, out_dim)."""
        features = self.backbone_momentum(x).flatten(start_dim=1)
        k: torch.Tensor = self.projection_head_momentum(features)
        return k


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # MoCo v3 follows BYOL's augmentations; blur is left out at CIFAR-like sizes.
    transform = BYOLTransform(
        view_1_transform=BYOLView1Transform(input_size=args.input_size, gaussian_blur=0.0),
        view_2_transform=BYOLView2Transform(input_size=args.input_size, gaussian_blur=0.0),
    )
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = MoCoV3(resnet, num_features=resnet.num_features)
    criterion = MoCoV3Loss(temperature=0.2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=1.5e-6)

    steps = args.epochs * len(loader)
    step = 0
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            # The key encoder's momentum rises from 0.99 to 1 over training (cosine schedule).
            m = cosine_schedule(step, max(steps, 1), 0.99, 1.0)
            update_momentum(model.backbone, model.backbone_momentum, m=m)
            update_momentum(model.projection_head, model.projection_head_momentum, m=m)
            features, q0 = model(x0)
            _, q1 = model(x1)
            k0, k1 = model.forward_momentum(x0), model.forward_momentum(x1)
            # Symmetrised (Algorithm 1): ctr(q1, k2) + ctr(q2, k1).
            loss = criterion(q0, k1) + criterion(q1, k0)
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
