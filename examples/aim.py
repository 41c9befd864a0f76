"""AIM in a plain PyTorch loop, from selfsup's parts.

    python examples/aim.py --input-dir ./images --epochs 10
    python examples/aim.py              # on generated images (torchvision FakeData)

El-Nouby et al. 2024: autoregressive image models. The ViT reads the patches in raster
order with prefix-causal attention (a random prefix of patches attends bidirectionally, the
rest only to earlier patches), and an MLP head predicts from each patch the normalised pixels
of the next one; the loss counts the patches after the prefix.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData
from torchvision.models import VisionTransformer

from selfsup.data import LightlyDataset
from selfsup.methods.aim import aim_loss, normalized_pixel_targets
from selfsup.models.modules.masked_causal_vision_transformer import (
    AIMPredictionHead,
    MaskedCausalVisionTransformer,
)
from selfsup.models.modules.masked_vision_transformer import MaskedVisionTransformerTorchvision
from selfsup.transforms import AIMTransform
from selfsup.utils.debug import std_of_l2_normalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # A 4x4 patch grid: 16 patches in raster order.
    patch = max(args.input_size // 4, 1)
    size = 4 * patch
    transform = AIMTransform(input_size=size)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    vit = VisionTransformer(
        image_size=size, patch_size=patch, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128
    )
    # AIM trains the patch tokens (the class token's output feeds no prediction): embed with
    # their mean (pool="mean"); AIM's own probe attends over them.
    backbone = MaskedVisionTransformerTorchvision(vit, pool="mean")
    causal = MaskedCausalVisionTransformer(backbone)
    head = AIMPredictionHead(64, patch * patch * 3, hidden_dim=128, num_blocks=2)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)

    n_patches = 16
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for images, _, _ in loader:
            # A prefix of S ~ U{1, ..., 15} patches per image attends bidirectionally.
            prefix = torch.randint(1, n_patches, (images.shape[0],))
            tokens = causal.encode(images, prefix)[:, 1:]  # drop the class token
            targets = normalized_pixel_targets(images, patch)
            loss = aim_loss(head(tokens), targets, prefix)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            total += float(loss.detach())
            with torch.no_grad():
                # AIM's representations are its patch features, read with the ordinary,
                # bidirectional attention: their spread over all patches of the batch.
                features = backbone.encode(images)[:, 1:].flatten(0, 1)
                stds.append(float(std_of_l2_normalized(features)))
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
