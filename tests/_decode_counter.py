"""Counting the files the fast input path decodes (selfsup.data.uint8.decode_uint8)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import selfsup.data.uint8 as uint8_module


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wrap ``decode_uint8`` so every decode in this process appends the file's name to the
    returned list (DataLoader workers forked afterwards count in their own copies)."""
    decoded: list[str] = []
    real = uint8_module.decode_uint8

    def counting(source: Any, name: str | None = None) -> torch.Tensor:
        decoded.append(str(name))
        return real(source, name=name)

    monkeypatch.setattr(uint8_module, "decode_uint8", counting)
    return decoded
