"""accelsim.quantize and accelsim.inject on numpy arrays against `accelsim quantize` / `accelsim inject` on .npy
files: the same codes, values and flips, with the storage dtypes and shapes."""

from __future__ import annotations

import numpy as np
import pytest

import accelsim


@pytest.fixture
def weights():
    rng = np.random.default_rng(7)
    return (rng.standard_normal((6, 5, 3, 3)) * 0.05).astype(np.float32)


def cli_quantize(cli, tmp_path, w, *flags):
    np.save(tmp_path / "w.npy", w)
    cli("quantize", "--input", str(tmp_path / "w.npy"), "--codes", str(tmp_path / "c.npy"),
        "--dequantized", str(tmp_path / "d.npy"), *flags)
    return np.load(tmp_path / "c.npy"), np.load(tmp_path / "d.npy")


@pytest.mark.parametrize(
    "kwargs, flags, dtype",
    [
        (dict(scheme="rquant", bits=8), ["--scheme", "rquant", "--bits", "8"], np.uint8),
        (dict(scheme="rquant", bits=8, w_max=0.1), ["--scheme", "rquant", "--bits", "8", "--w-max", "0.1"], np.uint8),
        (dict(scheme="normal", bits=4), ["--scheme", "normal", "--bits", "4"], np.uint8),
        (dict(scheme=None, bits=3, granularity="channel", asymmetric=True, unsigned=True, rounding=True),
         ["--bits", "3", "--granularity", "channel", "--asymmetric", "--unsigned", "--rounding"], np.uint8),
        (dict(scheme=None, bits=16, granularity="layer", symmetric=True, signed=True, rounding=True),
         ["--bits", "16", "--granularity", "layer", "--symmetric", "--signed", "--rounding"], np.int16),
        (dict(scheme=None, bits=8, granularity="global", symmetric=True, signed=True, truncation=True, w_max=0.2),
         ["--bits", "8", "--granularity", "global", "--symmetric", "--signed", "--truncation", "--w-max", "0.2"],
         np.int8),
        (dict(scheme=None, bits=32, granularity="layer", asymmetric=True, signed=True, rounding=True),
         ["--bits", "32", "--granularity", "layer", "--asymmetric", "--signed", "--rounding"], np.int32),
    ],
)
def test_quantize_equals_cli(cli, tmp_path, weights, kwargs, flags, dtype):
    codes, deq = accelsim.quantize(weights, **kwargs)
    want_codes, want_deq = cli_quantize(cli, tmp_path, weights, *flags)
    assert codes.dtype == dtype and codes.shape == weights.shape
    assert deq.dtype == np.float32 and deq.shape == weights.shape
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(deq, want_deq)
    assert codes.flags.c_contiguous and codes.flags.writeable
    if dtype == np.uint8:
        assert int(codes.max()) < 2 ** kwargs["bits"]


def test_quantize_defaults_and_inputs(weights):
    codes, deq = accelsim.quantize(weights)  # scheme="rquant", bits=8
    c2, d2 = accelsim.quantize(weights, scheme="rquant", bits=8)
    np.testing.assert_array_equal(codes, c2)
    # Other float dtypes, lists and non-contiguous views are converted to C-order float32 first.
    c64, _ = accelsim.quantize(weights.astype(np.float64))
    np.testing.assert_array_equal(c64, codes)
    t = weights.T
    ct, _ = accelsim.quantize(t)
    cc, _ = accelsim.quantize(np.ascontiguousarray(t))
    np.testing.assert_array_equal(ct, cc)
    cl, dl = accelsim.quantize([[0.5, -0.25], [0.125, 0.0]], bits=4)
    assert cl.shape == (2, 2) and dl.dtype == np.float32
    c0, d0 = accelsim.quantize(np.float32(0.5))
    assert c0.shape == () and d0.shape == ()
    ce, de = accelsim.quantize(np.zeros((0, 3), dtype=np.float32))
    assert ce.shape == (0, 3) and de.shape == (0, 3)
    # The dequantized values are within one step of the input.
    step = (weights.max() - weights.min()) / 255
    assert np.max(np.abs(deq - weights)) <= step


@pytest.mark.parametrize(
    "kwargs, flags",
    [
        (dict(bits=9), ["--scheme", "rquant", "--bits", "9"]),
        (dict(bits=8, symmetric=True), ["--scheme", "rquant", "--bits", "8", "--symmetric"]),
        (dict(bits=8, scheme="fancy"), ["--scheme", "fancy", "--bits", "8"]),
        (dict(bits=8, w_max=-1.0), ["--scheme", "rquant", "--bits", "8", "--w-max=-1"]),
        (dict(bits=8, scheme=None), ["--bits", "8"]),
        (dict(bits=8, granularity="channel"), ["--scheme", "rquant", "--bits", "8", "--granularity", "channel"]),
    ],
)
def test_quantize_user_errors(cli, tmp_path, weights, kwargs, flags):
    with pytest.raises(accelsim.UserError) as e:
        accelsim.quantize(weights, **kwargs)
    np.save(tmp_path / "w.npy", weights)
    want = cli.error("quantize", "--input", str(tmp_path / "w.npy"), "--codes", str(tmp_path / "c.npy"), *flags)
    assert str(e.value) == want


def test_quantize_rejects_non_float():
    with pytest.raises(accelsim.UserError, match="int64"):
        accelsim.quantize(np.arange(10))


def cli_inject(cli, tmp_path, codes, *flags):
    np.save(tmp_path / "c.npy", codes)
    cli("inject", "--input", str(tmp_path / "c.npy"), "--output", str(tmp_path / "f.npy"), *flags)
    return np.load(tmp_path / "f.npy")


