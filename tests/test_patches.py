import pytest
import torch

from aekit.data.patches import crop_to, pad_to_multiple, padded_size


@pytest.mark.parametrize("h,w", [(1, 1), (7, 13), (16, 16), (29, 31)])
def test_pad_then_crop_restores_the_exact_image(h, w):
    x = torch.rand(2, 3, h, w)
    padded = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (padded_size(h, 8), padded_size(w, 8))
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert torch.equal(crop_to(padded, h, w), x)


def test_reflect_padding_mirrors_the_border():
    x = torch.arange(5.0).reshape(1, 1, 1, 5).expand(1, 1, 5, 5).contiguous()
    padded = pad_to_multiple(x, 8)
    assert padded[0, 0, 0, 5:].tolist() == [3.0, 2.0, 1.0]  # reflected, not zeros


def test_padded_size_rejects_a_zero_multiple():
    with pytest.raises(ValueError, match="multiple"):
        padded_size(5, 0)
