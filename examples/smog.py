"""SMoG in a plain PyTorch loop, from selfsup's parts.

    python examples/smog.py --input-dir ./images --epochs 10
    python examples/smog.py            # on generated images (torchvision FakeData)

Pang et al. 2022: the momentum encoder's projection of one view picks the nearest of K group
features; the online prediction of the other view is classified into that group (softmax over
cosine similarities / 0.1), and the groups follow their members' mean by momentum in the same
step. The loss is a cross-entropy over the K groups (log K at chance).
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.models import ResNetGenerator
from selfsup.models.modules import SMoGPredictionHead, SMoGProjectionHead, SMoGPrototypes
from selfsup.models.utils import deactivate_requires_grad, update_momentum
from selfsup.transforms import SMoGTransform
from selfsup.utils.debug import std_of_l2_normalized


def frozen_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` that gets no gradients: it follows by momentum only."""
    copied = copy.deepcopy(module)
    deactivate_requires_grad(copied)
    return copied


class SMoG(nn.Module):
    """Online backbone, projector and predictor; their momentum copies; the groups."""

    def __init__(self, backbone: nn.Module, num_features: int, n_groups: int = 64) -> None:
        super().__init__()
        self.backbone = backbone
        self.projection_head = SMoGProjectionHead(num_features, 512, 128)
        self.prediction_head = SMoGPredictionHead(128, 512, 128)
        self.backbone_momentum = frozen_copy(backbone)
        self.projection_head_momentum = frozen_copy(self.projection_head)
        groups = F.normalize(torch.randn(n_groups, 128), dim=1)
        self.smog = SMoGPrototypes(groups, beta=0.99)

    def online(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> features (B, D), projection (B, 128), prediction (B, 128)."""
        features = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(features)
        return features, z, self.prediction_head(z)

    @torch.no_grad()
    def target(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> momentum projection (B, 128)."""
        z: torch.Tensor = self.projection_head_momentum(self.backbone_momentum(x).flatten(1))
        return z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # Two large crops per image (lightly's SMoGTransform adds 4 small ones by default).
    transform = SMoGTransform(
        crop_sizes=(args.input_size,),
        crop_counts=(2,),
        crop_min_scales=(0.2,),
        crop_max_scales=(1.0,),
        gaussian_blur_probs=(0.5,),
        gaussian_blur_kernel_sizes=(None,),
        solarize_probs=(0.0,),
    )
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = SMoG(resnet, num_features=resnet.num_features)
    criterion = nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.06, momentum=0.9, weight_decay=1e-6)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            update_momentum(model.backbone, model.backbone_momentum, 0.99)
            update_momentum(model.projection_head, model.projection_head_momentum, 0.99)
            features, z0, p0 = model.online(x0)
            _, z1, p1 = model.online(x1)
            # Each view's target picks the group the other view's prediction must match.
            a0 = model.smog.assign_groups(model.target(x0))
            a1 = model.smog.assign_groups(model.target(x1))
            groups = model.smog.get_updated_group_features(torch.cat([z0, z1]))
            loss = 0.5 * (
                criterion(model.smog(p0, groups, temperature=0.1), a1)
                + criterion(model.smog(p1, groups, temperature=0.1), a0)
            )
            model.smog.set_group_features(groups)
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