@pytest.mark.parametrize(
    "dtype, bits",
    [(np.uint8, 8), (np.uint8, 4), (np.int8, 8), (np.int16, 16), (np.int32, 32)],
)
def test_inject_equals_cli(cli, tmp_path, dtype, bits):
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    hi = 2**bits if dtype == np.uint8 else int(info.max) + 1
    codes = rng.integers(info.min if dtype != np.uint8 else 0, hi, size=(50, 40), dtype=dtype)
    before = codes.copy()
    faulty = accelsim.inject(codes, p=0.02, bits=bits, seed=100)
    want = cli_inject(cli, tmp_path, codes, "--bits", str(bits), "--p", "0.02", "--seed", "100")
    assert faulty.dtype == dtype and faulty.shape == codes.shape
    np.testing.assert_array_equal(faulty, want)
    np.testing.assert_array_equal(codes, before)  # the input is not touched
    flipped = np.unpackbits((faulty ^ codes).view(np.uint8)).sum()
    stored = codes.size * bits
    assert 0.01 * stored < flipped < 0.03 * stored, "about p of the stored bits flip"
    if dtype == np.uint8:
        assert int(faulty.max()) < 2**bits, "only the stored bits flip"


def test_inject_asymmetric_rates_and_inplace(cli, tmp_path):
    codes = np.full((1000,), 0b1010_1010, dtype=np.uint8)
    faulty = accelsim.inject(codes, p01=0.05, p10=0.0, bits=8, seed=5)
    want = cli_inject(cli, tmp_path, codes, "--bits", "8", "--p01", "0.05", "--p10", "0", "--seed", "5")
    np.testing.assert_array_equal(faulty, want)
    assert np.all(faulty & codes == codes), "p10 = 0: no stored 1 reads as 0"
    same = accelsim.inject(codes, p01=0.05, p10=0.0, bits=8, seed=5, inplace=True)
    assert same is codes, "inplace returns the array it corrupted"
    np.testing.assert_array_equal(codes, want)


def test_inject_pattern_and_replay(tmp_path):
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    faulty = accelsim.inject(codes, p=0.05, bits=8, seed=9, pattern=tmp_path / "flips.safetensors")
    assert (tmp_path / "flips.safetensors").is_file()
    replayed = accelsim.inject(codes, bits=8, replay=tmp_path / "flips.safetensors")
    np.testing.assert_array_equal(replayed, faulty)


def test_inject_orders_elements_like_the_cli(cli, tmp_path):
    """A non-contiguous view is corrupted in its logical (C) element order, as the CLI does with its .npy."""
    base = np.arange(600, dtype=np.int16).reshape(20, 30)
    view = base.T[::2]  # shape (15, 20), neither C- nor F-contiguous
    faulty = accelsim.inject(view, p=0.05, bits=16, seed=4)
    want = cli_inject(cli, tmp_path, np.ascontiguousarray(view), "--bits", "16", "--p", "0.05", "--seed", "4")
    np.testing.assert_array_equal(faulty, want)
    with pytest.raises(accelsim.UserError, match="C-contiguous"):
        accelsim.inject(view, p=0.05, bits=16, seed=4, inplace=True)


def test_inject_nested_across_p():
    codes = np.zeros(20000, dtype=np.uint8)
    low = accelsim.inject(codes, p=0.01, bits=8, seed=1)
    high = accelsim.inject(codes, p=0.05, bits=8, seed=1)
    assert np.all(low & high == low), "flips at a lower p are a subset of those at a higher p"
    assert low.any() and (high != low).any()


@pytest.mark.parametrize(
    "kwargs, flags",
    [
        (dict(p=0.01, bits=8), ["--p", "0.01", "--bits", "8"]),  # no seed
        (dict(p=1.5, bits=8, seed=1), ["--p", "1.5", "--bits", "8", "--seed", "1"]),
        (dict(p=0.01, seed=1), ["--p", "0.01", "--seed", "1"]),  # no bits
        (dict(bits=8, seed=1), ["--bits", "8", "--seed", "1"]),  # no rate
        (dict(p=0.01, bits=16, seed=1), ["--p", "0.01", "--bits", "16", "--seed", "1"]),  # 16 bits in uint8
        (dict(p=0.01, bits=4, seed=1), ["--p", "0.01", "--bits", "4", "--seed", "1"]),  # codes above 4 bits
        (dict(p=0.01, bits=8, seed=-3), ["--p", "0.01", "--bits", "8", "--seed=-3"]),
    ],
)
def test_inject_user_errors(cli, tmp_path, kwargs, flags):
    codes = np.array([1, 2, 200], dtype=np.uint8)
    with pytest.raises(accelsim.UserError) as e:
        accelsim.inject(codes, **kwargs)
    np.save(tmp_path / "c.npy", codes)
    want = cli.error("inject", "--input", str(tmp_path / "c.npy"), "--output", str(tmp_path / "f.npy"), *flags)
    # The CLI names the file, the API the array.
    assert str(e.value) == want.replace(str(tmp_path / "c.npy"), "<array>")


def test_inject_rejects_float_and_readonly():
    with pytest.raises(accelsim.UserError, match="float32"):
        accelsim.inject(np.zeros(4, dtype=np.float32), p=0.1, bits=8, seed=1)
    ro = np.zeros(4, dtype=np.uint8)
    ro.flags.writeable = False
    with pytest.raises(accelsim.UserError, match="in place"):
        accelsim.inject(ro, p=0.1, bits=8, seed=1, inplace=True)
    # Without inplace a read-only input is fine (the result is a new array).
    assert accelsim.inject(ro, p=0.1, bits=8, seed=1).flags.writeable
