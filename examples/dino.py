"""DINO in a plain PyTorch loop, from selfsup's parts.

    python examples/dino.py --input-dir ./images --epochs 10
    python examples/dino.py              # on generated images (torchvision FakeData)

Caron et al. 2021: self-distillation with no labels. A student network matches the output
distribution of a momentum teacher across views: the teacher sees only the global crops,
the student also the small local crops, and centering plus a sharp teacher temperature
keep the outputs from collapsing.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import DINOLoss
from selfsup.models import ResNetGenerator
from selfsup.models.modules import DINOProjectionHead
from selfsup.models.utils import cosine_schedule, deactivate_requires_grad, update_momentum
from selfsup.transforms import DINOTransform
from selfsup.utils.debug import std_of_l2_normalized


class DINO(nn.Module):
    """Student backbone + head, and the teacher: their momentum copy."""

    def __init__(self, backbone: nn.Module, num_features: int, out_dim: int = 2048) -> None:
        super().__init__()
        self.student_backbone = backbone
        # BatchNorm in the head suits a convolutional backbone; the last layer stays frozen
        # during the first epoch (freeze_last_layer=1), which the paper finds helps training.
        self.student_head = DINOProjectionHead(
            num_features, 512, 64, out_dim, batch_norm=True, freeze_last_layer=1
        )
        self.teacher_backbone = copy.deepcopy(backbone)
        self.teacher_head = copy.deepcopy(self.student_head)
        deactivate_requires_grad(self.teacher_backbone)
        deactivate_requires_grad(self.teacher_head)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) -> student backbone features (B, D) and logits (B, out_dim)."""
        features = self.student_backbone(x).flatten(start_dim=1)
        logits: torch.Tensor = self.student_head(features)
        return features, logits

    @torch.no_grad()
    def forward_teacher(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.teacher_head(self.teacher_backbone(x).flatten(start_dim=1))
        return logits.detach()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # 2 global crops at the input size, 6 local crops at half of it (paper: 224 and 96).
    transform = DINOTransform(
        global_crop_size=args.input_size,
        local_crop_size=max(args.input_size // 2, 8),
        gaussian_blur=(0.0, 0.0, 0.0),
    )
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    resnet = ResNetGenerator("resnet-18", width=0.5)
    resnet.linear = nn.Identity()  # keep the pooled features
    model = DINO(resnet, num_features=resnet.num_features)
    criterion = DINOLoss(output_dim=2048, warmup_teacher_temp_epochs=5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    steps = args.epochs * len(loader)
    step = 0
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            # The teacher's momentum rises from 0.996 to 1 over training (cosine schedule).
            m = cosine_schedule(step, max(steps, 1), 0.996, 1.0)
            update_momentum(model.student_backbone, model.teacher_backbone, m=m)
            update_momentum(model.student_head, model.teacher_head, m=m)
            # The teacher sees the 2 global views, the student all views (global ones first).
            # Views of one size go through the network as one batch, as in the paper's code.
            global_views, local_views = torch.cat(views[:2]), torch.cat(views[2:])
            teacher_out = list(model.forward_teacher(global_views).chunk(2))
            features, student_global = model(global_views)
            student_out = [*student_global.chunk(2), *model(local_views)[1].chunk(len(views) - 2)]
            loss = criterion(teacher_out, student_out, epoch=epoch)
            optimizer.zero_grad()
            loss.backward()
            model.student_head.cancel_last_layer_gradients(current_epoch=epoch)
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
