//! File writing shared by every writer in the crate: atomic replacement, and safetensors files whose bytes depend
//! only on their content.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary sibling (`.NAME.tmpPID`) is written, flushed to disk and
/// renamed over `path`, so a reader, a resumed sweep or a killed run never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The same safetensors file with its JSON header in one canonical form: keys sorted, no spaces, padded with
/// spaces to a multiple of 8 bytes as the format's writers do.
///
/// The `safetensors` crate writes the `__metadata__` map from a `HashMap`, so the order of its entries (and the
/// file's bytes) differs between runs. Tensor data offsets count from the end of the header, so rewriting the
/// header leaves the data untouched. Returns an error message for bytes that are not a safetensors file.
pub fn canonical_safetensors(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let n = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .ok_or("shorter than the 8-byte header length")?;
    let end = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| format!("header length {n} exceeds the file"))?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..end]).map_err(|e| format!("header is not JSON: {e}"))?;
    let header = sorted_keys(header);
    let mut text = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[end..]);
    Ok(out)
}

/// `v` with the keys of every object in sorted order, whichever map type serde_json was built with (its
/// `preserve_order` feature keeps insertion order, and another crate may switch it on).
fn sorted_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sorted_keys(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted_keys).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use safetensors::tensor::TensorView;
    use safetensors::{Dtype, SafeTensors};
    use std::collections::HashMap;

    fn file_with_metadata(pairs: &[(&str, &str)]) -> Vec<u8> {
        let data: Vec<u8> = (0u8..24).collect();
        let a = TensorView::new(Dtype::U32, vec![2], &data[..8]).unwrap();
        let b = TensorView::new(Dtype::I64, vec![2], &data[8..]).unwrap();
        let meta: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        safetensors::serialize(vec![("zeta", a), ("alpha", b)], &Some(meta)).unwrap()
    }

    #[test]
    fn canonical_header_is_sorted_and_keeps_the_data() {
        let pairs = [
            ("version", "1"),
            ("format", "f"),
            ("bits", "8"),
            ("seed", "7"),
        ];
        let first = canonical_safetensors(&file_with_metadata(&pairs)).unwrap();
        // every HashMap has its own random order; the canonical bytes do not depend on it
        for _ in 0..16 {
            let mut rev = pairs;
            rev.reverse();
            assert_eq!(
                canonical_safetensors(&file_with_metadata(&rev)).unwrap(),
                first
            );
        }
        let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&first[8..8 + n]).unwrap().trim_end();
        assert!(
            header.starts_with(
                r#"{"__metadata__":{"bits":"8","format":"f","seed":"7","version":"1"},"alpha":"#
            ),
            "{header}"
        );
        let st = SafeTensors::deserialize(&first).unwrap();
        assert_eq!(
            st.tensor("zeta").unwrap().data(),
            &(0u8..8).collect::<Vec<_>>()[..]
        );
        assert_eq!(
            st.tensor("alpha").unwrap().data(),
            &(8u8..24).collect::<Vec<_>>()[..]
        );
        // canonical form is a fixed point
        assert_eq!(canonical_safetensors(&first).unwrap(), first);
    }

    #[test]
    fn canonical_refuses_non_safetensors_bytes() {
        assert!(canonical_safetensors(b"abc").is_err());
        let mut b = 1000u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{}");
        assert!(canonical_safetensors(&b).unwrap_err().contains("exceeds"));
        let mut b = 2u64.to_le_bytes().to_vec();
        b.extend_from_slice(b"{x");
        assert!(canonical_safetensors(&b).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.bin")]);
        // a folder that does not exist: an error, and nothing left behind
        assert!(write_atomic(&dir.path().join("missing/out.bin"), b"x").is_err());
    }
}
