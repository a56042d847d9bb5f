//! Python bindings of accelsim (`import accelsim`), in the CLI's vocabulary: every function takes keyword
//! arguments named like the flags of its subcommand, turns them into that subcommand's command line, and lets the
//! CLI's own parser (clap) and library functions do the rest. So defaults, validation, error messages and numbers
//! are the CLI's: `accelsim.run(...)` returns exactly the object of `accelsim run --json`. See docs/python.md.
//!
//! Long calls (run, sweep, eval) run on a worker thread with the GIL released; the calling thread checks for
//! signals every 50 ms and, on Ctrl-C, asks the worker to stop at its next grid point
//! (`accelsim::sweep::cancel`) and raises `KeyboardInterrupt`. A cancelled sweep keeps its finished units.
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use accelsim::cli::{self, CliError, Command};
use accelsim::faults::Code;
use accelsim::locate::{self, Shipped};
use accelsim::quant::Codes;
use accelsim::sweep::cancel;
use accelsim::sweep::driver::{run_sweep_with, RunOptions};
use accelsim::sweep::unit::Shard;
use clap::Parser;
use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

pyo3::create_exception!(
    accelsim,
    UserError,
    PyValueError,
    "Bad input (a flag value, a missing or invalid file, a voltage outside a profile's range): the CLI's one-line \
     message, which names the flag or file and the allowed range."
);

/// A CLI error as a Python exception: user errors as `UserError` (a `ValueError`), internal ones as
/// `RuntimeError`.
fn py_err(e: CliError) -> PyErr {
    match e {
        CliError::User(m) => UserError::new_err(m),
        CliError::Internal(m) => PyRuntimeError::new_err(m),
    }
}

/// A command line under construction (`accelsim <subcommand> --flag=value ...`). Values are written as
/// `--flag=value` so that values starting with `-` stay values; floats with Rust's shortest round-trip format,
/// so clap reads back the very same `f64`.
struct Argv(Vec<String>);

impl Argv {
    fn new(words: &[&str]) -> Self {
        let mut v = vec!["accelsim".to_string()];
        v.extend(words.iter().map(|w| w.to_string()));
        Argv(v)
    }
    fn val(&mut self, flag: &str, v: impl Display) -> &mut Self {
        self.0.push(format!("--{flag}={v}"));
        self
    }
    fn opt<T: Display>(&mut self, flag: &str, v: Option<T>) -> &mut Self {
        if let Some(v) = v {
            self.val(flag, v);
        }
        self
    }
    fn path(&mut self, flag: &str, v: Option<&PathBuf>) -> PyResult<&mut Self> {
        if let Some(p) = v {
            let s = p.to_str().ok_or_else(|| {
                UserError::new_err(format!(
                    "--{flag} {}: the path is not valid UTF-8",
                    p.display()
                ))
            })?;
            self.val(flag, s);
        }
        Ok(self)
    }
    fn switch(&mut self, flag: &str, on: bool) -> &mut Self {
        if on {
            self.0.push(format!("--{flag}"));
        }
        self
    }
    /// Parses with the CLI's parser; a usage error becomes a `UserError` with the CLI's one-line message.
    fn parse(&self) -> PyResult<Command> {
        use clap::CommandFactory;
        match cli::Cli::try_parse_from(&self.0) {
            Ok(c) => Ok(c.command),
            Err(e) => Err(UserError::new_err(cli::clap_error::one_line(
                &e,
                &cli::Cli::command(),
                &self.0,
            ))),
        }
    }
}

