"""Executor row storage: byte layouts (= the cost model's), rounding error, unbiased stochastic
rounding, int4 packing."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from cachesim import costs as cost
from cachesim.executor import quant


@pytest.mark.parametrize("precision", ["fp32", "int8", "int4"])
def test_row_bytes_equal_cost_model(precision):
    for dim in range(1, 41):
        want = cost.row_layout(precision, dim).row_bytes
        assert quant.row_bytes(precision, dim) == want
        enc = quant.encode(np.zeros((2, dim), np.float32), precision)
        assert enc.shape == (2, want) and enc.dtype == np.uint8


def _rows(rng, n, dim):
    scale = 10.0 ** rng.uniform(-4, 2, (n, 1))
    rows = (rng.normal(size=(n, dim)) * scale + rng.normal(size=(n, 1))).astype(np.float32)
    rows[0] = 0.25          # a constant row: scale 0
    rows[1, :] = -3.0
    rows[1, 0] = 5.0        # one outlier
    return rows


@pytest.mark.parametrize("precision,dim", [("int8", 16), ("int8", 7), ("int4", 16), ("int4", 5)])
def test_deterministic_error_within_half_a_step(precision, dim):
    rng = np.random.default_rng(1)
    rows = _rows(rng, 500, dim)
    enc = quant.encode(rows, precision, "deterministic")
    back = quant.decode(enc, precision, dim)
    scale, bias = quant.quantize_params(rows, quant.BITS[precision])
    # the stored scale (fp32 for int8, fp16 for int4) is the step
    err = np.abs(back - rows)
    tol = 0.5 * scale[:, None] + 4 * np.finfo(np.float32).eps * np.abs(rows).max(axis=1)[:, None]
    assert np.all(err <= tol)
    # and the step is FBGEMM's (max - min) / (2^bits - 1); for int4, with the fp16 bias rounded
    # down (by less than two fp16 spacings at min) and the fp16 scale rounded up
    lo, hi = rows.min(axis=1), rows.max(axis=1)
    levels = 2 ** quant.BITS[precision] - 1
    if precision == "int8":
        assert np.allclose(scale, (hi - lo) / levels, rtol=1e-6)
    else:
        spacing = 2 * np.abs(np.spacing(lo.astype(np.float16))).astype(np.float32)
        assert np.all(scale * levels >= (hi - lo) * (1 - 1e-6))
        assert np.all(scale * levels <= (hi - lo + spacing) * (1 + 2e-3) + 1e-7)
        assert np.all(bias <= lo) and np.all(bias >= lo - spacing)
    # the row's min and max come back to within half a step
    assert np.all(np.abs(back.min(axis=1) - rows.min(axis=1)) <= tol[:, 0])


def test_fp32_round_trip_is_exact():
    rows = _rows(np.random.default_rng(2), 50, 9)
    assert np.array_equal(quant.decode(quant.encode(rows, "fp32"), "fp32", 9), rows)


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_stochastic_rounding_is_unbiased(precision):
    rng = np.random.default_rng(3)
    dim, n = 8, 4000
    row = np.linspace(-1.0, 1.0, dim).astype(np.float32)
    row[3] = 0.123456
    row[4] = -0.777777
    rows = np.repeat(row[None, :], n, axis=0)
    back = quant.decode(quant.encode(rows, precision, "stochastic", rng), precision, dim)
    scale, bias = quant.quantize_params(rows[:1], quant.BITS[precision])
    q = (row - bias[0]) / scale[0]
    frac = q - np.floor(q)
    # one rounding is floor or ceil, with variance step^2 f (1 - f); the mean of n is within
    # 5 standard errors of the true value, and it moves: not every rounding is the same
    sd = scale[0] * np.sqrt(frac * (1 - frac) / n)
    assert np.all(np.abs(back.mean(axis=0) - row) <= 5 * sd + 1e-6)
    assert back[:, 3].std() > 0 and back[:, 4].std() > 0
    # deterministic rounding of the same rows is biased by up to half a step
    det = quant.decode(quant.encode(rows[:1], precision, "deterministic"), precision, dim)[0]
    assert np.abs(det - row).max() > 10 * sd.max()


@given(st.integers(1, 33), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_int4_packing_round_trips(dim, n, seed):
    codes = np.random.default_rng(seed).integers(0, 16, (n, dim)).astype(np.uint8)
    packed = quant.pack_int4(codes)
    assert packed.shape == (n, (dim + 1) // 2)
    assert np.array_equal(quant.unpack_int4(packed, dim), codes)
    # element 2i in the low nibble
    assert np.array_equal(packed[:, 0] & 0x0F, codes[:, 0])


def test_int4_layout_by_hand():
    rows = np.array([[0.0, 15.0, 3.0]], np.float32)  # scale 1, bias 0
    enc = quant.encode(rows, "int4", "deterministic")
    assert enc.shape == (1, 6)
    assert np.array_equal(enc[0, :4].view(np.float16), np.array([1.0, 0.0], np.float16))
    assert list(enc[0, 4:]) == [0 | (15 << 4), 3]
    enc8 = quant.encode(rows, "int8", "deterministic")
    assert np.array_equal(enc8[0, :8].view(np.float32), np.array([15 / 255, 0.0], np.float32))
    assert list(enc8[0, 8:]) == [0, 255, 51]


def test_bad_precision_is_a_user_error():
    from cachesim.errors import CachesimError
    with pytest.raises(CachesimError, match="int8"):
        quant.row_bytes("int3", 16)
