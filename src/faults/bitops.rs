//! Bit operations on integer codes (`u8`, `i8`, `i16`, `i32`), on slices and on ndarray arrays.
//!
//! Bits are numbered LSB-first (bit 0 = least significant) in the word's raw two's-complement / offset-binary
//! pattern. Masks are given as `u32` and are truncated to the word width.

use ndarray::{Array, ArrayBase, Axis, Data, DataMut, Dimension, RemoveAxis, Zip};

use super::{Code, FaultError};

/// `x ^= mask` for every element.
pub fn flip_mask<C: Code>(xs: &mut [C], mask: u32) {
    for x in xs {
        *x = C::from_bits(x.to_bits() ^ mask);
    }
}

/// `x &= !mask` for every element (the masked bits read 0).
pub fn set_bits0<C: Code>(xs: &mut [C], mask: u32) {
    for x in xs {
        *x = C::from_bits(x.to_bits() & !mask);
    }
}

/// `x |= mask` for every element (the masked bits read 1).
pub fn set_bits1<C: Code>(xs: &mut [C], mask: u32) {
    for x in xs {
        *x = C::from_bits(x.to_bits() | mask);
    }
}

/// `dst[i] ^= src[i]` (apply a per-element flip mask, or undo one).
pub fn xor_into<C: Code>(dst: &mut [C], src: &[C]) -> Result<(), FaultError> {
    if dst.len() != src.len() {
        return Err(FaultError::LengthMismatch {
            left: dst.len(),
            right: src.len(),
        });
    }
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = C::from_bits(d.to_bits() ^ s.to_bits());
    }
    Ok(())
}