/// Runs `work` on a worker thread with the GIL released, checking for signals (Ctrl-C) every 50 ms on the
/// calling thread; on a pending exception the worker is cancelled at its next check point and the exception is
/// raised once it has stopped.
fn interruptible<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce() -> Result<T, CliError> + Send,
{
    let flag = Arc::new(AtomicBool::new(false));
    let worker_flag = flag.clone();
    let (result, interrupt) = py.detach(move || {
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<()>();
            let handle = scope.spawn(move || {
                let r = cancel::with_flag(worker_flag, work);
                let _ = tx.send(());
                r
            });
            let mut interrupt: Option<PyErr> = None;
            loop {
                match rx.recv_timeout(Duration::from_millis(50)) {
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        if interrupt.is_none() {
                            if let Err(e) = Python::attach(|py| py.check_signals()) {
                                flag.store(true, Ordering::Relaxed);
                                interrupt = Some(e);
                            }
                        }
                    }
                }
            }
            (handle.join(), interrupt)
        })
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    match result {
        Ok(r) => r.map_err(py_err),
        Err(_) => Err(PyRuntimeError::new_err(
            "accelsim: internal error (a panic in the worker thread); please report it",
        )),
    }
}

/// A JSON value as the Python object `json.loads` would give (dicts keep the key order).
fn to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(m) => {
            let d = PyDict::new(py);
            for (k, x) in m {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

fn internal(e: impl Display) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// Runs one model on the accelerator at one supply voltage: faults in the stored weights, clean and faulty test
/// error, cycles, energy per inference and savings against the nominal voltage (`accelsim run --json`).
///
/// Arguments are `accelsim run`'s flags (see `accelsim run --help`):
///   hw       hardware config: a name in hw_configs/ or a path
///   vdd      supply voltage of the scaled rails in volts (required)
///   model    model manifest: a name in models/, a path, or a shipped family name with `bits`
///            (default: fmnist-cnn-randbet-8b)
///   bits     bit width: the family's member trained at that width, else post-training quantization of the
///            float weights (default: the model's own width)
///   profile  fault map: a name in sram_profiles/, a path, or "uniform" (default: the config's fault_profile)
///   ber      uniform random bit errors at this per-bit probability instead of the profile (0.01 = 1%)
///   offsets  weight-to-memory mapping offsets averaged over (random chips for uniform errors)
///   seeds    seeds per offset (transient cells; extra random chips for uniform errors)
///   data     data folder (default: /usr/share/datasets/fashion-mnist for Fashion-MNIST)
///   skip     leave out the first N test images
///   limit    evaluate only the first N test images after `skip` (default: all)
///   ecc      protection of the weight SRAM's words: "none", "parity" or "secded" (default: the config's)
///   image_out  also write the weight codes as read at this voltage (first sample) to this .npy path
///   datapath "float" (the paper's fake quantization) or "int8" (integer datapath, docs/datapath.md)
///   rails    scaled rails, e.g. ["weight_sram", "activation_sram"] (int8: the activation buffers then fail)
///   act_ber  uniform random activation bit errors at this per-bit probability (int8 datapath)
///
/// Returns a dict with exactly the keys and values of `accelsim run --json` (units in the key names: `vdd_v`,
/// `ber` a per-bit probability, `*_pct` percent, `energy_pj`, ...). Raises UserError on bad input; Ctrl-C stops
/// it (KeyboardInterrupt) within one evaluation.
#[pyfunction]
#[pyo3(signature = (*, hw="14nm_sram", vdd=None, model=None, bits=None, profile=None, ber=None, offsets=4, seeds=1, data=None, skip=0, limit=None, ecc=None, image_out=None, datapath=None, rails=None, act_ber=None))]
#[allow(clippy::too_many_arguments)]
fn run<'py>(
    py: Python<'py>,
    hw: &str,
    vdd: Option<f64>,
    model: Option<&str>,
    bits: Option<i64>,
    profile: Option<&str>,
    ber: Option<f64>,
    offsets: i64,
    seeds: i64,
    data: Option<PathBuf>,
    skip: i64,
    limit: Option<i64>,
    ecc: Option<&str>,
    image_out: Option<PathBuf>,
    datapath: Option<&str>,
    rails: Option<Vec<String>>,
    act_ber: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let mut a = Argv::new(&["run", "--json"]);
    a.val("hw", hw)
        .opt("vdd", vdd)
        .opt("model", model)
        .opt("bits", bits)
        .opt("profile", profile)
        .opt("ber", ber)
        .val("offsets", offsets)
        .val("seeds", seeds)
        .path("data", data.as_ref())?
        .val("skip", skip)
        .opt("limit", limit)
        .opt("ecc", ecc)
        .path("image-out", image_out.as_ref())?
        .opt("datapath", datapath)
        .opt("rails", rails.map(|r| r.join(",")))
        .opt("act-ber", act_ber);
    let Command::Run(args) = a.parse()? else {
        unreachable!("parsed as run")
    };
    let v = interruptible(py, move || cli::run::run_json(&args))?;
    to_py(py, &v)
}

/// The shipped hardware configs (`accelsim run --list-hw`): a list of {"file", "name"} dicts; `name` is None for
/// a config that does not load (its error in "error").
#[pyfunction]
fn list_hw(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    let list: Vec<serde_json::Value> = accelsim::config::HwConfig::list_shipped()
        .into_iter()
        .map(|p| {
            let file = p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            match accelsim::config::HwConfig::load(&p) {
                Ok(hw) => serde_json::json!({"file": file, "path": p.display().to_string(), "name": hw.name}),
                Err(e) => serde_json::json!({"file": file, "path": p.display().to_string(), "name": null, "error": e.to_string()}),
            }
        })
        .collect();
    to_py(py, &serde_json::Value::Array(list))
}

/// Native part of `accelsim.sweep` (the Python wrapper turns the rows into a DataFrame): returns the list of
/// row dicts, keys in the column order of sweep.csv. With `out`, runs (or resumes) the sweep in that folder and
/// writes the bundle as `accelsim sweep --out` does (the same report.md); without, runs it in a temporary folder
/// and keeps nothing.
#[pyfunction]
#[pyo3(signature = (*, hw, models, bits, profiles, ecc, grid, offsets, seeds, data, skip, limit, seed, out, fresh, tolerance, progress, datapath=None, rails=None))]
#[allow(clippy::too_many_arguments)]
fn _sweep<'py>(
    py: Python<'py>,
    hw: &str,
    models: Option<Vec<String>>,
    bits: Option<Vec<i64>>,
    profiles: Option<Vec<String>>,
    ecc: Option<Vec<String>>,
    grid: Option<String>,
    offsets: i64,
    seeds: i64,
    data: Option<PathBuf>,
    skip: i64,
    limit: Option<i64>,
    seed: i64,
    out: Option<PathBuf>,
    fresh: bool,
    tolerance: f64,
    progress: bool,
    datapath: Option<String>,
    rails: Option<Vec<String>>,
) -> PyResult<Bound<'py, PyAny>> {
    let tmp = match &out {
        Some(_) => None,
        None => Some(tempfile::tempdir().map_err(internal)?),
    };
    let dir = out
        .clone()
        .or_else(|| tmp.as_ref().map(|t| t.path().to_path_buf()));
    let mut a = Argv::new(&["sweep"]);
    a.val("hw", hw);
    if let Some(m) = &models {
        a.val("models", m.join(","));
    }
    if let Some(b) = &bits {
        let b: Vec<String> = b.iter().map(|b| b.to_string()).collect();
        a.val("bits", b.join(","));
    }
    if let Some(p) = &profiles {
        a.val("profiles", p.join(","));
    }
    if let Some(e) = &ecc {
        a.val("ecc", e.join(","));
    }
    a.opt("datapath", datapath);
    // One `--rails` per set: several sets are the rails axis (docs/run-and-sweep.md#rails-axis).
    for set in rails.iter().flatten() {
        a.val("rails", set);
    }
    a.opt("grid", grid)
        .val("offsets", offsets)
        .val("seeds", seeds)
        .path("data", data.as_ref())?
        .val("skip", skip)
        .opt("limit", limit)
        .val("seed", seed)
        .path("out", dir.as_ref())?
        .switch("fresh", fresh)
        .val("tolerance", tolerance)
        .switch("quiet", !progress);
    let Command::Sweep(args) = a.parse()? else {
        unreachable!("parsed as sweep")
    };
    let keep = out.is_some();
    let rows = interruptible(py, move || {
        let spec = cli::sweep::spec_from_args(&args)?;
        let opts = RunOptions {
            fresh: args.fresh || !keep,
            progress: !args.quiet,
            shard: Shard::WHOLE,
            invocation: cli::sweep::invocation(&args),
            report_tolerance_pts: keep.then_some(args.tolerance),
        };
        let outcome = run_sweep_with(&spec, &args.out, &opts).map_err(|e| {
            if e.is_user() {
                CliError::user(e.to_string())
            } else {
                CliError::internal(e.to_string())
            }
        })?;
        serde_json::to_value(&outcome.rows).map_err(|e| CliError::internal(e.to_string()))
    })?;
    drop(tmp);
    to_py(py, &rows)
}

