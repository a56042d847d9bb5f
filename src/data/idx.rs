//! IDX files (the MNIST / Fashion-MNIST container), gzip-compressed or raw.
//!
//! Layout: magic `00 00 08 NDIM` (0x08 = unsigned byte), NDIM big-endian u32 dimensions, then the bytes in C order.
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array4;

use super::{not_found, read_file, DataError, Dataset, DatasetKind};

const IMAGES: &str = "t10k-images-idx3-ubyte";
const LABELS: &str = "t10k-labels-idx1-ubyte";

/// Finds `stem.gz`, `stem`, or the `stem.idx3-ubyte`-style variant (`t10k-images.idx3-ubyte`) in `dir`.
fn find(dir: &Path, stem: &str) -> Option<PathBuf> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    [
        format!("{stem}.gz"),
        stem.to_string(),
        format!("{dotted}.gz"),
        dotted,
    ]
    .iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

/// Reads a whole file and gunzips it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = read_file(path)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| DataError::Format {
                file: path.to_path_buf(),
                msg: format!("corrupt gzip stream: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// A parsed IDX file of unsigned bytes: dimensions and the payload (exactly prod(dims) bytes, extra bytes refused).
pub(crate) fn parse_idx<'a>(
    bytes: &'a [u8],
    file: &Path,
) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let err = |msg: String| DataError::Format {
        file: file.to_path_buf(),
        msg,
    };
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(err("not an IDX file (bad magic number)".into()));
    }
    if bytes[2] != 0x08 {
        return Err(err(format!(
            "IDX element type 0x{:02x} is not supported (only 0x08 = unsigned byte)",
            bytes[2]
        )));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if ndim == 0 || bytes.len() < header {
        return Err(err(format!("truncated IDX header ({ndim} dimensions)")));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
        })
        .collect();
    let total = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err("IDX dimensions overflow".into()))?;
    let payload = &bytes[header..];
    if payload.len() != total {
        return Err(err(format!(
            "IDX payload has {} bytes but dimensions {:?} need {} (truncated or corrupted file)",
            payload.len(),
            dims,
            total
        )));
    }
    Ok((dims, payload))
}

pub(crate) fn load_mnist_like(
    kind: DatasetKind,
    dir: &Path,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let img_path =
        find(dir, IMAGES).ok_or_else(|| not_found(kind, dir, format!("{IMAGES}[.gz]")))?;
    let lab_path =
        find(dir, LABELS).ok_or_else(|| not_found(kind, dir, format!("{LABELS}[.gz]")))?;
    let img_bytes = read_maybe_gz(&img_path)?;
    let lab_bytes = read_maybe_gz(&lab_path)?;
    let (idims, ipix) = parse_idx(&img_bytes, &img_path)?;
    let (ldims, labs) = parse_idx(&lab_bytes, &lab_path)?;
    if idims.len() != 3 {
        return Err(DataError::Format {
            file: img_path,
            msg: format!("expected 3 dimensions (N, H, W), found {idims:?}"),
        });
    }
    if ldims.len() != 1 {
        return Err(DataError::Format {
            file: lab_path,
            msg: format!("expected 1 dimension (N), found {ldims:?}"),
        });
    }
    if ldims[0] != idims[0] {
        return Err(DataError::Format {
            file: lab_path,
            msg: format!(
                "{} labels but {} images in {}",
                ldims[0],
                idims[0],
                img_path.display()
            ),
        });
    }
    let classes = kind.classes();
    if let Some(i) = labs.iter().position(|&l| l as usize >= classes) {
        return Err(DataError::Format {
            file: lab_path,
            msg: format!(
                "label {} of image {i} is out of range 0..{}",
                labs[i],
                classes - 1
            ),
        });
    }
    let n = limit.map_or(idims[0], |l| l.min(idims[0]));
    let (h, w) = (idims[1], idims[2]);
    let images = Array4::from_shape_vec((n, 1, h, w), ipix[..n * h * w].to_vec())
        .expect("shape matches the payload length checked above");
    Ok(Dataset {
        kind,
        images,
        labels: labs[..n].to_vec(),
        classes,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Builds IDX bytes for test files.
    pub(crate) fn idx_bytes(dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn write_split(dir: &Path, n: u32, gzip: bool) {
        let pix: Vec<u8> = (0..n * 4).map(|i| (i * 7 % 256) as u8).collect();
        let labs: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let (i, l) = (idx_bytes(&[n, 2, 2], &pix), idx_bytes(&[n], &labs));
        if gzip {
            std::fs::write(dir.join(format!("{IMAGES}.gz")), gz(&i)).unwrap();
            std::fs::write(dir.join(format!("{LABELS}.gz")), gz(&l)).unwrap();
        } else {
            std::fs::write(dir.join(IMAGES), i).unwrap();
            std::fs::write(dir.join(LABELS), l).unwrap();
        }
    }

    #[test]
    fn reads_gzip_and_raw_with_limit() {
        for gzip in [true, false] {
            let d = tempfile::tempdir().unwrap();
            write_split(d.path(), 5, gzip);
            let ds = load_mnist_like(DatasetKind::Mnist, d.path(), None).unwrap();
            assert_eq!(ds.images.shape(), &[5, 1, 2, 2]);
            assert_eq!(ds.labels, vec![0, 1, 2, 3, 4]);
            assert_eq!(ds.images[[1, 0, 0, 1]], 35);
            let ds = load_mnist_like(DatasetKind::Mnist, d.path(), Some(3)).unwrap();
            assert_eq!(ds.len(), 3);
            let ds = load_mnist_like(DatasetKind::Mnist, d.path(), Some(30)).unwrap();
            assert_eq!(ds.len(), 5);
        }
    }

    #[test]
    fn rejects_invalid_files() {
        let d = tempfile::tempdir().unwrap();
        write_split(d.path(), 5, false);
        // Truncated image payload.
        let img = d.path().join(IMAGES);
        let mut b = std::fs::read(&img).unwrap();
        b.truncate(b.len() - 1);
        std::fs::write(&img, &b).unwrap();
        let e = load_mnist_like(DatasetKind::Mnist, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert!(e.to_string().contains(IMAGES), "{e}");
        // Bad magic.
        std::fs::write(&img, [1u8, 2, 3, 4, 5]).unwrap();
        let e = load_mnist_like(DatasetKind::Mnist, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        // Label count mismatch.
        write_split(d.path(), 5, false);
        std::fs::write(d.path().join(LABELS), idx_bytes(&[4], &[0, 1, 2, 3])).unwrap();
        let e = load_mnist_like(DatasetKind::Mnist, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("4 labels but 5 images"), "{e}");
        // Label out of range.
        std::fs::write(d.path().join(LABELS), idx_bytes(&[5], &[0, 1, 2, 3, 10])).unwrap();
        let e = load_mnist_like(DatasetKind::Mnist, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        // Corrupt gzip.
        std::fs::remove_file(d.path().join(IMAGES)).unwrap();
        std::fs::write(d.path().join(format!("{IMAGES}.gz")), [0x1f, 0x8b, 0, 1, 2]).unwrap();
        let e = load_mnist_like(DatasetKind::Mnist, d.path(), None).unwrap_err();
        assert!(e.to_string().contains("gzip"), "{e}");
    }
}
