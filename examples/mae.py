"""MAE in a plain PyTorch loop, from selfsup's parts.

    python examples/mae.py --input-dir ./images --epochs 10
    python examples/mae.py              # on generated images (torchvision FakeData)

He et al. 2021, Masked Autoencoders Are Scalable Vision Learners. 75% of each image's patches
are dropped; a ViT encodes the visible ones, a small decoder fills the dropped places with a
mask token and reconstructs their pixels (normalised per patch), with the mean squared error
on the dropped patches only.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData
from torchvision.models import VisionTransformer

from selfsup.data import LightlyDataset
from selfsup.methods.mae import normalize_patches
from selfsup.models.modules import MaskedVisionTransformerTorchvision
from selfsup.models.modules.masked_autoencoder import MAEDecoderTIMM
from selfsup.models.utils import (
    get_at_index,
    patchify,
    random_token_mask,
    repeat_token,
    set_at_index,
)
from selfsup.transforms import MAETransform
from selfsup.utils.debug import std_of_l2_normalized

PATCH_SIZE = 4


class MAE(nn.Module):
    """A small ViT encoder and MAE's decoder."""

    def __init__(self, image_size: int, mask_ratio: float = 0.75) -> None:
        super().__init__()
        # A small ViT (the paper: ViT-B/L/H on 224 px ImageNet).
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
        self.sequence_length = self.backbone.sequence_length  # class token + patches
        self.decoder = MAEDecoderTIMM(
            patch_size=PATCH_SIZE,
            embed_dim=64,
            decoder_embed_dim=32,
            decoder_depth=2,
            decoder_num_heads=2,
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) -> predicted and true pixels of the masked patches, and the
        mean of the visible patch tokens (B, 64)."""
        b = images.shape[0]
        idx_keep, idx_mask = random_token_mask(
            (b, self.sequence_length), self.mask_ratio, device=images.device
        )
        encoded = self.backbone.encode(images, idx_keep=idx_keep)  # only the kept tokens
        visible = self.decoder.embed(encoded)
        full = repeat_token(self.decoder.mask_token, (b, self.sequence_length))
        full = set_at_index(full, idx_keep, visible)
        pred = self.decoder.predict(get_at_index(self.decoder.decode(full), idx_mask))
        # Index 0 of the sequence is the class token, patch i is token i + 1.
        target = get_at_index(patchify(images, PATCH_SIZE), idx_mask - 1)
        # The paper's normalised-pixel target: each patch standardised by its own statistics.
        target = normalize_patches(target)
        return pred, target, encoded[:, 1:].mean(dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    size = max(PATCH_SIZE, args.input_size // PATCH_SIZE * PATCH_SIZE)
    transform = MAETransform(input_size=size)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    model = MAE(image_size=size)
    criterion = nn.MSELoss()
    # The paper: AdamW, betas (0.9, 0.95), base lr 1.5e-4 per 256 images, weight decay 0.05.
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1.5e-4 * 16, betas=(0.9, 0.95), weight_decay=0.05
    )

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            pred, target, features = model(views[0])
            loss = criterion(pred, target)
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