/// The default grid and profiles of `accelsim sweep` and the flag defaults of `run`/`sweep` as clap declares
/// them (for tests that check the Python signatures against the CLI).
#[pyfunction]
fn _cli_defaults<'py>(py: Python<'py>, subcommand: &str) -> PyResult<Bound<'py, PyDict>> {
    use clap::CommandFactory;
    let cmd = cli::Cli::command();
    let sub = cmd
        .find_subcommand(subcommand)
        .ok_or_else(|| UserError::new_err(format!("no subcommand `{subcommand}`")))?;
    let d = PyDict::new(py);
    for arg in sub.get_arguments() {
        let vals: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !vals.is_empty() {
            d.set_item(arg.get_id().as_str(), vals.join(","))?;
        }
    }
    Ok(d)
}

/// Quantizes a float tensor into integer codes (`accelsim quantize`): returns `(codes, dequantized)` numpy
/// arrays of the input's shape; codes in the storage dtype (uint8 for unsigned m = 2..8, int8/int16/int32 for
/// signed 8/16/32 bits), dequantized float32.
///
///   array        float array (float32; other float dtypes are converted to float32 first), C order or not
///   scheme       preset: "rquant" (layer, asymmetric, unsigned, rounding) or "normal" (layer, symmetric,
///                unsigned, truncation) supplying the choices not given; None: give them all
///   bits         bits per code m
///   w_max        clipping bound W > 0: weights are clamped to [-W, W] first
///   granularity  "layer", "global" or "channel" (per slice along axis 0)
///   symmetric, asymmetric, unsigned, signed, rounding, truncation: the CLI's switches (True to set one; a switch
///                contradicting the preset is an error)
///
/// Bit-exact with `accelsim quantize` and the PyTorch companion. Raises UserError on bad input.
#[pyfunction]
#[pyo3(signature = (array, *, scheme=Some("rquant"), bits=8, w_max=None, granularity=None, symmetric=false, asymmetric=false, unsigned=false, signed=false, rounding=false, truncation=false))]
#[allow(clippy::too_many_arguments)]
fn quantize<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
    scheme: Option<&str>,
    bits: i64,
    w_max: Option<f64>,
    granularity: Option<&str>,
    symmetric: bool,
    asymmetric: bool,
    unsigned: bool,
    signed: bool,
    rounding: bool,
    truncation: bool,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
    let mut a = Argv::new(&["quantize"]);
    a.val("bits", bits)
        .opt("scheme", scheme)
        .opt("w-max", w_max.map(|w| w as f32))
        .opt("granularity", granularity)
        .switch("symmetric", symmetric)
        .switch("asymmetric", asymmetric)
        .switch("unsigned", unsigned)
        .switch("signed", signed)
        .switch("rounding", rounding)
        .switch("truncation", truncation);
    let Command::Quantize(args) = a.parse()? else {
        unreachable!("parsed as quantize")
    };
    let cfg = cli::quantize::config_from_args(&args).map_err(py_err)?;
    let arr = float32_array(py, array)?;
    let ro = arr.readonly();
    let shape: Vec<usize> = ro.shape().to_vec();
    let values = ro
        .as_slice()
        .map_err(|e| internal(format!("quantize: {e}")))?;
    let (codes, deq) = py
        .detach(|| {
            let q = accelsim::quant::quantize(values, &shape, &cfg)
                .map_err(|e| CliError::user(format!("<array>: {e}")))?;
            let deq = q.dequantize();
            Ok::<_, CliError>((q.into_codes(), deq))
        })
        .map_err(py_err)?;
    drop(ro);
    let codes = match codes {
        Codes::U8(v) => owned_array(py, &shape, v)?,
        Codes::I8(v) => owned_array(py, &shape, v)?,
        Codes::I16(v) => owned_array(py, &shape, v)?,
        Codes::I32(v) => owned_array(py, &shape, v)?,
    };
    Ok((codes, owned_array(py, &shape, deq)?))
}

