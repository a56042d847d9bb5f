//! IDX files (the MNIST / Fashion-MNIST container), gzip-compressed or raw.
//!
//! Layout: magic `00 00 08 NDIM` (0x08 = unsigned byte), NDIM big-endian u32 dimensions, then the bytes in C order.
use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::Array4;

use super::{not_found, read_file, DataError, Dataset, DatasetKind};

const IMAGES: &str = "t10k-images-idx3-ubyte";
const LABELS: &str = "t10k-labels-idx1-ubyte";
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";

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

/// Reads an IDX file, raw or gzip-compressed, within [`MAX_DATASET_BYTES`](crate::limits::MAX_DATASET_BYTES).
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = read_file(path)?;
    Ok(decode_idx(&raw, path)?.into_owned())
}

/// The uncompressed bytes of an IDX file given raw or gzip-compressed (by its magic bytes). A gzip stream is
/// inflated header first; the payload is then inflated only up to the size the dimensions declare (checked
/// against [`MAX_DATASET_BYTES`](crate::limits::MAX_DATASET_BYTES)), so a corrupt header or a gzip bomb stops
/// early.
pub fn decode_idx<'a>(raw: &'a [u8], file: &Path) -> Result<Cow<'a, [u8]>, DataError> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(Cow::Borrowed(raw));
    }
    let err = |msg: String| DataError::Format {
        file: file.to_path_buf(),
        msg,
    };
    let mut dec = flate2::read::GzDecoder::new(raw);
    let mut out = Vec::new();
    let mut inflate = |out: &mut Vec<u8>, n: u64| {
        (&mut dec)
            .take(n)
            .read_to_end(out)
            .map_err(|e| err(format!("corrupt gzip stream: {e}")))
    };
    inflate(&mut out, 4)?;
    if out.len() < 4 || out[..3] != [0, 0, 8] {
        // Let the header reader word the error (bad magic, element type).
        idx_header(&out, file)?;
        return Err(err("truncated IDX header".into()));
    }
    let ndim = out[3] as u64;
    inflate(&mut out, 4 * ndim)?;
    let (header, dims) = idx_header(&out, file)?;
    let total = crate::limits::checked_product(dims.iter().map(|&d| d as u64))
        .and_then(|t| t.checked_add(header as u64))
        .filter(|&t| t <= crate::limits::MAX_DATASET_BYTES)
        .ok_or_else(|| {
            err(format!(
                "IDX dimensions {dims:?} declare more than the {} limit for a dataset file",
                crate::limits::human_bytes(crate::limits::MAX_DATASET_BYTES)
            ))
        })?;
    inflate(&mut out, total - header as u64 + 1)?;
    if out.len() as u64 > total {
        return Err(err(format!(
            "the decompressed file is longer than its dimensions {dims:?} declare (corrupted file?)"
        )));
    }
    Ok(Cow::Owned(out))
}

/// The header length and the dimensions of IDX bytes (magic already checked by the caller or refused here).
fn idx_header(bytes: &[u8], file: &Path) -> Result<(usize, Vec<u32>), DataError> {
    let err = |msg: String| DataError::Format {
        file: file.to_path_buf(),
        msg,
    };
    let mut c = crate::limits::Cursor::new(bytes);
    let magic = c
        .take(4, "the IDX magic number")
        .map_err(|_| err("not an IDX file (bad magic number)".into()))?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(err("not an IDX file (bad magic number)".into()));
    }
    if magic[2] != 0x08 {
        return Err(err(format!(
            "IDX element type 0x{:02x} is not supported (only 0x08 = unsigned byte)",
            magic[2]
        )));
    }
    let ndim = magic[3] as usize;
    if ndim == 0 {
        return Err(err("IDX header declares 0 dimensions".into()));
    }
    let dims = (0..ndim)
        .map(|i| c.u32_be(&format!("IDX dimension {i}")))
        .collect::<Result<Vec<u32>, String>>()
        .map_err(|m| err(format!("truncated IDX header ({ndim} dimensions): {m}")))?;
    Ok((c.pos(), dims))
}

