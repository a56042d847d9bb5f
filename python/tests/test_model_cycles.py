"""accelsim.cycles and accelsim.Model against `accelsim cycles --json`, `model show --json` and `eval --json`."""

from __future__ import annotations

import pytest

import accelsim


@pytest.mark.parametrize("dataflow", [None, "ws", "os", "is"])
def test_cycles_of_a_topology_equal_cli(cli, dataflow):
    flags = ["--dataflow", dataflow] if dataflow else []
    got = accelsim.cycles("hw_configs/topologies/resnet20.csv", dataflow=dataflow)
    assert got == cli.json("cycles", "--topology", "hw_configs/topologies/resnet20.csv", *flags, "--json")
    assert len(got) > 10 and all(r["total_cycles"] >= r["compute_cycles"] for r in got)


def test_cycles_options_equal_cli(cli):
    got = accelsim.cycles("hw_configs/topologies/fmnist_cnn.csv", array="32x8", weight_bits=4, scalesim_ofmap=True)
    want = cli.json("cycles", "--topology", "hw_configs/topologies/fmnist_cnn.csv", "--array", "32x8",
                    "--weight-bits", "4", "--scalesim-ofmap", "--json")
    assert got == want


def test_cycles_of_a_model_match_its_topology_and_run(cli):
    by_model = accelsim.cycles("fmnist-cnn-randbet-8b")
    assert by_model == cli.json("cycles", "--model", "fmnist-cnn-randbet-8b", "--json")
    # The shipped topology CSV describes the same network.
    topo = accelsim.cycles("hw_configs/topologies/fmnist_cnn.csv")
    assert [r["total_cycles"] for r in by_model] == [r["total_cycles"] for r in topo]
    # And `run` reports the same cycles per inference.
    r = accelsim.run(vdd=1.0, limit=50, offsets=1)
    assert sum(x["total_cycles"] for x in by_model) == r["cycles"]
    # A 4-bit model needs half the weight-SRAM words.
    four = accelsim.cycles("models/fmnist-cnn-randbet-4b.toml")
    assert sum(x["weight_sram_word_reads"] for x in four) < sum(x["weight_sram_word_reads"] for x in by_model)


def test_cycles_user_errors(cli):
    with pytest.raises(accelsim.UserError) as e:
        accelsim.cycles("hw_configs/topologies/resnet20.csv", dataflow="xy")
    assert str(e.value) == cli.error("cycles", "--topology", "hw_configs/topologies/resnet20.csv", "--dataflow", "xy")
    with pytest.raises(accelsim.UserError, match="no-such"):
        accelsim.cycles("no-such-model")
    with pytest.raises(accelsim.UserError):
        accelsim.cycles("missing.csv")


def test_model_load_and_layers(cli):
    m = accelsim.Model.load("models/fmnist-cnn-randbet-8b.toml")
    info = cli.json("model", "show", "models/fmnist-cnn-randbet-8b.toml", "--json")
    assert m.info == info and list(m.info) == list(info)
    assert m.layers == info["layers"]
    assert (m.name, m.method, m.bits, m.params) == (info["name"], info["method"], info["bits"], info["params"])
    assert m.params == sum(layer["params"] for layer in m.layers)
    assert "randbet" in repr(m)
    # By name, as the CLI resolves --model.
    assert accelsim.Model.load("fmnist-cnn-randbet-8b").info["params"] == info["params"]
    with pytest.raises(accelsim.UserError, match="not found"):
        accelsim.Model.load("no-such-model")


def test_model_eval_equals_cli(cli):
    m = accelsim.Model.load("models/fmnist-cnn-clipping-8b.toml")
    for kwargs, flags in [(dict(limit=500), ["--limit", "500"]), (dict(limit=300, float=True), ["--limit", "300", "--float"])]:
        got = m.eval(progress=False, **kwargs)
        want = cli.json("eval", "--model", "models/fmnist-cnn-clipping-8b.toml", *flags, "--json")
        for timing in ["seconds", "images_per_s"]:
            assert got.pop(timing) > 0
            want.pop(timing)
        assert got == want
    with pytest.raises(accelsim.UserError) as e:
        m.eval(limit=0)
    assert str(e.value) == cli.error("eval", "--model", "models/fmnist-cnn-clipping-8b.toml", "--limit", "0")