/// `array` as a C-contiguous float32 numpy array (no copy when it already is one); non-float input is a
/// UserError.
fn float32_array<'py>(
    py: Python<'py>,
    array: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let np = py.import("numpy")?;
    let arr = np.call_method1("asarray", (array,))?;
    let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
    if kind != "f" {
        let dtype = arr.getattr("dtype")?.str()?.to_string();
        return Err(UserError::new_err(format!(
            "quantize: the array has dtype {dtype}; a float array (float32) is required"
        )));
    }
    // Copies only when the dtype or the layout differ; keeps 0-d arrays 0-d.
    let kwargs = PyDict::new(py);
    kwargs.set_item("dtype", np.getattr("float32")?)?;
    kwargs.set_item("order", "C")?;
    let arr = np.call_method("asarray", (arr,), Some(&kwargs))?;
    Ok(arr.cast_into::<PyArrayDyn<f32>>()?)
}

/// Moves `v` into a numpy array of `shape` without copying.
fn owned_array<'py, T: numpy::Element>(
    py: Python<'py>,
    shape: &[usize],
    v: Vec<T>,
) -> PyResult<Bound<'py, PyAny>> {
    let a = ArrayD::from_shape_vec(IxDyn(shape), v).map_err(internal)?;
    Ok(a.into_pyarray(py).into_any())
}

