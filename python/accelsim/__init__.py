"""accelsim: a cycle-approximate DNN accelerator and SRAM simulator, from Python.

Quantized weights mapped onto banked low-voltage SRAM, voltage-dependent bit errors from profiled chips, the network
run on the faulty weights, cycles and energy per inference. The functions speak the CLI's language: keyword arguments
are named like the flags of the subcommand (``--w-max`` is ``w_max=``), defaults and error messages are the CLI's,
and the numbers are identical (the same Rust library does the work).

    >>> import accelsim
    >>> r = accelsim.run(hw="14nm_sram", vdd=0.85, limit=1000)      # accelsim run --json
    >>> df = accelsim.sweep(models=["fmnist-cnn-randbet-8b"], grid="1.0:0.8:0.05", limit=1000)
    >>> codes, deq = accelsim.quantize(w, scheme="rquant", bits=8, w_max=0.1)
    >>> faulty = accelsim.inject(codes, p=0.01, bits=8, seed=100)

Functions: :func:`run`, :func:`sweep`, :func:`quantize`, :func:`inject`, :func:`cycles`, :func:`list_hw`; class
:class:`Model` (``Model.load(name_or_path)``, ``.layers``, ``.eval()``). Bad input raises :class:`UserError` (a
``ValueError``) with the CLI's one-line message. Long calls release the GIL and stop on Ctrl-C. Shipped models,
configs and profiles are found as the CLI finds them: ``models/``, ``hw_configs/``, ``sram_profiles/`` in the current
directory, else in the repository the package was built from; or give paths. Reference: docs/python.md.
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence, Union

from ._accelsim import (
    DEFAULT_GRID,
    DEFAULT_PROFILES,
    Model,
    UserError,
    __version__,
    _cli_defaults,
    _sweep,
    cycles,
    inject,
    list_hw,
    quantize,
    run,
)

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_PROFILES",
    "Model",
    "UserError",
    "__version__",
    "cycles",
    "inject",
    "list_hw",
    "quantize",
    "run",
    "sweep",
]

PathLike = Union[str, "os.PathLike[str]"]


def _names(value: Union[str, Iterable[Any], None], what: str) -> list[str] | None:
    """A comma-separated string or an iterable of names/paths as a list of strings (None stays None)."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    out = []
    for v in value:
        if not isinstance(v, (str, os.PathLike)):
            raise UserError(f"{what}: {v!r} is not a name or a path")
        out.append(os.fspath(v))
    return out


def _rail_sets(value: Union[str, Iterable[Any], None]) -> list[str] | None:
    """``sweep(rails=...)`` as one comma string per set: a string or a list of names is one set (as ``run``'s), a
    list holding lists or tuples is a list of sets (None stays None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    items = list(value)

    def one(v: Any) -> str:
        if isinstance(v, str):
            return v
        if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
            return ",".join(v)
        raise UserError(f"--rails: {v!r} is not a rail set; allowed a list of rail names or a comma string")

    if any(isinstance(v, (list, tuple)) for v in items):
        return [one(v) for v in items]
    return [one(items)]


def _ints(value: Union[int, Iterable[int], None], what: str) -> list[int] | None:
    """One int or an iterable of ints as a list (None stays None); anything else is a UserError."""
    if value is None:
        return None
    items = [value] if isinstance(value, int) else list(value)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int):
            raise UserError(f"{what}: {v!r} is not a bit width (an integer)")
    return items


def _grid(value: Union[str, Sequence[float], None]) -> str | None:
    """A grid spec string, or a sequence of voltages in volts, as the CLI's --grid string."""
    if value is None or isinstance(value, str):
        return value
    parts = []
    for v in value:
        try:
            parts.append(repr(float(v)))
        except (TypeError, ValueError):
            raise UserError(f"--grid: {v!r} is not a voltage in volts") from None
    return ",".join(parts)


