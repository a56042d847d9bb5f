//! Test-split readers for the datasets the simulator evaluates on (docs/datasets.md).
//!
//! - Fashion-MNIST and MNIST: IDX files (`t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`), gzip or raw.
//! - CIFAR-10 (`test_batch.bin`) and CIFAR-100 (`test.bin`, fine labels), the "binary version" of the datasets.
//!
//! Images are kept as raw bytes in N, C, H, W order; [`Dataset::normalized`] turns them into the float input of
//! the network, `x = (pixel/255 - mean[c]) / std[c]` (docs/model-format.md, `[input]`). The paper's protocol
//! evaluates robust error on the first 9000 test images (docs/run-and-sweep.md#evaluation-protocol): see [`PAPER_TEST_IMAGES`].
use std::fmt;
use std::path::{Path, PathBuf};

use ndarray::{Array4, ArrayView4, Axis};

pub mod cifar;
pub mod idx;

/// Debian's location of Fashion-MNIST (package `dataset-fashion-mnist`), the default `--data` folder.
pub const DEFAULT_FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Number of test images the paper's protocol evaluates robust error on (the first 9000, docs/run-and-sweep.md#evaluation-protocol).
pub const PAPER_TEST_IMAGES: usize = 9000;

/// The datasets the readers understand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetKind {
    FashionMnist,
    Mnist,
    Cifar10,
    Cifar100,
}

impl DatasetKind {
    /// All kinds, in the order the CLI lists them.
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::FashionMnist,
        DatasetKind::Mnist,
        DatasetKind::Cifar10,
        DatasetKind::Cifar100,
    ];

    /// The name used on the command line and in model manifests (`[input] dataset`).
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Mnist => "mnist",
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Cifar100 => "cifar100",
        }
    }

    /// Parses a CLI/manifest name (case-insensitive; `fashion_mnist`, `fmnist`, `cifar-10` are accepted too).
    pub fn parse(name: &str) -> Option<DatasetKind> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "fashion-mnist" | "fashionmnist" | "fmnist" => Some(DatasetKind::FashionMnist),
            "mnist" => Some(DatasetKind::Mnist),
            "cifar10" | "cifar-10" => Some(DatasetKind::Cifar10),
            "cifar100" | "cifar-100" => Some(DatasetKind::Cifar100),
            _ => None,
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        match self {
            DatasetKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Shape (C, H, W) of one image.
    pub fn image_shape(self) -> (usize, usize, usize) {
        match self {
            DatasetKind::FashionMnist | DatasetKind::Mnist => (1, 28, 28),
            DatasetKind::Cifar10 | DatasetKind::Cifar100 => (3, 32, 32),
        }
    }

    /// How to obtain the files, appended to "not found" errors.
    fn install_hint(self) -> &'static str {
        match self {
            DatasetKind::FashionMnist => {
                "install it with `sudo apt-get install dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist) or pass --data DIR with the t10k-*-ubyte[.gz] files"
            }
            DatasetKind::Mnist => {
                "download the MNIST t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz files and pass --data DIR"
            }
            DatasetKind::Cifar10 => {
                "download the CIFAR-10 binary version (cifar-10-binary.tar.gz), unpack it and pass --data DIR (the folder holding test_batch.bin)"
            }
            DatasetKind::Cifar100 => {
                "download the CIFAR-100 binary version (cifar-100-binary.tar.gz), unpack it and pass --data DIR (the folder holding test.bin)"
            }
        }
    }
}

impl fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of the dataset readers. Each is one line naming the file (or folder) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{kind} data not found in {dir}: missing {missing}; {hint}")]
    NotFound {
        kind: DatasetKind,
        dir: PathBuf,
        missing: String,
        hint: &'static str,
    },
    #[error("cannot read {file}: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {msg}")]
    Format { file: PathBuf, msg: String },
    #[error("normalization: {0}")]
    Normalization(String),
}

