"""MAEDecoder: shapes, fixed sine-cosine positions for any grid, prefix tokens without."""

from __future__ import annotations

import pytest
import torch

from selfsup.errors import ConfigError
from selfsup.models.modules.masked_autoencoder import MAEDecoder, MAEDecoderTIMM
from selfsup.models.utils import get_2d_sincos_pos_embed


def test_decoder_maps_encoder_tokens_to_patch_pixels() -> None:
    torch.manual_seed(0)
    decoder = MAEDecoderTIMM(
        patch_size=4, embed_dim=24, decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2
    )
    tokens = torch.randn(2, 1 + 6, 24)
    out = decoder(tokens, (2, 3))
    assert out.shape == (2, 7, 48)
    assert decoder.mask_token.shape == (1, 1, 16)
    square = decoder(torch.randn(2, 1 + 9, 24))
    assert square.shape == (2, 10, 48)
    with pytest.raises(ConfigError, match="does not hold the 6 patch tokens"):
        decoder(tokens, (3, 3))


def test_positions_are_fixed_sincos_and_zero_for_prefix_tokens() -> None:
    decoder = MAEDecoder(
        patch_size=2,
        embed_dim=8,
        decoder_embed_dim=8,
        decoder_depth=1,
        decoder_num_heads=2,
        num_prefix_tokens=3,
    )
    pos = decoder.pos_embed((2, 2), torch.zeros(1))
    assert pos.shape == (1, 3 + 4, 8)
    assert torch.equal(pos[0, :3], torch.zeros(3, 8))
    torch.testing.assert_close(pos[0, 3:], get_2d_sincos_pos_embed(8, 2))
    assert not any("pos" in name for name, _ in decoder.named_parameters())


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ConfigError, match="multiple of 4"):
        MAEDecoder(decoder_embed_dim=18, decoder_num_heads=2)
    with pytest.raises(ConfigError, match="decoder_depth must be >= 1"):
        MAEDecoder(decoder_embed_dim=16, decoder_num_heads=2, decoder_depth=0)