def sweep(
    models: Union[str, Iterable[PathLike], None] = None,
    profiles: Union[str, Iterable[PathLike], None] = None,
    grid: Union[str, Sequence[float], None] = None,
    *,
    hw: str = "14nm_sram",
    bits: Union[int, Iterable[int], None] = None,
    ecc: Union[str, Iterable[str], None] = None,
    datapath: str | None = None,
    rails: Union[str, Iterable[Any], None] = None,
    offsets: int = 3,
    seeds: int = 1,
    data: PathLike | None = None,
    skip: int = 0,
    limit: int | None = None,
    seed: int = 0,
    out: PathLike | None = None,
    fresh: bool = False,
    tolerance: float = 1.0,
    progress: bool = True,
) -> Any:
    """Sweep voltages x models x fault profiles (``accelsim sweep``); one row per model x profile x voltage.

    Arguments are ``accelsim sweep``'s flags (see ``accelsim sweep --help``):

    models     model names in models/, manifest paths, or family names of the shipped models (a list, or one
               name) [default: the shipped small-CNN models, families fmnist-cnn-*]
    profiles   fault maps: names in sram_profiles/, paths, or "uniform" (the measured BER curve)
               [default: DEFAULT_PROFILES, "chip1,chip2"]
    grid       voltages in volts: a list of floats, or the CLI's spec string of values and START:STOP:STEP ranges
               [default: DEFAULT_GRID, "1.15,1.1,1.05,1.0:0.8:0.025"]
    hw         hardware config: a name in hw_configs/ or a path
    bits       bit widths (a list, or one int): each family at each width, the member trained at that width when
               one is shipped, else post-training quantization of its float weights [default: each model's own]
    ecc        ECC schemes as an axis: "none", "parity", "secded" (a list, or one) [default: the config's]
    datapath   "int8" or "float" (docs/datapath.md) [default: the config's]
    rails      scaled rails: one set, as run's (a list of names or a comma string, e.g. ["weight_sram",
               "activation_sram"]), or a list of sets for the rails axis, each a list of names or a comma
               string (e.g. [["weight_sram"], ["weight_sram", "activation_sram"]]): a "rails" column and a
               report section comparing them (docs/run-and-sweep.md#rails-axis) [default: the config's]
    offsets    weight-to-memory mapping offsets per profile (random chips for "uniform")
    seeds      seeds per offset (transient cells; extra random chips for "uniform")
    data       data folder of the models' data set [default: /usr/share/datasets/fashion-mnist]
    skip       leave out the first N test images (skip=9000, limit=1000: the held-out last 1000)
    limit      evaluate only the first N test images (after ``skip``) [default: all]
    seed       sweep seed: shifts every random seed of every unit [default: 0, the paper's seeds 100, 101, ...]
    out        output folder: also write sweep.csv, the plots and report.md there, exactly as
               ``accelsim sweep --out`` does (the same report); the sweep's state is kept there, so a killed or
               interrupted call resumes where it stopped, also from the CLI [default: no files]
    fresh      discard a previous sweep's state in ``out`` instead of resuming it
    tolerance  error tolerance in percentage points over the normal model at nominal voltage, for report.md
    progress   draw a progress bar on stderr (only on a terminal)

    Returns a pandas DataFrame when pandas is installed, else a list of dicts; either way with the columns (and
    values) of sweep.csv, units in the names (docs/run-and-sweep.md): model, family, method, bits,
    weights_source, profile, ecc, vdd_v, vdd_rel, ber, flipped_bits, clean_error_pct, faulty_error_pct,
    faulty_error_std_pct, samples, test_images, cycles, latency_us, energy_pj, weight_sram_energy_pj,
    energy_saving_pct, weight_sram_saving_pct, ecc_corrected_words, ecc_detected_words, ecc_silent_words,
    energy_saving_vs_vmin_pct, weight_sram_saving_vs_vmin_pct, activation_ber, rails, activation_sram_energy_pj,
    activation_sram_saving_pct. Raises UserError on bad input;
    Ctrl-C stops it (KeyboardInterrupt) at the next grid point, keeping finished work in ``out``.
    """
    models_l = _names(models, "--models")
    profiles_l = _names(profiles, "--profiles")
    grid_s = _grid(grid)
    rows = _sweep(
        hw=hw,
        models=models_l,
        bits=_ints(bits, "--bits"),
        profiles=profiles_l,
        ecc=_names(ecc, "--ecc"),
        datapath=datapath,
        rails=_rail_sets(rails),
        grid=grid_s,
        offsets=offsets,
        seeds=seeds,
        data=data,
        skip=skip,
        limit=limit,
        seed=seed,
        out=out,
        fresh=fresh,
        tolerance=tolerance,
        progress=progress,
    )
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame.from_records(rows, columns=list(rows[0]) if rows else None)