/// A parsed IDX file of unsigned bytes: dimensions and the payload (exactly prod(dims) bytes, extra bytes refused).
/// A parsed IDX file of unsigned bytes: dimensions and the payload (exactly prod(dims) bytes, extra bytes refused).
pub fn parse_idx<'a>(bytes: &'a [u8], file: &Path) -> Result<(Vec<usize>, &'a [u8]), DataError> {
    let (header, dims) = idx_header(bytes, file)?;
    let payload = &bytes[header..];
    let total = crate::limits::checked_product(dims.iter().map(|&d| d as u64));
    if total != Some(payload.len() as u64) {
        return Err(DataError::Format {
            file: file.to_path_buf(),
            msg: format!(
                "IDX payload has {} bytes but dimensions {:?} need {} (truncated or corrupted file)",
                payload.len(),
                dims,
                total.map_or("more than 2^64".to_string(), |t| t.to_string())
            ),
        });
    }
    Ok((dims.into_iter().map(|d| d as usize).collect(), payload))
}

pub(crate) fn load_mnist_like(
    kind: DatasetKind,
    dir: &Path,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    load_mnist_like_split(kind, dir, limit, false)
}

/// The test split (`train = false`) or the training split (`train-images-idx3-ubyte[.gz]`, ...).
pub(crate) fn load_mnist_like_split(
    kind: DatasetKind,
    dir: &Path,
    limit: Option<usize>,
    train: bool,
) -> Result<Dataset, DataError> {
    let (images, labels) = if train {
        (TRAIN_IMAGES, TRAIN_LABELS)
    } else {
        (IMAGES, LABELS)
    };
    let img_path =
        find(dir, images).ok_or_else(|| not_found(kind, dir, format!("{images}[.gz]")))?;
    let lab_path =
        find(dir, labels).ok_or_else(|| not_found(kind, dir, format!("{labels}[.gz]")))?;
    let img_bytes = read_maybe_gz(&img_path)?;
    let lab_bytes = read_maybe_gz(&lab_path)?;
    load_from_bytes(kind, &img_bytes, &img_path, &lab_bytes, &lab_path, limit)
}

/// The images and labels of an MNIST-like split from the (uncompressed) bytes of its two IDX files.
pub fn load_from_bytes(
    kind: DatasetKind,
    img_bytes: &[u8],
    img_path: &Path,
    lab_bytes: &[u8],
    lab_path: &Path,
    limit: Option<usize>,
) -> Result<Dataset, DataError> {
    let (img_path, lab_path) = (img_path.to_path_buf(), lab_path.to_path_buf());
    let (idims, ipix) = parse_idx(img_bytes, &img_path)?;
    let (ldims, labs) = parse_idx(lab_bytes, &lab_path)?;
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

    #[test]
    fn gzip_is_inflated_only_as_far_as_the_header_claims() {
        let p = Path::new("t.gz");
        // A header claiming 2^32 x 2^32 x 2^32 bytes: refused before inflating the payload.
        let e = decode_idx(&gz(&idx_bytes(&[u32::MAX; 3], &[0; 16])), p).unwrap_err();
        assert!(
            e.to_string().contains("declare more than the 2 GiB limit"),
            "{e}"
        );
        // A gzip bomb behind a small header: stops one byte past the declared 4 bytes.
        let mut bomb = idx_bytes(&[2, 2], &[1, 2, 3, 4]);
        bomb.extend(std::iter::repeat_n(0u8, 1 << 22));
        let e = decode_idx(&gz(&bomb), p).unwrap_err();
        assert!(
            e.to_string().contains("longer than its dimensions [2, 2]"),
            "{e}"
        );
        // Exact: the same bytes as raw.
        let good = idx_bytes(&[3], &[7, 8, 9]);
        assert_eq!(&*decode_idx(&gz(&good), p).unwrap(), &good[..]);
        assert_eq!(&*decode_idx(&good, p).unwrap(), &good[..]);
        // Truncated header and bad magic behind gzip.
        let e = decode_idx(&gz(&good[..6]), p).unwrap_err();
        assert!(e.to_string().contains("truncated IDX header"), "{e}");
        let e = decode_idx(&gz(&[1, 2, 3, 4, 5]), p).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
        let e = parse_idx(&idx_bytes(&[u32::MAX, u32::MAX, u32::MAX], &[]), p).unwrap_err();
        assert!(e.to_string().contains("need more than 2^64"), "{e}");
    }
}