/// Total number of differing bits between `a` and `b`.
pub fn hamming_distance<C: Code>(a: &[C], b: &[C]) -> Result<u64, FaultError> {
    if a.len() != b.len() {
        return Err(FaultError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    Ok(a.iter()
        .zip(b)
        .map(|(&x, &y)| (x.to_bits() ^ y.to_bits()).count_ones() as u64)
        .sum())
}

/// Number of differing bits of each element pair.
pub fn hamming_per_element<C: Code>(a: &[C], b: &[C]) -> Result<Vec<u32>, FaultError> {
    if a.len() != b.len() {
        return Err(FaultError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    Ok(a.iter()
        .zip(b)
        .map(|(&x, &y)| (x.to_bits() ^ y.to_bits()).count_ones())
        .collect())
}

fn check_width<C: Code>(bits: u32) -> Result<(), FaultError> {
    if bits == 0 || bits > C::BITS {
        return Err(FaultError::InvalidBits {
            bits,
            ty: C::NAME,
            max: C::BITS,
        });
    }
    Ok(())
}

/// Unpacks the low `bits` bits of each element, LSB first: output `[x0.b0, x0.b1, …, x1.b0, …]`, each 0 or 1.
pub fn unpack_bits<C: Code>(xs: &[C], bits: u32) -> Result<Vec<u8>, FaultError> {
    check_width::<C>(bits)?;
    let mut out = Vec::with_capacity(xs.len() * bits as usize);
    for &x in xs {
        let v = x.to_bits();
        out.extend((0..bits).map(|b| ((v >> b) & 1) as u8));
    }
    Ok(out)
}

/// Packs LSB-first bits (each 0 or 1) into elements of `bits` stored bits (the higher bits are 0).
pub fn pack_bits<C: Code>(bit_values: &[u8], bits: u32) -> Result<Vec<C>, FaultError> {
    check_width::<C>(bits)?;
    if !bit_values.len().is_multiple_of(bits as usize) {
        return Err(FaultError::LengthMismatch {
            left: bit_values.len(),
            right: bit_values.len() / bits as usize * bits as usize,
        });
    }
    Ok(bit_values
        .chunks_exact(bits as usize)
        .map(|ch| {
            C::from_bits(
                ch.iter()
                    .enumerate()
                    .fold(0u32, |acc, (b, &v)| acc | (((v & 1) as u32) << b)),
            )
        })
        .collect())
}

/// [`flip_mask`] on an array of any shape and layout.
pub fn flip_mask_array<C: Code, S: DataMut<Elem = C>, D: Dimension>(
    a: &mut ArrayBase<S, D>,
    mask: u32,
) {
    a.map_inplace(|x| *x = C::from_bits(x.to_bits() ^ mask));
}

/// [`set_bits0`] on an array.
pub fn set_bits0_array<C: Code, S: DataMut<Elem = C>, D: Dimension>(
    a: &mut ArrayBase<S, D>,
    mask: u32,
) {
    a.map_inplace(|x| *x = C::from_bits(x.to_bits() & !mask));
}

/// [`set_bits1`] on an array.
pub fn set_bits1_array<C: Code, S: DataMut<Elem = C>, D: Dimension>(
    a: &mut ArrayBase<S, D>,
    mask: u32,
) {
    a.map_inplace(|x| *x = C::from_bits(x.to_bits() | mask));
}

/// [`xor_into`] on arrays of the same shape.
pub fn xor_into_array<C: Code, S1: DataMut<Elem = C>, S2: Data<Elem = C>, D: Dimension>(
    dst: &mut ArrayBase<S1, D>,
    src: &ArrayBase<S2, D>,
) -> Result<(), FaultError> {
    if dst.shape() != src.shape() {
        return Err(FaultError::LengthMismatch {
            left: dst.len(),
            right: src.len(),
        });
    }
    Zip::from(dst)
        .and(src)
        .for_each(|d, &s| *d = C::from_bits(d.to_bits() ^ s.to_bits()));
    Ok(())
}

/// Per-element Hamming distance of two arrays of the same shape.
pub fn hamming_array<C: Code, S1: Data<Elem = C>, S2: Data<Elem = C>, D: Dimension>(
    a: &ArrayBase<S1, D>,
    b: &ArrayBase<S2, D>,
) -> Result<Array<u32, D>, FaultError> {
    if a.shape() != b.shape() {
        return Err(FaultError::LengthMismatch {
            left: a.len(),
            right: b.len(),
        });
    }
    Ok(Zip::from(a)
        .and(b)
        .map_collect(|&x, &y| (x.to_bits() ^ y.to_bits()).count_ones()))
}

/// Unpacks an array into bits along a new last axis of length `bits` (LSB first).
pub fn unpack_bits_array<C: Code, S: Data<Elem = C>, D: Dimension>(
    a: &ArrayBase<S, D>,
    bits: u32,
) -> Result<Array<u8, D::Larger>, FaultError> {
    check_width::<C>(bits)?;
    let flat: Vec<C> = a.iter().copied().collect();
    let data = unpack_bits(&flat, bits)?;
    let mut shape: Vec<usize> = a.shape().to_vec();
    shape.push(bits as usize);
    let arr = Array::from_shape_vec(shape, data).map_err(|_| FaultError::LengthMismatch {
        left: a.len(),
        right: a.len(),
    })?;
    arr.into_dimensionality::<D::Larger>()
        .map_err(|_| FaultError::LengthMismatch {
            left: a.len(),
            right: a.len(),
        })
}

/// Packs an array of bits whose last axis holds the `bits` bits of one element (LSB first).
pub fn pack_bits_array<C: Code, S: Data<Elem = u8>, D: Dimension + RemoveAxis>(
    a: &ArrayBase<S, D>,
    bits: u32,
) -> Result<Array<C, D::Smaller>, FaultError> {
    check_width::<C>(bits)?;
    let last = a
        .ndim()
        .checked_sub(1)
        .ok_or(FaultError::LengthMismatch { left: 0, right: 0 })?;
    if a.shape()[last] != bits as usize {
        return Err(FaultError::LengthMismatch {
            left: a.shape()[last],
            right: bits as usize,
        });
    }
    Ok(a.map_axis(Axis(last), |lane| {
        C::from_bits(
            lane.iter()
                .enumerate()
                .fold(0u32, |acc, (b, &v)| acc | (((v & 1) as u32) << b)),
        )
    }))
}
