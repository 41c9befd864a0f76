"""Distillation in a plain PyTorch loop, from selfsup's parts.

    python examples/distillation.py --input-dir ./images --teacher-name torchvision/resnet50 \\
        --teacher-weights resnet50.pth --epochs 10
    python examples/distillation.py      # generated images, a random teacher (a dry run)

A small student learns to reproduce, through a projection head, the embeddings a large
frozen teacher gives the same views (LightlyTrain's distillation recipe). The teacher's
weights come from a local file (a state dict, .safetensors, a model folder or zoo:<name>,
see docs/pretrained.md); nothing is downloaded. Without --teacher-weights the teacher keeps
its random initialisation, which shows the loop but teaches nothing.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.datasets import FakeData

from selfsup.data import LightlyDataset
from selfsup.loss import DistillationLoss
from selfsup.models import ResNetGenerator
from selfsup.models.backbones import get_backbone
from selfsup.models.modules.heads import DistillationProjectionHead
from selfsup.models.weights import load_backbone_weights
from selfsup.transforms import SimCLRTransform
from selfsup.utils.debug import std_of_l2_normalized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-dir", default="", help="image folder (default: FakeData)")
    parser.add_argument("--teacher-name", default="resnet-18", help="teacher backbone")
    parser.add_argument("--teacher-weights", default="", help="teacher weights (local file)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--fake-samples", type=int, default=256)
    args = parser.parse_args()

    # Milder views than SimCLR's: the teacher must still recognise what it sees.
    transform = SimCLRTransform(input_size=args.input_size, cj_strength=0.5, min_scale=0.2)
    if args.input_dir:
        dataset = LightlyDataset(input_dir=args.input_dir, transform=transform)
    else:
        fake = FakeData(size=args.fake_samples, image_size=(3, 40, 40), num_classes=4)
        dataset = LightlyDataset.from_torch_dataset(fake, transform=transform)
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True)

    # The frozen teacher: eval mode (its batch norms keep their statistics), no gradients.
    teacher = get_backbone(args.teacher_name)
    if args.teacher_weights:
        load_backbone_weights(teacher, args.teacher_weights)
    teacher.eval()
    teacher.requires_grad_(False)

    student = ResNetGenerator("resnet-18", width=0.5)
    student.linear = nn.Identity()  # keep the pooled features
    head = DistillationProjectionHead(student.num_features, teacher.num_features)
    criterion = DistillationLoss()  # DistillationLoss(queue_size=4096): soft assignment
    params = [*student.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)

    for epoch in range(args.epochs):
        total, stds = 0.0, []
        for (x0, x1), _, _ in loader:
            # Both views go to student and teacher ("consistent" teaching), in one batch.
            x = torch.cat([x0, x1])
            with torch.no_grad():
                target = teacher(x)
            features = student(x).flatten(start_dim=1)
            loss = criterion(head(features), target)
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
