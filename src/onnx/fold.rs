//! Constant folding at import: the ONNX operators that compute on constant tensors only (initializers,
//! `Constant` nodes, and shapes of activations), as PyTorch's exporter emits them around `flatten`/`view`
//! (`Shape → Gather → Unsqueeze → Concat → Reshape`) and for weight preprocessing (`Transpose`, `Cast`, `Mul`...).
//!
//! The batch size is unknown at import: in an int64 shape tensor it is the sentinel [`BATCH`], which only
//! travels through the data-movement operators (`Gather`, `Slice`, `Concat`, `Unsqueeze`, `Squeeze`, `Reshape`,
//! `Cast`, `Identity`); arithmetic on it is refused.
use super::tensor::{checked_numel, Data, Tensor};

/// Stands for the (dynamic) batch size inside folded int64 shape tensors.
pub const BATCH: i64 = i64::MIN + 7;

type R<T> = Result<T, String>;

/// Normalizes a possibly negative axis for a tensor of rank `rank`.
pub fn axis(a: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if (0..r).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast_dims(a: &[usize], b: &[usize]) -> R<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r {
            a[i + a.len() - r]
        } else {
            1
        };
        let db = if i + b.len() >= r {
            b[i + b.len() - r]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    checked_numel(&out).ok_or("broadcast result is too large")?;
    Ok(out)
}

/// Index map: for each element of `out_dims`, the flat index into a tensor of `dims` broadcast to it.
fn broadcast_index(dims: &[usize], out_dims: &[usize]) -> Vec<usize> {
    let r = out_dims.len();
    let s = strides(dims);
    let n: usize = out_dims.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        let mut k = 0;
        for (i, &p) in pos.iter().enumerate() {
            if i + dims.len() >= r {
                let j = i + dims.len() - r;
                if dims[j] != 1 {
                    k += p * s[j];
                }
            }
        }
        idx.push(k);
        for i in (0..r).rev() {
            pos[i] += 1;
            if pos[i] < out_dims[i] {
                break;
            }
            pos[i] = 0;
        }
    }
    idx
}

/// Elementwise binary operator with broadcasting: `Add`, `Sub`, `Mul`, `Div` (int64: truncating division).
pub fn binary(op: &str, a: &Tensor, b: &Tensor) -> R<Tensor> {
    let dims = broadcast_dims(&a.dims, &b.dims)?;
    let (ia, ib) = (
        broadcast_index(&a.dims, &dims),
        broadcast_index(&b.dims, &dims),
    );
    let data = match (&a.data, &b.data) {
        (Data::F32(x), Data::F32(y)) => {
            let f: fn(f32, f32) -> f32 = match op {
                "Add" => |p, q| p + q,
                "Sub" => |p, q| p - q,
                "Mul" => |p, q| p * q,
                "Div" => |p, q| p / q,
                _ => return Err(format!("cannot fold {op}")),
            };
            Data::F32(ia.iter().zip(&ib).map(|(&i, &j)| f(x[i], y[j])).collect())
        }
        (Data::I64(x), Data::I64(y)) => {
            if x.contains(&BATCH) || y.contains(&BATCH) {
                return Err(format!(
                    "{op} on the batch size (a dynamic shape computation) is not supported"
                ));
            }
            let mut out = Vec::with_capacity(ia.len());
            for (&i, &j) in ia.iter().zip(&ib) {
                let (p, q) = (x[i], y[j]);
                out.push(
                    match op {
                        "Add" => p.checked_add(q),
                        "Sub" => p.checked_sub(q),
                        "Mul" => p.checked_mul(q),
                        "Div" => p.checked_div(q),
                        _ => return Err(format!("cannot fold {op}")),
                    }
                    .ok_or_else(|| {
                        format!("int64 {op} of {p} and {q} overflows or divides by zero")
                    })?,
                );
            }
            Data::I64(out)
        }
        _ => return Err(format!("{op} of a float and an integer tensor")),
    };
    Ok(Tensor { dims, data })
}