/// Injects random bit errors into integer codes (`accelsim inject`): returns the faulty codes (same dtype and
/// shape). The codes are copied once into the result, or corrupted in place with `inplace=True` (no copy; the
/// array must be C-contiguous and writeable).
///
///   codes    numpy array of uint8 (unsigned m = 2..8; only the low m bits are stored), int8, int16 or int32
///   p        per-bit error probability for both directions (a probability in [0, 1], not a percent)
///   bits     m, the stored bits per code: 2..=8 for uint8; 8, 16, 32 for int8, int16, int32
///   seed     seed of the simulated chip: the same seed gives the same flips on every run and thread count, and
///            the flips at a lower p are a subset of those at a higher p
///   p01, p10 probability that a stored 0 reads as 1 / a stored 1 reads as 0 (override p for that direction)
///   pattern  also save the sampled flips as a fault-pattern file (safetensors, docs/faults.md)
///   replay   apply a saved fault-pattern file instead of sampling (no p/p01/p10/seed)
///
/// Identical flips to `accelsim inject` for the same codes, bits, rates and seed. Raises UserError on bad input.
#[pyfunction]
#[pyo3(signature = (codes, *, p=None, bits=None, seed=None, p01=None, p10=None, pattern=None, replay=None, inplace=false))]
#[allow(clippy::too_many_arguments)]
fn inject<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    p: Option<f64>,
    bits: Option<i64>,
    seed: Option<i128>,
    p01: Option<f64>,
    p10: Option<f64>,
    pattern: Option<PathBuf>,
    replay: Option<PathBuf>,
    inplace: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut a = Argv::new(&["inject"]);
    a.opt("bits", bits)
        .opt("p", p)
        .opt("p01", p01)
        .opt("p10", p10)
        .opt("seed", seed)
        .path("pattern", pattern.as_ref())?
        .path("replay", replay.as_ref())?;
    let Command::Inject(args) = a.parse()? else {
        unreachable!("parsed as inject")
    };
    let (bits, mode) = cli::inject::parse(&args).map_err(py_err)?;
    let out = if inplace {
        codes.clone()
    } else {
        // One copy, in C order (the element order the flips are indexed by, as in a .npy file).
        let kwargs = PyDict::new(py);
        kwargs.set_item("order", "C")?;
        py.import("numpy")?
            .call_method("array", (codes,), Some(&kwargs))?
    };
    let dtype = out.getattr("dtype")?.str()?.to_string();
    let pat = pattern.as_deref();
    let mode = &mode;
    macro_rules! corrupt {
        ($t:ty) => {{
            let arr = out.cast::<PyArrayDyn<$t>>()?;
            let mut rw = arr.try_readwrite().map_err(|e| {
                UserError::new_err(format!("inject: the array cannot be written in place: {e}"))
            })?;
            let slice = rw.as_slice_mut().map_err(|_| {
                UserError::new_err("inject: inplace=True needs a C-contiguous array")
            })?;
            py.detach(|| corrupt_slice(slice, bits, mode, pat))
                .map_err(py_err)?;
        }};
    }
    match dtype.as_str() {
        "uint8" => corrupt!(u8),
        "int8" => corrupt!(i8),
        "int16" => corrupt!(i16),
        "int32" => corrupt!(i32),
        other => {
            return Err(UserError::new_err(format!(
                "<array>: dtype {other} is not an integer code type (uint8, int8, int16 or int32)"
            )))
        }
    }
    Ok(out)
}