/// A test split held in memory: raw pixels and labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub kind: DatasetKind,
    /// Raw pixels, shape (N, C, H, W).
    pub images: Array4<u8>,
    /// Class index per image, `< classes`.
    pub labels: Vec<u8>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// The data set without its first `n` images (`n` ≤ `len()`).
    pub fn without_first(self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            kind: self.kind,
            images: self.images.slice(ndarray::s![n.., .., .., ..]).to_owned(),
            labels: self.labels[n..].to_vec(),
            classes: self.classes,
        }
    }

    /// SHA-256 (hex) of the split's content: its kind, its shape (N, C, H, W) — what the IDX or CIFAR headers
    /// declare — and every pixel and label byte it holds. Two folders holding the same images give the same
    /// fingerprint whatever their path; replacing one image changes it. Used by the sweep's configuration
    /// fingerprint (docs/run-and-sweep.md).
    pub fn content_sha256(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"accelsim-test-split\0");
        h.update(self.kind.name().as_bytes());
        for d in self.images.shape() {
            h.update((*d as u64).to_le_bytes());
        }
        h.update((self.classes as u64).to_le_bytes());
        match self.images.as_slice() {
            Some(px) => h.update(px),
            None => self.images.iter().for_each(|b| h.update([*b])),
        }
        h.update(&self.labels);
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// True when the split holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Shape (C, H, W) of one image.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        let s = self.images.shape();
        (s[1], s[2], s[3])
    }

    /// The network input: `x[n,c,h,w] = (pixel/255 - mean[c]) / std[c]` (docs/model-format.md `[input]`).
    /// `mean`/`std` hold one value per channel, or a single value used for every channel; both empty: `pixel/255`.
    pub fn normalized(&self, mean: &[f32], std: &[f32]) -> Result<Array4<f32>, DataError> {
        normalize(self.images.view(), mean, std)
    }
}

/// `(pixel/255 - mean[c]) / std[c]` for a (N, C, H, W) batch of raw pixels.
pub fn normalize(
    images: ArrayView4<u8>,
    mean: &[f32],
    std: &[f32],
) -> Result<Array4<f32>, DataError> {
    let c = images.shape()[1];
    let per_channel = |v: &[f32], what: &str| -> Result<Vec<f32>, DataError> {
        match v.len() {
            1 => Ok(vec![v[0]; c]),
            n if n == c => Ok(v.to_vec()),
            n => Err(DataError::Normalization(format!(
                "{what} has {n} values but the images have {c} channels (give 1 or {c})"
            ))),
        }
    };
    // No mean and no std: no normalization, x = pixel/255 (docs/model-format.md `[input]`).
    let (mean, std) = if mean.is_empty() && std.is_empty() {
        (&[0.0f32][..], &[1.0f32][..])
    } else {
        (mean, std)
    };
    let mean = per_channel(mean, "mean")?;
    let std = per_channel(std, "std")?;
    if let Some(s) = std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(DataError::Normalization(format!(
            "std must be finite and > 0, got {s}"
        )));
    }
    let mut out = Array4::<f32>::zeros(images.raw_dim());
    for (ci, (m, s)) in mean.iter().zip(&std).enumerate() {
        let inv = 1.0 / s;
        out.index_axis_mut(Axis(1), ci)
            .zip_mut_with(&images.index_axis(Axis(1), ci), |o, &p| {
                *o = (p as f32 / 255.0 - m) * inv;
            });
    }
    Ok(out)
}

/// The data folder of `kind`: `dir` when given, else the Debian package's folder for Fashion-MNIST (the other
/// data sets have no default and need `--data`).
fn data_dir(kind: DatasetKind, dir: Option<&Path>) -> Result<PathBuf, DataError> {
    match (dir, kind) {
        (Some(d), _) => Ok(d.to_path_buf()),
        (None, DatasetKind::FashionMnist) => Ok(PathBuf::from(DEFAULT_FASHION_MNIST_DIR)),
        (None, _) => Err(DataError::NotFound {
            kind,
            dir: PathBuf::from("(no --data given)"),
            missing: "the data folder".into(),
            hint: kind.install_hint(),
        }),
    }
}