/// Unary float operators.
pub fn unary(op: &str, a: &Tensor) -> R<Tensor> {
    let f: fn(f32) -> f32 = match op {
        "Sqrt" => f32::sqrt,
        "Neg" => |x| -x,
        "Reciprocal" => |x| 1.0 / x,
        _ => return Err(format!("cannot fold {op}")),
    };
    match &a.data {
        Data::F32(v) => Ok(Tensor::f32(
            a.dims.clone(),
            v.iter().map(|&x| f(x)).collect(),
        )),
        Data::I64(v) if op == "Neg" && !v.contains(&BATCH) => Ok(Tensor::i64(
            a.dims.clone(),
            v.iter().map(|&x| x.wrapping_neg()).collect(),
        )),
        Data::I64(_) => Err(format!("{op} of an integer tensor is not supported")),
    }
}

/// `Transpose` with permutation `perm` (default: reversed axes).
pub fn transpose(a: &Tensor, perm: Option<&[i64]>) -> R<Tensor> {
    let r = a.dims.len();
    let perm: Vec<usize> = match perm {
        Some(p) => p.iter().map(|&x| axis(x, r)).collect::<R<_>>()?,
        None => (0..r).rev().collect(),
    };
    let mut seen = vec![false; r];
    if perm.len() != r || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        return Err(format!("perm {perm:?} is not a permutation of {r} axes"));
    }
    let dims: Vec<usize> = perm.iter().map(|&p| a.dims[p]).collect();
    let s = strides(&a.dims);
    let n = a.len();
    let mut src = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        src.push(
            pos.iter()
                .zip(&perm)
                .map(|(&p, &ax)| p * s[ax])
                .sum::<usize>(),
        );
        for i in (0..r).rev() {
            pos[i] += 1;
            if pos[i] < dims[i] {
                break;
            }
            pos[i] = 0;
        }
    }
    Ok(Tensor {
        dims,
        data: gather_flat(&a.data, &src),
    })
}

fn gather_flat(d: &Data, idx: &[usize]) -> Data {
    match d {
        Data::F32(v) => Data::F32(idx.iter().map(|&i| v[i]).collect()),
        Data::I64(v) => Data::I64(idx.iter().map(|&i| v[i]).collect()),
    }
}

/// `Gather` along `ax` with integer `indices` (negative ones wrap).
pub fn gather(a: &Tensor, indices: &Tensor, ax: i64) -> R<Tensor> {
    let ax = axis(ax, a.dims.len())?;
    let ind = indices.as_i64().ok_or("Gather indices must be integers")?;
    let n_ax = a.dims[ax];
    let outer: usize = a.dims[..ax].iter().product();
    let inner: usize = a.dims[ax + 1..].iter().product();
    let mut idx = Vec::new();
    for o in 0..outer {
        for &i in ind {
            let i = if i < 0 { i + n_ax as i64 } else { i };
            if !(0..n_ax as i64).contains(&i) {
                return Err(format!(
                    "Gather index {i} is out of range for axis size {n_ax}"
                ));
            }
            for k in 0..inner {
                idx.push((o * n_ax + i as usize) * inner + k);
            }
        }
    }
    let mut dims = a.dims[..ax].to_vec();
    dims.extend_from_slice(&indices.dims);
    dims.extend_from_slice(&a.dims[ax + 1..]);
    Ok(Tensor {
        dims,
        data: gather_flat(&a.data, &idx),
    })
}

/// `Concat` of constant tensors along `ax`.
pub fn concat(parts: &[&Tensor], ax: i64) -> R<Tensor> {
    let first = parts.first().ok_or("Concat of nothing")?;
    let r = first.dims.len();
    let ax = axis(ax, r)?;
    for p in parts {
        if p.dims.len() != r
            || p.dims[..ax] != first.dims[..ax]
            || p.dims[ax + 1..] != first.dims[ax + 1..]
            || std::mem::discriminant(&p.data) != std::mem::discriminant(&first.data)
        {
            return Err("Concat operands differ in rank, type or non-axis dimensions".into());
        }
    }
    let outer: usize = first.dims[..ax].iter().product();
    let mut dims = first.dims.clone();
    dims[ax] = parts.iter().map(|p| p.dims[ax]).sum();
    checked_numel(&dims).ok_or("Concat result is too large")?;
    // Output row o is row o of every part in turn (`parts` share the dims before `ax`).
    fn interleave<T: Copy>(slices: &[(&[T], usize)], outer: usize) -> Vec<T> {
        let mut out = Vec::new();
        for o in 0..outer {
            for &(v, c) in slices {
                out.extend_from_slice(&v[o * c..(o + 1) * c]);
            }
        }
        out
    }
    let chunk = |p: &Tensor| p.dims[ax..].iter().product::<usize>();
    let data = match &first.data {
        Data::F32(_) => {
            let slices: Vec<(&[f32], usize)> = parts
                .iter()
                .map(|p| match &p.data {
                    Data::F32(v) => (v.as_slice(), chunk(p)),
                    Data::I64(_) => unreachable!(),
                })
                .collect();
            Data::F32(interleave(&slices, outer))
        }
        Data::I64(_) => {
            let slices: Vec<(&[i64], usize)> = parts
                .iter()
                .map(|p| match &p.data {
                    Data::I64(v) => (v.as_slice(), chunk(p)),
                    Data::F32(_) => unreachable!(),
                })
                .collect();
            Data::I64(interleave(&slices, outer))
        }
    };
    Ok(Tensor { dims, data })
}

