"""The one uint8 <-> [-1, 1] image conversion."""
import torch

from explorer.images import from_uint8, to_uint8


def test_from_uint8_inverts_to_uint8():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    x = from_uint8(pixels)
    assert x.dtype == torch.float32 and x.min() == -1.0 and x.max() == 1.0
    assert (to_uint8(x) == pixels[0, 0].numpy()).all()  # exact round trip for every level