fn corrupt_slice<C: Code>(
    codes: &mut [C],
    bits: u8,
    mode: &cli::inject::Mode,
    pattern: Option<&Path>,
) -> Result<(), CliError> {
    let (_, sampled) =
        cli::inject::apply(Path::new("<array>"), codes, bits, mode, pattern.is_some())?;
    if let (Some(path), Some(p), cli::inject::Mode::Sample { rates, seed }) =
        (pattern, &sampled, mode)
    {
        cli::inject::write_pattern(path, p, rates, *seed, codes.len(), "<python array>")?;
    }
    Ok(())
}

/// The systolic-array model (`accelsim cycles --json`): one dict per layer with cycles, utilization, SRAM and
/// DRAM accesses, for a SCALE-Sim topology CSV or a model's conv and linear layers.
///
///   model_or_topology  a SCALE-Sim topology (a .csv path, or a name in hw_configs/topologies/ such as
///                      "resnet20") or a model (a name in models/ or a manifest path); a name that is both is the
///                      model
///   hw                 hardware config (name in hw_configs/ or path): array, buffers and weight memory
///   dataflow           "ws", "os" or "is" (overrides the config)
///   array              array size "ROWSxCOLS", e.g. "32x32" (overrides the config)
///   weight_bits        weight width in bits (default: the model's bits, 8 for a topology)
///   scalesim_ofmap     round output sizes as SCALE-Sim v2 does (topologies only)
///
/// Raises UserError on bad input.
#[pyfunction]
#[pyo3(signature = (model_or_topology, *, hw="14nm_sram", dataflow=None, array=None, weight_bits=None, scalesim_ofmap=false))]
fn cycles<'py>(
    py: Python<'py>,
    model_or_topology: PathBuf,
    hw: &str,
    dataflow: Option<&str>,
    array: Option<&str>,
    weight_bits: Option<i64>,
    scalesim_ofmap: bool,
) -> PyResult<Bound<'py, PyAny>> {
    let mut a = Argv::new(&["cycles", "--json"]);
    let given = model_or_topology.to_string_lossy().into_owned();
    let topology = given.to_ascii_lowercase().ends_with(".csv")
        || (locate::locate(Shipped::Model, &given).is_err()
            && locate::locate(Shipped::Topology, &given).is_ok());
    a.path(
        if topology { "topology" } else { "model" },
        Some(&model_or_topology),
    )?
    .val("hw", hw)
    .opt("dataflow", dataflow)
    .opt("array", array)
    .opt("weight-bits", weight_bits)
    .switch("scalesim-ofmap", scalesim_ofmap);
    let Command::Cycles(args) = a.parse()? else {
        unreachable!("parsed as cycles")
    };
    let (_, net) = cli::cycles::network(&args).map_err(py_err)?;
    to_py(py, &serde_json::to_value(&net.layers).map_err(internal)?)
}

/// A model file (TOML manifest + safetensors): `Model.load("fmnist-cnn-randbet-8b")` or a manifest path.
/// `info` is the object of `accelsim model show --json`; `layers` its layer list.
#[pyclass(module = "accelsim", frozen)]
struct Model {
    path: PathBuf,
    info: serde_json::Value,
}