/// `Slice` (opset 10+): `starts`, `ends`, optional `axes` and `steps`, clamped as ONNX specifies.
pub fn slice(
    a: &Tensor,
    starts: &[i64],
    ends: &[i64],
    axes: Option<&[i64]>,
    steps: Option<&[i64]>,
) -> R<Tensor> {
    let r = a.dims.len();
    if starts.len() != ends.len() {
        return Err("Slice starts and ends differ in length".into());
    }
    let axes: Vec<usize> = match axes {
        Some(x) => x.iter().map(|&v| axis(v, r)).collect::<R<_>>()?,
        None => (0..starts.len()).collect(),
    };
    let mut ranges: Vec<(i64, i64, i64)> = a.dims.iter().map(|&d| (0, d as i64, 1)).collect();
    for (k, &ax) in axes.iter().enumerate() {
        let d = a.dims[ax] as i64;
        let step = steps.map_or(1, |s| s.get(k).copied().unwrap_or(1));
        if step == 0 {
            return Err("Slice step 0".into());
        }
        let fix = |v: i64, lo: i64, hi: i64| {
            let v = if v < 0 { v.saturating_add(d) } else { v };
            v.clamp(lo, hi)
        };
        let (s, e) = if step > 0 {
            (fix(starts[k], 0, d), fix(ends[k], 0, d))
        } else {
            (fix(starts[k], 0, d - 1), fix(ends[k], -1, d - 1))
        };
        ranges[ax] = (s, e, step);
    }
    let per_axis: Vec<Vec<usize>> = ranges
        .iter()
        .map(|&(s, e, st)| {
            let mut v = vec![];
            let mut i = s;
            while (st > 0 && i < e) || (st < 0 && i > e) {
                v.push(i as usize);
                i += st;
            }
            v
        })
        .collect();
    let dims: Vec<usize> = per_axis.iter().map(|v| v.len()).collect();
    let s = strides(&a.dims);
    let n: usize = dims.iter().product();
    let mut idx = Vec::with_capacity(n);
    let mut pos = vec![0usize; r];
    for _ in 0..n {
        idx.push((0..r).map(|i| per_axis[i][pos[i]] * s[i]).sum());
        for i in (0..r).rev() {
            pos[i] += 1;
            if pos[i] < dims[i] {
                break;
            }
            pos[i] = 0;
        }
    }
    Ok(Tensor {
        dims,
        data: gather_flat(&a.data, &idx),
    })
}

/// `Reshape` of a constant with ONNX semantics (0 copies the dimension unless `allowzero`, -1 is inferred).
pub fn reshape_dims(from: &[usize], target: &[i64], allowzero: bool) -> R<Vec<usize>> {
    let n: usize = from.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            BATCH => return Err("reshape of a constant by the batch size".into()),
            -1 if infer.is_none() => {
                infer = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*from.get(i).ok_or("Reshape 0 beyond the input rank")?),
            t if t >= 0 => out.push(t as usize),
            _ => return Err(format!("Reshape target {target:?} is invalid")),
        }
    }
    let known = checked_numel(&out).ok_or("Reshape target is too large")?;
    if let Some(i) = infer {
        if known == 0 || !n.is_multiple_of(known) {
            return Err(format!("cannot reshape {from:?} to {target:?}"));
        }
        out[i] = n / known;
    } else if known != n {
        return Err(format!(
            "cannot reshape {from:?} ({n} elements) to {target:?}"
        ));
    }
    Ok(out)
}