/// Loads the first `limit` images (all when `None`) of the test split of `kind` from `dir`
/// (default for Fashion-MNIST: [`DEFAULT_FASHION_MNIST_DIR`]).
pub fn load_test_split(
    kind: DatasetKind,
    dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let dir = data_dir(kind, dir)?;
    let ds = match kind {
        DatasetKind::FashionMnist | DatasetKind::Mnist => idx::load_mnist_like(kind, &dir, limit)?,
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => cifar::load_cifar(kind, &dir, limit)?,
    };
    // An empty split would report 0.00% error for any model: refuse it (the files' headers declare 0 images).
    if ds.is_empty() {
        return Err(DataError::Format {
            file: dir,
            msg: format!(
                "the {kind} test split holds 0 images; allowed: at least 1 (check the files' headers)"
            ),
        });
    }
    Ok(ds)
}

/// Loads the first `limit` images of the **training** split of `kind` from `dir` (default for Fashion-MNIST:
/// [`DEFAULT_FASHION_MNIST_DIR`]): the int8 datapath calibrates its activation ranges on them
/// (docs/datapath.md#calibration). CIFAR: the first training file.
pub fn load_train_split(
    kind: DatasetKind,
    dir: Option<&Path>,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let dir = data_dir(kind, dir)?;
    let ds = match kind {
        DatasetKind::FashionMnist | DatasetKind::Mnist => {
            idx::load_mnist_like_split(kind, &dir, limit, true)?
        }
        DatasetKind::Cifar10 | DatasetKind::Cifar100 => cifar::load_cifar_train(kind, &dir, limit)?,
    };
    if ds.is_empty() {
        return Err(DataError::Format {
            file: dir,
            msg: format!("the {kind} training split holds 0 images; allowed: at least 1"),
        });
    }
    Ok(ds)
}

fn not_found(kind: DatasetKind, dir: &Path, missing: String) -> DataError {
    DataError::NotFound {
        kind,
        dir: dir.to_path_buf(),
        missing,
        hint: kind.install_hint(),
    }
}

/// A dataset file, at most [`MAX_DATASET_BYTES`](crate::limits::MAX_DATASET_BYTES) bytes.
fn read_file(path: &Path) -> Result<Vec<u8>, DataError> {
    crate::limits::read_file(path, crate::limits::MAX_DATASET_BYTES, "dataset file").map_err(|e| {
        match e {
            crate::limits::ReadError::Io(source) => DataError::Io {
                file: path.to_path_buf(),
                source,
            },
            crate::limits::ReadError::TooLarge(msg) => DataError::Format {
                file: path.to_path_buf(),
                msg,
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in DatasetKind::ALL {
            assert_eq!(DatasetKind::parse(k.name()), Some(k));
        }
        assert_eq!(
            DatasetKind::parse("Fashion_MNIST"),
            Some(DatasetKind::FashionMnist)
        );
        assert_eq!(DatasetKind::parse("imagenet"), None);
    }

    #[test]
    fn normalize_per_channel() {
        let mut img = Array4::<u8>::zeros((2, 2, 1, 2));
        img[[0, 0, 0, 0]] = 255;
        img[[1, 1, 0, 1]] = 51;
        let x = normalize(img.view(), &[0.5, 0.0], &[0.5, 2.0]).unwrap();
        assert!((x[[0, 0, 0, 0]] - 1.0).abs() < 1e-6);
        assert!((x[[0, 0, 0, 1]] + 1.0).abs() < 1e-6);
        assert!((x[[1, 1, 0, 1]] - 0.1).abs() < 1e-6);
        assert!(normalize(img.view(), &[0.1, 0.2, 0.3], &[1.0]).is_err());
        assert!(normalize(img.view(), &[0.1], &[0.0]).is_err());
    }

    #[test]
    fn missing_default_dir_explains_install() {
        let e = load_test_split(DatasetKind::Cifar10, None, None).unwrap_err();
        assert!(e.to_string().contains("--data"), "{e}");
        let d = tempfile::tempdir().unwrap();
        let e = load_test_split(DatasetKind::FashionMnist, Some(d.path()), None).unwrap_err();
        assert!(
            e.to_string()
                .contains("apt-get install dataset-fashion-mnist"),
            "{e}"
        );
    }
}