#[pymethods]
impl Model {
    /// Loads a model: a name in models/ (found as the CLI finds it) or a path to a manifest (NAME.toml).
    #[staticmethod]
    fn load(path: PathBuf) -> PyResult<Model> {
        let s = path.to_string_lossy().into_owned();
        let resolved =
            locate::locate(Shipped::Model, &s).map_err(|e| UserError::new_err(e.to_string()))?;
        let info = cli::model::show_json(&resolved).map_err(py_err)?;
        Ok(Model {
            path: resolved,
            info,
        })
    }

    /// Path of the manifest.
    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    /// Model name from the manifest.
    #[getter]
    fn name(&self) -> String {
        self.info["name"].as_str().unwrap_or_default().to_string()
    }

    /// Training method (normal, rquant, clipping, randbet, ...).
    #[getter]
    fn method(&self) -> String {
        self.info["method"].as_str().unwrap_or_default().to_string()
    }

    /// Bits per stored weight.
    #[getter]
    fn bits(&self) -> u64 {
        self.info["bits"].as_u64().unwrap_or_default()
    }

    /// Number of quantized parameters.
    #[getter]
    fn params(&self) -> u64 {
        self.info["params"].as_u64().unwrap_or_default()
    }

    /// The layers: dicts with name, type, inputs, output_shape and params.
    #[getter]
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.info["layers"])
    }

    /// Everything `accelsim model show --json` prints for this model.
    #[getter]
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, &self.info)
    }

    /// Clean test error of the model measured by the inference engine (`accelsim eval --json`): a dict with
    /// images, wrong, clean_error_pct, recorded_clean_error_pct, seconds, ...
    ///
    ///   data            folder with the test split (default for Fashion-MNIST: /usr/share/datasets/fashion-mnist)
    ///   dataset         fashion-mnist, mnist, cifar10 or cifar100 (default: the manifest's dataset)
    ///   limit           evaluate only the first N test images
    ///   paper_protocol  the paper's protocol: the first 9000 test images
    ///   float           use the float weights instead of the quantized ones
    ///   progress        draw a progress bar on stderr
    #[pyo3(signature = (*, data=None, dataset=None, limit=None, paper_protocol=false, float=false, progress=true))]
    #[allow(clippy::too_many_arguments)]
    fn eval<'py>(
        &self,
        py: Python<'py>,
        data: Option<PathBuf>,
        dataset: Option<&str>,
        limit: Option<i64>,
        paper_protocol: bool,
        float: bool,
        progress: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut a = Argv::new(&["eval", "--json"]);
        a.path("model", Some(&self.path))?
            .path("data", data.as_ref())?
            .opt("dataset", dataset)
            .opt("limit", limit)
            .switch("paper-protocol", paper_protocol)
            .switch("float", float);
        let Command::Eval(args) = a.parse()? else {
            unreachable!("parsed as eval")
        };
        let v = interruptible(py, move || cli::eval::evaluate(&args, progress))?;
        to_py(py, &v)
    }

    fn __repr__(&self) -> String {
        format!(
            "Model({:?}: {}, {}-bit, {} params)",
            self.name(),
            self.method(),
            self.bits(),
            self.params()
        )
    }
}

/// accelsim: a cycle-approximate DNN accelerator and SRAM simulator (native part; use the `accelsim` package).
#[pymodule]
fn _accelsim(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("UserError", m.py().get_type::<UserError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("DEFAULT_GRID", cli::sweep::DEFAULT_GRID)?;
    m.add("DEFAULT_PROFILES", cli::sweep::DEFAULT_PROFILES)?;
    m.add_function(wrap_pyfunction!(run, m)?)?;
    m.add_function(wrap_pyfunction!(list_hw, m)?)?;
    m.add_function(wrap_pyfunction!(_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(_cli_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(quantize, m)?)?;
    m.add_function(wrap_pyfunction!(inject, m)?)?;
    m.add_function(wrap_pyfunction!(cycles, m)?)?;
    m.add_class::<Model>()?;
    Ok(())
}
