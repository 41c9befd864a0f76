"""SimMIM in a plain PyTorch loop, from selfsup's parts.

    python examples/simmim.py --input-dir ./images --epochs 10
    python examples/simmim.py              # on generated images (torchvision FakeData)

Xie et al. 2021, SimMIM: a Simple Framework for Masked Image Modeling. Random square cells of
the image are masked (replaced by a learned mask token before the ViT); a linear layer
predicts every token's raw pixels, and an L1 loss compares them on the masked pixels only.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData
from torchvision.models import VisionTransformer

from selfsup.data import LightlyDataset
from selfsup.methods.simmim import random_cell_mask, simmim_loss
from selfsup.models.modules import MaskedVisionTransformerTorchvision
from selfsup.models.utils import patchify
from selfsup.transforms import SimMIMTransform
from selfsup.utils.debug import std_of_l2_normalized

PATCH_SIZE = 4


class SimMIM(nn.Module):
    """A small ViT encoder and SimMIM's linear pixel head."""

    def __init__(self, image_size: int, mask_ratio: float = 0.6) -> None:
        super().__init__()
        vit = VisionTransformer(
            image_size=image_size,
            patch_size=PATCH_SIZE,
            num_layers=4,
            num_heads=4,
            hidden_dim=64,
            mlp_dim=128,
        )
        self.mask_ratio = mask_ratio
        self.backbone = MaskedVisionTransformerTorchvision(vit)
        self.head = nn.Linear(64, PATCH_SIZE * PATCH_SIZE * 3)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) -> the L1 loss on masked pixels and the mean patch token
        (B, 64)."""
        grid = self.backbone.grid_size(images)
        # Mask cells of 2x2 patches (the paper: 32-pixel cells for 16-pixel patches).
        mask = random_cell_mask(images.shape[0], grid, 2, self.mask_ratio, images.device)
        tokens = self.backbone.encode(images, mask=mask)  # masked patches: the mask token
        pred = self.head(tokens[:, 1:])
        loss = simmim_loss(pred, patchify(images, PATCH_SIZE), mask)
        return loss, tokens[:, 1:].mean(dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    size = max(PATCH_SIZE, args.input_size // PATCH_SIZE * PATCH_SIZE)
    transform = SimMIMTransform(input_size=size)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    model = SimMIM(image_size=size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            loss, features = model(views[0])
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
