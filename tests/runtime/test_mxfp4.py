import torch

from runtime.mxfp4 import FP4_VALUES, dequantize, quantize


def test_every_byte_unpacks_to_its_two_table_values_low_nibble_first():
    codes = torch.arange(256, dtype=torch.uint8).view(16, 1, 16)
    scales = torch.full((16, 1), 127, dtype=torch.uint8)  # 2^0
    values = dequantize(codes, scales, torch.float32).view(256, 2)
    expected = torch.tensor([[FP4_VALUES[b & 15], FP4_VALUES[b >> 4]] for b in range(256)])
    assert torch.equal(values, expected)


def test_scales_are_e8m0_powers_of_two():
    blocks = torch.full((1, 1, 16), 0x72, dtype=torch.uint8)  # low 2 (=1.0), high 7 (=6.0)
    for scale, factor in ((127, 1.0), (128, 2.0), (120, 2.0**-7), (140, 2.0**13)):
        out = dequantize(blocks, torch.tensor([[scale]], dtype=torch.uint8), torch.float32)
        assert out[0, :2].tolist() == [1.0 * factor, 6.0 * factor]


def test_round_trip_of_representable_values_is_exact_in_bf16_and_fp32():
    generator = torch.Generator().manual_seed(0)
    blocks = torch.randint(0, 256, (3, 7, 4, 16), dtype=torch.uint8, generator=generator)
    scales = torch.randint(110, 140, (3, 7, 4), dtype=torch.uint8, generator=generator)
    weight = dequantize(blocks, scales, torch.float32)
    assert weight.shape == (3, 7, 128)
    again = dequantize(*quantize(weight), torch.float32)
    assert torch.equal(again, weight)
    assert torch.equal(dequantize(blocks, scales, torch.bfloat16).float(), weight)


def test_quantize_rounds_to_the_nearest_table_value():
    weight = torch.tensor([[0.2, 0.3, 2.4, -5.1] + [0.0] * 28])
    out = dequantize(*quantize(weight), torch.float32)
    assert out[0, :4].tolist() == [0.0, 0.5, 2.0, -6.0]  # block max 5.1 -> scale 2^0