/// `Cast` to ONNX data type `to`: float types → f32, integer and bool types → i64 (floats truncate).
pub fn cast(a: &Tensor, to: i64) -> R<Tensor> {
    use super::proto::tensor_proto::DataType as T;
    let t = T::try_from(to as i32).map_err(|_| format!("Cast to unknown type {to}"))?;
    let float = matches!(t, T::Float | T::Double | T::Float16 | T::Bfloat16);
    let int = matches!(
        t,
        T::Int64
            | T::Int32
            | T::Int16
            | T::Int8
            | T::Uint8
            | T::Uint16
            | T::Uint32
            | T::Uint64
            | T::Bool
    );
    let data = match (&a.data, float, int) {
        (Data::F32(v), true, _) => Data::F32(v.clone()),
        (Data::I64(v), true, _) => Data::F32(v.iter().map(|&x| x as f32).collect()),
        (Data::F32(v), _, true) if t == T::Bool => {
            Data::I64(v.iter().map(|&x| (x != 0.0) as i64).collect())
        }
        (Data::F32(v), _, true) => Data::I64(v.iter().map(|&x| x as i64).collect()),
        (Data::I64(v), _, true) if t == T::Bool => {
            Data::I64(v.iter().map(|&x| (x != 0) as i64).collect())
        }
        (Data::I64(v), _, true) => Data::I64(v.clone()),
        _ => return Err(format!("Cast to {} is not supported", t.as_str_name())),
    };
    Ok(Tensor {
        dims: a.dims.clone(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(dims: &[usize], v: &[f32]) -> Tensor {
        Tensor::f32(dims.to_vec(), v.to_vec())
    }

    #[test]
    fn broadcasting_binary_ops() {
        let a = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let b = f(&[3], &[10., 20., 30.]);
        assert_eq!(
            binary("Add", &a, &b).unwrap().as_f32(),
            vec![11., 22., 33., 14., 25., 36.]
        );
        let c = f(&[2, 1], &[2., 3.]);
        assert_eq!(
            binary("Mul", &a, &c).unwrap().as_f32(),
            vec![2., 4., 6., 12., 15., 18.]
        );
        assert!(binary("Add", &a, &f(&[2], &[1., 2.])).is_err());
        let i = Tensor::i64(vec![2], vec![BATCH, 4]);
        assert!(binary("Mul", &i, &Tensor::i64(vec![], vec![2]))
            .unwrap_err()
            .contains("batch"));
    }

    #[test]
    fn transpose_gather_slice_concat() {
        let a = f(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
        let t = transpose(&a, None).unwrap();
        assert_eq!(
            (t.dims.clone(), t.as_f32()),
            (vec![3, 2], vec![1., 4., 2., 5., 3., 6.])
        );
        let s = Tensor::i64(vec![4], vec![BATCH, 8, 5, 5]);
        let g = gather(&s, &Tensor::i64(vec![], vec![0]), 0).unwrap();
        assert_eq!(
            (g.dims.clone(), g.as_i64().unwrap().to_vec()),
            (vec![], vec![BATCH])
        );
        let g = gather(&a, &Tensor::i64(vec![2], vec![-1, 0]), 1).unwrap();
        assert_eq!(g.as_f32(), vec![3., 1., 6., 4.]);
        let sl = slice(&s, &[1], &[i64::MAX], None, None).unwrap();
        assert_eq!(sl.as_i64().unwrap(), &[8, 5, 5]);
        let sl = slice(&a, &[-1], &[-4], Some(&[1]), Some(&[-1])).unwrap();
        assert_eq!(sl.as_f32(), vec![3., 2., 1., 6., 5., 4.]);
        let c = concat(
            &[
                &Tensor::i64(vec![1], vec![BATCH]),
                &Tensor::i64(vec![1], vec![-1]),
            ],
            0,
        )
        .unwrap();
        assert_eq!(c.as_i64().unwrap(), &[BATCH, -1]);
        assert_eq!(
            reshape_dims(&[2, 3, 4], &[0, -1], false).unwrap(),
            vec![2, 12]
        );
        assert!(reshape_dims(&[2, 3], &[4, -1], false).is_err());
    }
}
