//! The integer code types that live in weight memory (`u8`, `i8`, `i16`, `i32`) and a common view of their bits.

/// An integer storage word holding one quantized code. Bits are numbered LSB-first (bit 0 = least significant);
/// `to_bits` gives the raw two's-complement/offset-binary bit pattern zero-extended to `u32`.
pub trait Code: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    /// Width of the storage word in bits (8, 16 or 32).
    const BITS: u32;
    /// Name of the element type as NumPy/safetensors spell it (`u8`, `i8`, `i16`, `i32`).
    const NAME: &'static str;
    /// The raw bit pattern, zero-extended.
    fn to_bits(self) -> u32;
    /// The word whose low `BITS` bits are `bits` (higher bits are ignored).
    fn from_bits(bits: u32) -> Self;
    /// The integer value (sign-extended for signed types).
    fn to_i64(self) -> i64;
    /// `v` converted to this type; `v` must already lie in the type's range (callers clamp first).
    fn from_i64_unchecked(v: i64) -> Self;
}

macro_rules! impl_code {
    ($t:ty, $u:ty, $bits:expr, $name:expr) => {
        impl Code for $t {
            const BITS: u32 = $bits;
            const NAME: &'static str = $name;
            #[inline(always)]
            fn to_bits(self) -> u32 {
                self as $u as u32
            }
            #[inline(always)]
            fn from_bits(bits: u32) -> Self {
                bits as $u as $t
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn from_i64_unchecked(v: i64) -> Self {
                v as $t
            }
        }
    };
}

impl_code!(u8, u8, 8, "u8");
impl_code!(i8, u8, 8, "i8");
impl_code!(i16, u16, 16, "i16");
impl_code!(i32, u32, 32, "i32");

/// Mask of the low `bits` bits (`bits` in 0..=32).
#[inline(always)]
pub fn low_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_round_trip() {
        assert_eq!((-1i8).to_bits(), 0xff);
        assert_eq!(i8::from_bits(0x80), -128);
        assert_eq!((-2i16).to_bits(), 0xfffe);
        assert_eq!(i32::from_bits(0xffff_ffff), -1);
        assert_eq!(200u8.to_bits(), 200);
        assert_eq!(low_mask(4), 0xf);
        assert_eq!(low_mask(32), u32::MAX);
    }
}
