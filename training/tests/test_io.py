"""IDX reader, model export/import round trip, manifest graph, evaluation statistics, fault-pattern replay, CLI."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from accelsim_train import data, evaluate, models, quant
from accelsim_train import train as T




def write_idx(path, arr: np.ndarray, code: int):
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


def fake_dataset(d: Path, n=40):
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(d / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), 0x08)
        write_idx(d / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8), 0x08)


def test_idx_round_trip_and_errors(tmp_path):
    fake_dataset(tmp_path)
    x, y = data.load_split(tmp_path, train=False)
    assert x.shape == (40, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    raw = data.read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert torch.allclose(x[:, 0], (torch.from_numpy(raw.copy()).float() / 255 - data.MEAN) / data.STD)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09abc"))
    with pytest.raises(data.DataError, match="expected 9 data bytes"):
        data.read_idx(tmp_path / "bad.gz")
    with pytest.raises(data.DataError, match="not found"):
        data.load_split(tmp_path / "nowhere")


def trained_tiny(method="randbet", bits=8):
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    kw = dict(w_max=0.1, p=0.01) if method == "randbet" else {}
    cfg = T.TrainConfig(method=method, bits=bits, epochs=1, batch_size=32, **kw)
    return T.train(cfg, x, y, progress=False, log=lambda s: None), x, y


def test_manifest_graph_matches_the_torch_model():
    res, x, _ = trained_tiny("normal")
    lm = evaluate.from_torch(res.model, res.cfg.scheme())
    wq = T.dequantize(T.quantize_model(res.model, res.cfg.scheme()), res.cfg.scheme())
    res.model.eval()
    ref = torch.func.functional_call(res.model, wq, (x,))
    assert torch.allclose(lm.forward(x, lm.dequantized()), ref, atol=1e-5)


def test_export_import_round_trip(tmp_path):
    pytest.importorskip("accelsim_train.export", reason="export.py (engine side) not present yet")
    from accelsim_train.modelio import export_trained

    res, x, y = trained_tiny("randbet", 4)
    paths = export_trained(res.model, res.cfg, 12.5, 64, tmp_path / "m")
    assert all(p.exists() for p in paths)
    # no "-4b" suffix: a family of its own, written right after the name
    assert '\nname = "m"\nfamily = "m"\nweights = ' in paths[0].read_text()
    assert paths[1].stat().st_size < 5_000_000
    lm = evaluate.load_model(tmp_path / "m")
    assert lm.scheme == res.cfg.scheme()
    assert lm.manifest["training"]["clean_error_pct"] == 12.5 and lm.manifest["training"]["p_train"] == 0.01
    mem = evaluate.from_torch(res.model, res.cfg.scheme())
    assert lm.param_names == mem.param_names == [n for n, _ in res.model.named_parameters()]
    for n in lm.param_names:
        assert torch.equal(lm.codes[n], mem.codes[n]) and torch.equal(lm.floats[n], mem.floats[n])
    assert torch.equal(lm.forward(x, lm.dequantized()), mem.forward(x, mem.dequantized()))
    # the same model exports to the same bytes every time (the library's header order is a hash-map order),
    # with a header in canonical form and no temporary files left behind
    first = (paths[0].read_bytes(), paths[1].read_bytes())
    for i in range(8):
        again = export_trained(res.model, res.cfg, 12.5, 64, tmp_path / "m")
        assert (again[0].read_bytes(), again[1].read_bytes()) == first, f"export {i + 2} differs"
    n = int.from_bytes(first[1][:8], "little")
    header = json.loads(first[1][8 : 8 + n])
    assert first[1][8 : 8 + n].rstrip(b" ") == json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    assert n % 8 == 0 and header["__metadata__"] == {"format": "accelsim-model", "version": "1"}
    assert sorted(q.name for q in tmp_path.iterdir()) == ["m.safetensors", "m.toml"]
    # the loader refuses codes that do not match the weights
    from safetensors.numpy import load_file, save_file

    t = load_file(str(paths[1]))
    t["fc2.bias:codes"] = (t["fc2.bias:codes"] ^ 1).astype(np.uint8)
    save_file(t, str(paths[1]))
    with pytest.raises(evaluate.ModelFileError, match="fc2.bias:codes"):
        evaluate.load_model(tmp_path / "m")


def test_family_is_the_name_without_its_width_suffix():
    from accelsim_train.modelio import family_of

    assert family_of("fmnist-cnn-randbet-4b", 4) == "fmnist-cnn-randbet"
    assert family_of("fmnist-cnn-randbet-4b", 8) == "fmnist-cnn-randbet-4b"
    assert family_of("fmnist-cnn-clipping-8b-s1", 8) == "fmnist-cnn-clipping-8b-s1"
    assert family_of("-2b", 2) == "-2b"


def test_summary_statistics():
    s = evaluate.summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert s["mean"] == pytest.approx(3.5) and s["std"] == pytest.approx(np.std([1, 2, 3, 4, 5, 6], ddof=1))
    half = 2.5706 * s["std"] / np.sqrt(6)  # t(0.975, 5)
    assert s["ci95"][1] - s["mean"] == pytest.approx(half, rel=2e-3)
    assert evaluate.t_quantile_975(1000) == pytest.approx(1.9623, abs=1e-3)


def test_paired_difference_is_the_summary_of_per_chip_differences():
    a, ref = [10.0, 11.0, 13.0, 10.5], [10.5, 11.0, 14.0, 11.5]
    d = evaluate.paired_difference(a, ref)
    assert d["n"] == 4 and d["mean"] == pytest.approx(-0.625)
    assert d["std"] == pytest.approx(np.std([-0.5, 0.0, -1.0, -1.0], ddof=1))
    half = 3.1824 * d["std"] / 2.0  # t(0.975, 3) / sqrt(4)
    assert d["ci95"] == pytest.approx([-0.625 - half, -0.625 + half], rel=1e-3)
    # the common chip-to-chip spread cancels: the paired interval is narrower than either model's own
    assert d["std"] < evaluate.summarize(a)["std"] and d["std"] < evaluate.summarize(ref)["std"]
    with pytest.raises(ValueError, match="same chips"):
        evaluate.paired_difference(a, ref[:3])


def test_robust_error_counts_clean_or_faulty_and_is_nested():
    res, x, y = trained_tiny("rquant")
    lm = evaluate.from_torch(res.model, res.cfg.scheme())
    r = evaluate.robust_errors(lm, x, y, [0.0, 0.01, 0.2], [1, 2, 3])
    clean = evaluate.clean_error(lm, x, y)
    assert all(v == pytest.approx(clean) for v in r[0.0]["values"])
    assert all(v >= clean for v in r[0.01]["values"] + r[0.2]["values"])
    u = evaluate.chip_uniforms(lm, 1)
    lo, hi = evaluate.faulty_codes(lm, u, 0.01), evaluate.faulty_codes(lm, u, 0.2)
    for n in lm.param_names:  # every bit flipped at 1% is also flipped at 20% (same chip)
        d_lo = quant.to_raw(lo[n], lm.scheme) ^ quant.to_raw(lm.codes[n], lm.scheme)
        d_hi = quant.to_raw(hi[n], lm.scheme) ^ quant.to_raw(lm.codes[n], lm.scheme)
        assert torch.equal(d_lo & d_hi, d_lo)


def test_pattern_replay_matches_direct_bit_operations(tmp_path):
    from safetensors.numpy import save_file

    res, x, y = trained_tiny("rquant", 4)
    lm = evaluate.from_torch(res.model, res.cfg.scheme())
    offs = np.cumsum([0] + [lm.codes[n].numel() for n in lm.param_names])
    idx = np.array([0, 5, int(offs[3]) + 2, lm.numel - 1, 5], dtype=np.int64)  # element 5 twice: in file order
    flip = np.array([1, 0b1000, 0xFF, 0, 0b0001], dtype=np.uint32)
    set0 = np.array([0, 0, 0b0011, 0, 0], dtype=np.uint32)
    set1 = np.array([0, 0b0010, 0, 0b0101, 0], dtype=np.uint32)
    save_file({"index": idx, "flip": flip, "set0": set0, "set1": set1}, str(tmp_path / "pat.safetensors"))
    out = evaluate.apply_pattern(lm, evaluate.load_pattern(tmp_path / "pat.safetensors"))
    flat = np.concatenate([lm.codes[n].reshape(-1).numpy().astype(np.int64) for n in lm.param_names])
    expect = flat.copy()
    for i, f, s0, s1 in zip(idx, flip, set0, set1):  # slow reference, one entry at a time, m = 4 stored bits
        expect[i] = (((int(expect[i]) ^ int(f)) & ~int(s0)) | int(s1)) & 0xF
    got = np.concatenate([out[n].reshape(-1).numpy().astype(np.int64) for n in lm.param_names])
    np.testing.assert_array_equal(got, expect)
    r = evaluate.replay(lm, tmp_path / "pat.safetensors", x, y)
    assert r["entries"] == 5 and r["changed_codes"] == int((got != flat).sum())
    save_file({"index": idx, "flip": flip, "set0": set0, "set1": set1}, str(tmp_path / "p8.safetensors"),
              metadata={"format": "accelsim-fault-pattern", "version": "1", "bits": "8"})
    with pytest.raises(evaluate.ModelFileError, match="8-bit codes"):
        evaluate.replay(lm, tmp_path / "p8.safetensors", x, y)
    save_file({"index": np.array([lm.numel], dtype=np.int64), "flip": flip[:1], "set0": set0[:1],
               "set1": set1[:1]}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(evaluate.ModelFileError, match="out of range"):
        evaluate.apply_pattern(lm, evaluate.load_pattern(tmp_path / "bad.safetensors"), "bad.safetensors")
    save_file({"index": idx.astype(np.int32), "flip": flip, "set0": set0, "set1": set1},
              str(tmp_path / "bad2.safetensors"))
    with pytest.raises(evaluate.ModelFileError, match="dtype"):
        evaluate.load_pattern(tmp_path / "bad2.safetensors")


class CliResult:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def run_cli(capsys, *args):
    """Run the CLI in-process (importing torch once per test process, not per call)."""
    from accelsim_train.__main__ import main

    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as e:  # argparse usage errors
        rc = e.code
    out = capsys.readouterr()
    return CliResult(rc, out.out, out.err)


def test_cli_errors_are_one_line(capsys):
    r = run_cli(capsys, "train", "--method", "randbet", "--p", "0.01", "--out", "/tmp/x")
    assert r.returncode == 2 and r.stderr.strip() == "error: --w-max is required for --method randbet (e.g. 0.1)"
    r = run_cli(capsys, "train", "--method", "randbet", "--w-max", "0.1", "--p", "1", "--out", "/tmp/x")
    assert r.returncode == 2 and "per-bit probability" in r.stderr
    r = run_cli(capsys, "eval", "/nonexistent/model")
    assert r.returncode == 2 and "cannot read manifest" in r.stderr


def test_cli_train_tiny_run_and_resume(tmp_path, capsys):
    pytest.importorskip("accelsim_train.export", reason="export.py (engine side) not present yet")
    fake_dataset(tmp_path)
    args = ("train", "--method", "clipping", "--w-max", "0.1", "--epochs", "1", "--batch-size", "20", "--data",
            str(tmp_path), "--out", str(tmp_path / "m"), "--ckpt", str(tmp_path / "ck.pt"), "--no-progress")
    r = run_cli(capsys, *args)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.toml").exists() and (tmp_path / "m.safetensors").exists()
    ev_args = ("eval", str(tmp_path / "m"), "--data", str(tmp_path), "--seeds", "1-3", "--p", "0.01", "--cache",
               str(tmp_path / "cache"))
    r = run_cli(capsys, *ev_args)
    assert r.returncode == 0, r.stderr
    assert "p=0.01:" in r.stdout
    first = r.stdout
    # a second identical evaluation comes from the cache (robust_errors is not called again)
    import accelsim_train.evaluate as ev

    def boom(*a, **k):
        raise AssertionError("cache not used")

    orig, ev.robust_errors = ev.robust_errors, boom
    try:
        r = run_cli(capsys, *ev_args)
    finally:
        ev.robust_errors = orig
    assert r.returncode == 0 and r.stdout == first
    # the robustness table with a paired comparison against one of its models
    out = tmp_path / "table.md"
    tab = ("table", str(tmp_path / "m"), str(tmp_path / "m2"), "--data", str(tmp_path), "--seeds", "1-3", "--p",
           "0.01,0.2", "--paired-ref", str(tmp_path / "m"), "--out", str(out))
    import shutil

    for ext in (".toml", ".safetensors"):
        shutil.copy(tmp_path / f"m{ext}", tmp_path / f"m2{ext}")
    text = (tmp_path / "m2.toml").read_text().replace('"m.safetensors"', '"m2.safetensors"')
    (tmp_path / "m2.toml").write_text(text)
    r = run_cli(capsys, *tab)
    assert r.returncode == 0, r.stderr
    import json

    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc["paired_ref"] == "m" and list(doc["paired_difference_pct"]) == ["m2"]
    for p in ("0.01", "0.2"):  # the same weights on the same chips: every per-chip difference is exactly 0
        d = doc["paired_difference_pct"]["m2"][p]
        assert d["mean"] == 0.0 and d["std"] == 0.0
    assert "| m2 | +0.00 [+0.00, +0.00] | +0.00 [+0.00, +0.00] |" in out.read_text()
    r = run_cli(capsys, *tab[:-4], "--paired-ref", "nope")
    assert r.returncode == 2 and "--paired-ref: 'nope' is not one of the listed models" in r.stderr
