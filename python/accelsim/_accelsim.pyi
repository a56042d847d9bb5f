"""Type stubs of the native module (the Rust library through pyo3). Use the ``accelsim`` package."""

import os
from typing import Any, Literal, TypedDict, Union

import numpy as np
import numpy.typing as npt

_Path = Union[str, os.PathLike[str]]

__version__: str
DEFAULT_GRID: str
DEFAULT_PROFILES: str

class UserError(ValueError):
    """Bad input: the CLI's one-line message naming the flag or file and the allowed range."""

class EnergyBreakdown(TypedDict):
    vdd_v: float
    weight_sram_dynamic_pj: float
    weight_sram_leakage_pj: float
    ecc_logic_pj: float
    act_sram_pj: float
    accumulator_pj: float
    mac_pj: float
    dram_pj: float
    total_pj: float

class RunReport(TypedDict):
    """The object of ``accelsim run --json``."""

    hw: str
    datapath: Literal["float", "int8"]
    model: str
    family: str
    method: str
    bits: int
    weights_source: Literal["trained", "ptq"]
    weights: int
    faults: str
    vdd_v: float
    vdd_rel: float
    nominal_v: float
    samples: int
    test_images: int
    first_test_image: int
    ber: float
    flipped_bits_mean: float
    clean_error_pct: float
    faulty_error_pct: float
    faulty_error_std_pct: float
    faulty_error_per_sample_pct: list[float]
    cycles: int
    latency_us: float
    utilization_pct: float
    energy_pj: float
    energy_breakdown_pj: EnergyBreakdown
    nominal_energy_pj: float
    energy_saving_pct: float
    weight_sram_energy_pj: float
    weight_sram_saving_pct: float
    reference_8b_vmin_energy_pj: float
    reference_8b_vmin_weight_sram_energy_pj: float
    energy_saving_vs_vmin_pct: float
    weight_sram_saving_vs_vmin_pct: float
    ecc: str
    ecc_code: str
    ecc_interleave: int
    ecc_due: str
    ecc_codewords: int
    ecc_corrected_words: float
    ecc_detected_words: float
    ecc_silent_words: float
    ecc_decoder_cycles: int
    scaled_rails: list[str]
    activation_ber: float
    activation_flipped_bits_mean: float
    act_ber: float

def run(
    *,
    hw: str = "14nm_sram",
    vdd: float | None = None,
    model: str | None = None,
    bits: int | None = None,
    profile: str | None = None,
    ber: float | None = None,
    offsets: int = 4,
    seeds: int = 1,
    data: _Path | None = None,
    skip: int = 0,
    limit: int | None = None,
    ecc: Literal["none", "parity", "secded"] | None = None,
    image_out: _Path | None = None,
    datapath: Literal["float", "int8"] | None = None,
    rails: list[str] | None = None,
    act_ber: float | None = None,
) -> RunReport: ...
def list_hw() -> list[dict[str, Any]]: ...
def _sweep(
    *,
    hw: str,
    models: list[str] | None,
    bits: list[int] | None,
    profiles: list[str] | None,
    ecc: list[str] | None,
    grid: str | None,
    offsets: int,
    seeds: int,
    data: _Path | None,
    skip: int,
    limit: int | None,
    seed: int,
    out: _Path | None,
    fresh: bool,
    tolerance: float,
    progress: bool,
    datapath: str | None = None,
    rails: list[str] | None = None,
) -> list[dict[str, Any]]: ...
def _cli_defaults(subcommand: str) -> dict[str, str]: ...
def quantize(
    array: npt.ArrayLike,
    *,
    scheme: Literal["rquant", "normal"] | None = "rquant",
    bits: int = 8,
    w_max: float | None = None,
    granularity: Literal["layer", "global", "channel"] | None = None,
    symmetric: bool = False,
    asymmetric: bool = False,
    unsigned: bool = False,
    signed: bool = False,
    rounding: bool = False,
    truncation: bool = False,
) -> tuple[npt.NDArray[np.uint8 | np.int8 | np.int16 | np.int32], npt.NDArray[np.float32]]: ...
def inject(
    codes: npt.NDArray[np.uint8 | np.int8 | np.int16 | np.int32],
    *,
    p: float | None = None,
    bits: int | None = None,
    seed: int | None = None,
    p01: float | None = None,
    p10: float | None = None,
    pattern: _Path | None = None,
    replay: _Path | None = None,
    inplace: bool = False,
) -> npt.NDArray[np.uint8 | np.int8 | np.int16 | np.int32]: ...
def cycles(
    model_or_topology: _Path,
    *,
    hw: str = "14nm_sram",
    dataflow: Literal["ws", "os", "is"] | None = None,
    array: str | None = None,
    weight_bits: int | None = None,
    scalesim_ofmap: bool = False,
) -> list[dict[str, Any]]: ...

class Model:
    """A model file (TOML manifest + safetensors)."""

    @staticmethod
    def load(path: _Path) -> Model: ...
    @property
    def path(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def bits(self) -> int: ...
    @property
    def params(self) -> int: ...
    @property
    def layers(self) -> list[dict[str, Any]]: ...
    @property
    def info(self) -> dict[str, Any]: ...
    def eval(
        self,
        *,
        data: _Path | None = None,
        dataset: str | None = None,
        limit: int | None = None,
        paper_protocol: bool = False,
        float: bool = False,
        progress: bool = True,
    ) -> dict[str, Any]: ...
