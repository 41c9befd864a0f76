"""I-JEPA in a plain PyTorch loop, from selfsup's parts.

    python examples/ijepa.py --input-dir ./images --epochs 10
    python examples/ijepa.py              # on generated images (torchvision FakeData)

Assran et al. 2023: from one context block of an image, predict the representations of
four target blocks of the same image. The collate function draws the blocks; the context
encoder sees only the context patches, the target encoder (its momentum copy) the whole
image, and a narrow predictor maps context tokens and positional mask tokens to the
target encoder's tokens of the target blocks.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData
from torchvision.models import VisionTransformer

from selfsup.data import LightlyDataset
from selfsup.data.collate import IJEPAMaskCollator
from selfsup.models.modules.ijepa import IJEPAPredictor
from selfsup.models.modules.masked_vision_transformer import MaskedVisionTransformerTorchvision
from selfsup.models.utils import (
    cosine_schedule,
    deactivate_requires_grad,
    get_at_index,
    update_momentum,
)
from selfsup.transforms import IJEPATransform
from selfsup.utils.debug import std_of_l2_normalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # An 8x8 patch grid, enough room for four target blocks and a context around them.
    patch = max(args.input_size // 8, 1)
    size = 8 * patch
    transform = IJEPATransform(input_size=size)
    collate = IJEPAMaskCollator(input_size=size, patch_size=patch)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, drop_last=True, collate_fn=collate
    )

    vit = VisionTransformer(
        image_size=size, patch_size=patch, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128
    )
    encoder = MaskedVisionTransformerTorchvision(vit)
    target_encoder = copy.deepcopy(encoder)
    deactivate_requires_grad(target_encoder)
    predictor = IJEPAPredictor(embed_dim=64, predictor_embed_dim=32, depth=2, num_heads=4)
    params = [*encoder.parameters(), *predictor.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.04)

    steps = args.epochs * len(loader)
    step = 0
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (images, _, _), masks_enc, masks_pred in loader:
            update_momentum(encoder, target_encoder, m=cosine_schedule(step, steps, 0.996, 1.0))
            with torch.no_grad():
                tokens = target_encoder.encode(images)[:, 1:]  # drop the class token
                embedding = tokens.mean(dim=1)  # I-JEPA evaluates average-pooled tokens
                tokens = F.layer_norm(tokens, tokens.shape[-1:])
                targets = torch.cat([get_at_index(tokens, m) for m in masks_pred])
            # Keep the class token (sequence index 0) and the context patches (index + 1).
            context_patches = masks_enc[0]
            keep = torch.cat([torch.zeros_like(context_patches[:, :1]), context_patches + 1], 1)
            context = encoder.encode(images, idx_keep=keep)
            predictions: torch.Tensor = predictor(
                context[:, 1:], context_patches, masks_pred, collate.grid
            )
            loss = F.mse_loss(predictions, targets)
            optimizer.zero_grad()
            torch.autograd.backward(loss)
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(embedding)))
            step += 1
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
