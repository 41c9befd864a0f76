"""iBOT in a plain PyTorch loop, from selfsup's parts.

    python examples/ibot.py --input-dir ./images --epochs 10
    python examples/ibot.py              # on generated images (torchvision FakeData)

Zhou et al. 2022: masked image modelling with an online tokenizer. The student sees the
global crops with blocks of patches replaced by the mask token, the teacher (a momentum
copy) sees them whole; the student's class token matches the teacher's on the other views
(DINO's loss) and every masked patch token the teacher's token of that patch (iBOT's loss),
through one head shared by class and patch tokens.
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
from selfsup.loss import DINOLoss, IBOTPatchLoss
from selfsup.models.modules import DINOv2ProjectionHead
from selfsup.models.modules.masked_vision_transformer import MaskedVisionTransformerTorchvision
from selfsup.models.utils import (
    cosine_schedule,
    deactivate_requires_grad,
    random_block_mask,
    update_momentum,
)
from selfsup.transforms import DINOTransform
from selfsup.utils.debug import std_of_l2_normalized


class IBOT(nn.Module):
    """Student ViT with one head for class and patch tokens; the teacher is their momentum
    copy."""

    def __init__(self, vit: VisionTransformer, out_dim: int = 1024) -> None:
        super().__init__()
        width = vit.hidden_dim
        self.student_backbone = MaskedVisionTransformerTorchvision(vit)
        # iBOT shares the projection head between the class token and the patch tokens.
        self.student_head = DINOv2ProjectionHead(width, 256, 64, out_dim, freeze_last_layer=1)
        self.teacher_backbone = copy.deepcopy(self.student_backbone)
        self.teacher_head = copy.deepcopy(self.student_head)
        for teacher in (self.teacher_backbone, self.teacher_head):
            deactivate_requires_grad(teacher)

    def update_teacher(self, m: float) -> None:
        update_momentum(self.student_backbone, self.teacher_backbone, m=m)
        update_momentum(self.student_head, self.teacher_head, m=m)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # A 4x4 patch grid on the global crops; local crops are half the size (2x2 patches).
    patch = max(args.input_size // 4, 1)
    transform = DINOTransform(
        global_crop_size=4 * patch,
        local_crop_size=2 * patch,
        n_local_views=4,
        gaussian_blur=(0.0, 0.0, 0.0),
    )
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    vit = VisionTransformer(
        image_size=4 * patch,
        patch_size=patch,
        num_layers=2,
        num_heads=2,
        hidden_dim=64,
        mlp_dim=128,
    )
    model = IBOT(vit)
    dino_criterion = DINOLoss(
        output_dim=1024, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=3
    )
    ibot_criterion = IBOTPatchLoss(output_dim=1024)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)

    steps = args.epochs * len(loader)
    step = 0
    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for views, _, _ in loader:
            model.update_teacher(cosine_schedule(step, max(steps, 1), 0.996, 1.0))
            global_views, local_views = torch.cat(views[:2]), torch.cat(views[2:])
            # Half of the global views get 10-50% of their patches masked, in blocks.
            block_mask = random_block_mask((len(global_views), 4, 4))
            mask = block_mask.flatten(start_dim=1)  # (2B, 16) over patch tokens

            with torch.no_grad():
                tokens = model.teacher_backbone.encode(global_views)
                teacher_cls = model.teacher_head(tokens[:, 0])
                teacher_patches = model.teacher_head(tokens[:, 1:][mask])
            tokens = model.student_backbone.encode(global_views, mask=mask)
            student_cls_tokens = tokens[:, 0]
            student_patches = model.student_head(tokens[:, 1:][mask])
            local_cls = model.student_backbone.encode(local_views)[:, 0]
            student_cls = model.student_head(torch.cat([student_cls_tokens, local_cls]))

            temp = 0.04 + (0.07 - 0.04) * min(epoch / 2, 1.0)
            dino_loss = dino_criterion(
                list(teacher_cls.chunk(2)), list(student_cls.chunk(len(views))), teacher_temp=temp
            )
            ibot_loss = ibot_criterion(teacher_patches, student_patches, block_mask, temp)
            loss = dino_loss + ibot_loss
            optimizer.zero_grad()
            loss.backward()
            model.student_head.cancel_last_layer_gradients(current_epoch=epoch)
            optimizer.step()
            total += float(loss.detach())
            stds.append(float(std_of_l2_normalized(student_cls_tokens.detach())))
            step += 1
        print(
            f"epoch: {epoch:02d}, loss: {total / max(len(loader), 1):.5f}, "
            f"representation std: {sum(stds) / max(len(stds), 1):.5f}"
        )


if __name__ == "__main__":
    main()
