//! CIFAR-10 / CIFAR-100 "binary version" test files.
//!
//! CIFAR-10 `test_batch.bin`: records of 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major 32x32).
//! CIFAR-100 `test.bin`: records of 1 coarse label + 1 fine label + 3072 pixel bytes; the fine label (100 classes) is used.
use std::path::{Path, PathBuf};

use ndarray::Array4;

use super::{not_found, read_file, DataError, Dataset, DatasetKind};

const PIXELS: usize = 3 * 32 * 32;

/// (file name, sub-folder of the official archive, label bytes per record)
fn layout(kind: DatasetKind) -> (&'static str, &'static str, usize) {
    match kind {
        DatasetKind::Cifar100 => ("test.bin", "cifar-100-binary", 2),
        _ => ("test_batch.bin", "cifar-10-batches-bin", 1),
    }
}

fn find(dir: &Path, kind: DatasetKind) -> Option<PathBuf> {
    let (file, sub, _) = layout(kind);
    [dir.join(file), dir.join(sub).join(file)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The first training file (`data_batch_1.bin` / `train.bin`), for int8 calibration.
pub(crate) fn load_cifar_train(
    kind: DatasetKind,
    dir: &Path,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let (_, sub, label_bytes) = layout(kind);
    let file = match kind {
        DatasetKind::Cifar100 => "train.bin",
        _ => "data_batch_1.bin",
    };
    let path = [dir.join(file), dir.join(sub).join(file)]
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| not_found(kind, dir, file.to_string()))?;
    let bytes = read_file(&path)?;
    parse_cifar(kind, &bytes, &path, label_bytes, limit)
}

pub(crate) fn load_cifar(
    kind: DatasetKind,
    dir: &Path,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let (file, _, label_bytes) = layout(kind);
    let path = find(dir, kind).ok_or_else(|| not_found(kind, dir, file.to_string()))?;
    let bytes = read_file(&path)?;
    parse_cifar(kind, &bytes, &path, label_bytes, limit)
}

/// A CIFAR split from the bytes of its binary file (`label_bytes` = 1 for CIFAR-10, 2 for CIFAR-100).
pub fn parse_cifar(
    kind: DatasetKind,
    bytes: &[u8],
    path: &Path,
    label_bytes: usize,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let rec = label_bytes + PIXELS;
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        return Err(DataError::Format {
            file: path.to_path_buf(),
            msg: format!(
                "size {} bytes is not a positive multiple of the {rec}-byte {kind} record (truncated or wrong file)",
                bytes.len()
            ),
        });
    }
    let total = bytes.len() / rec;
    let n = limit.map_or(total, |l| l.min(total));
    let classes = kind.classes();
    let mut pixels = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, r) in bytes.chunks_exact(rec).take(n).enumerate() {
        let label = r[label_bytes - 1];
        if label as usize >= classes {
            return Err(DataError::Format {
                file: path.to_path_buf(),
                msg: format!(
                    "label {label} of record {i} is out of range 0..{}",
                    classes - 1
                ),
            });
        }
        labels.push(label);
        pixels.extend_from_slice(&r[label_bytes..]);
    }
    let images = Array4::from_shape_vec((n, 3, 32, 32), pixels)
        .expect("n records of 3x32x32 pixels were copied");
    Ok(Dataset {
        kind,
        images,
        labels,
        classes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label_bytes: &[u8], fill: u8) -> Vec<u8> {
        let mut r = label_bytes.to_vec();
        r.extend((0..PIXELS).map(|i| fill.wrapping_add((i % 251) as u8)));
        r
    }

    #[test]
    fn reads_cifar10_and_cifar100() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&sub).unwrap();
        let mut b = record(&[3], 0);
        b.extend(record(&[9], 5));
        std::fs::write(sub.join("test_batch.bin"), &b).unwrap();
        let ds = load_cifar(DatasetKind::Cifar10, d.path(), None).unwrap();
        assert_eq!(ds.images.shape(), &[2, 3, 32, 32]);
        assert_eq!(ds.labels, vec![3, 9]);
        // Pixel 1024 is the first green value.
        assert_eq!(
            ds.images[[1, 1, 0, 0]],
            5u8.wrapping_add((1024 % 251) as u8)
        );

        let mut b = record(&[1, 77], 0);
        b.extend(record(&[2, 99], 1));
        std::fs::write(d.path().join("test.bin"), &b).unwrap();
        let ds = load_cifar(DatasetKind::Cifar100, d.path(), Some(1)).unwrap();
        assert_eq!(ds.labels, vec![77]);
        assert_eq!(ds.classes, 100);
    }

    #[test]
    fn rejects_truncated_and_bad_labels() {
        let d = tempfile::tempdir().unwrap();
        let mut b = record(&[3], 0);
        b.pop();
        std::fs::write(d.path().join("test_batch.bin"), &b).unwrap();
        let e = load_cifar(DatasetKind::Cifar10, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("test_batch.bin"), "{e}");
        std::fs::write(d.path().join("test_batch.bin"), record(&[10], 0)).unwrap();
        let e = load_cifar(DatasetKind::Cifar10, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = load_cifar(DatasetKind::Cifar100, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("test.bin"), "{e}");
    }
}
