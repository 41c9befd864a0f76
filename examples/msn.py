"""MSN in a plain PyTorch loop, from selfsup's parts.

    python examples/msn.py --input-dir ./images --epochs 10
    python examples/msn.py              # on generated images (torchvision FakeData)
    python examples/msn.py --pmsn       # PMSN: a power-law prior over the prototypes

Assran et al. 2022, Masked Siamese Networks. A ViT sees anchor views with some of their
patch tokens dropped; each anchor predicts to which of K learnable prototypes the unmasked
target view of its image belongs, as seen by a momentum copy of the network (sharpened
soft assignment), and a mean-entropy term keeps all prototypes in use.
"""

from __future__ import annotations

import argparse
import copy

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData
from torchvision.models import VisionTransformer

from selfsup.data import LightlyDataset
from selfsup.loss import MSNLoss, PMSNLoss
from selfsup.models.modules import MaskedVisionTransformerTorchvision, MSNProjectionHead
from selfsup.models.utils import (
    cosine_schedule,
    deactivate_requires_grad,
    random_token_mask,
    update_momentum,
)
from selfsup.transforms import MSNTransform
from selfsup.utils.debug import std_of_l2_normalized

PATCH_SIZE = 4


class MSN(nn.Module):
    """Online ViT + projection head, their momentum copies, and the prototypes."""

    def __init__(self, image_size: int, mask_ratio: float = 0.15) -> None:
        super().__init__()
        # A small ViT (the paper trains ViT-S/16 and larger on ImageNet).
        vit = VisionTransformer(
            image_size=image_size,
            patch_size=PATCH_SIZE,
            num_layers=2,
            num_heads=4,
            hidden_dim=64,
            mlp_dim=128,
        )
        self.mask_ratio = mask_ratio
        self.backbone = MaskedVisionTransformerTorchvision(vit)
        self.projection_head = MSNProjectionHead(64, 256, 64)
        self.anchor_backbone = copy.deepcopy(self.backbone)
        self.anchor_projection_head = copy.deepcopy(self.projection_head)
        # The target encoder is the momentum copy; the anchor encoder is trained.
        deactivate_requires_grad(self.backbone)
        deactivate_requires_grad(self.projection_head)
        self.prototypes = nn.Linear(64, 128, bias=False)

    @torch.no_grad()
    def forward_target(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.projection_head(self.backbone(x))
        return out

    def forward_anchor(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Masked view (B, 3, H, W) -> backbone features (B, 64), projection (B, 64)."""
        # The class token (index 0) and the patch tokens; the class token is always kept.
        tokens = 1 + (x.shape[2] // PATCH_SIZE) * (x.shape[3] // PATCH_SIZE)
        keep, _ = random_token_mask((x.shape[0], tokens), self.mask_ratio, device=x.device)
        features = self.anchor_backbone(x, idx_keep=keep)
        out: torch.Tensor = self.anchor_projection_head(features)
        return features, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    parser.add_argument("--pmsn", action="store_true", help="PMSN's power-law prior")
    args = parser.parse_args()

    # Sides must be multiples of the patch size; focal views are about half the random ones
    # (paper: 224 and 96). 2 random views (target, anchor) and 4 focal anchors (paper: 10).
    size = max(PATCH_SIZE, args.input_size // PATCH_SIZE * PATCH_SIZE)
    focal = max(PATCH_SIZE, size // 2 // PATCH_SIZE * PATCH_SIZE)
    transform = MSNTransform(random_size=size, focal_size=focal, focal_views=4)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    model = MSN(image_size=size)
    criterion = PMSNLoss() if args.pmsn else MSNLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.04)

    steps = args.epochs * len(loader)
    step = 0
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            # The target encoder follows the anchor encoder, momentum 0.996 -> 1 (cosine).
            m = cosine_schedule(step, max(steps, 1), 0.996, 1.0)
            update_momentum(model.anchor_backbone, model.backbone, m=m)
            update_momentum(model.anchor_projection_head, model.projection_head, m=m)
            targets = model.forward_target(views[0])
            features, first = model.forward_anchor(views[1])
            anchors = torch.cat([first, *(model.forward_anchor(v)[1] for v in views[2:])])
            loss = criterion(anchors, targets, model.prototypes.weight)
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
