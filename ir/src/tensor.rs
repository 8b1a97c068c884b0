//! Tensor values: what the reference interpreter computes with ([`Tensor`], one `ndarray` per
//! element type), and what constants hold in the IR ([`ConstTensor`], raw little-endian bytes that
//! may point into a memory-mapped model file without a copy).

use crate::types::{ScalarType, TensorType};
use bytes::Bytes;
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

/// A tensor value of the reference interpreter. 4-bit types hold one element per byte
/// (unpacked); `bool` is `bool`.
#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F16(ArrayD<f16>),
    BF16(ArrayD<bf16>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    I16(ArrayD<i16>),
    I8(ArrayD<i8>),
    U64(ArrayD<u64>),
    U32(ArrayD<u32>),
    U16(ArrayD<u16>),
    U8(ArrayD<u8>),
    I4(ArrayD<i8>),
    U4(ArrayD<u8>),
    Bool(ArrayD<bool>),
}

/// Applies `$body` to the array inside any [`Tensor`] variant, binding it as `$a`.
/// The body must type-check for every element type.
#[macro_export]
macro_rules! for_each_tensor {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $body,
            $crate::tensor::Tensor::F16($a) => $body,
            $crate::tensor::Tensor::BF16($a) => $body,
            $crate::tensor::Tensor::F64($a) => $body,
            $crate::tensor::Tensor::I64($a) => $body,
            $crate::tensor::Tensor::I32($a) => $body,
            $crate::tensor::Tensor::I16($a) => $body,
            $crate::tensor::Tensor::I8($a) => $body,
            $crate::tensor::Tensor::U64($a) => $body,
            $crate::tensor::Tensor::U32($a) => $body,
            $crate::tensor::Tensor::U16($a) => $body,
            $crate::tensor::Tensor::U8($a) => $body,
            $crate::tensor::Tensor::I4($a) => $body,
            $crate::tensor::Tensor::U4($a) => $body,
            $crate::tensor::Tensor::Bool($a) => $body,
        }
    };
}

/// Like [`for_each_tensor!`] but rebuilds a tensor of the same variant from the body's array.
#[macro_export]
macro_rules! map_tensor {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::tensor::Tensor::F32($a) => $crate::tensor::Tensor::F32($body),
            $crate::tensor::Tensor::F16($a) => $crate::tensor::Tensor::F16($body),
            $crate::tensor::Tensor::BF16($a) => $crate::tensor::Tensor::BF16($body),
            $crate::tensor::Tensor::F64($a) => $crate::tensor::Tensor::F64($body),
            $crate::tensor::Tensor::I64($a) => $crate::tensor::Tensor::I64($body),
            $crate::tensor::Tensor::I32($a) => $crate::tensor::Tensor::I32($body),
            $crate::tensor::Tensor::I16($a) => $crate::tensor::Tensor::I16($body),
            $crate::tensor::Tensor::I8($a) => $crate::tensor::Tensor::I8($body),
            $crate::tensor::Tensor::U64($a) => $crate::tensor::Tensor::U64($body),
            $crate::tensor::Tensor::U32($a) => $crate::tensor::Tensor::U32($body),
            $crate::tensor::Tensor::U16($a) => $crate::tensor::Tensor::U16($body),
            $crate::tensor::Tensor::U8($a) => $crate::tensor::Tensor::U8($body),
            $crate::tensor::Tensor::I4($a) => $crate::tensor::Tensor::I4($body),
            $crate::tensor::Tensor::U4($a) => $crate::tensor::Tensor::U4($body),
            $crate::tensor::Tensor::Bool($a) => $crate::tensor::Tensor::Bool($body),
        }
    };
}

impl Tensor {
    pub fn scalar_type(&self) -> ScalarType {
        match self {
            Tensor::F32(_) => ScalarType::F32,
            Tensor::F16(_) => ScalarType::F16,
            Tensor::BF16(_) => ScalarType::BF16,
            Tensor::F64(_) => ScalarType::F64,
            Tensor::I64(_) => ScalarType::I64,
            Tensor::I32(_) => ScalarType::I32,
            Tensor::I16(_) => ScalarType::I16,
            Tensor::I8(_) => ScalarType::I8,
            Tensor::U64(_) => ScalarType::U64,
            Tensor::U32(_) => ScalarType::U32,
            Tensor::U16(_) => ScalarType::U16,
            Tensor::U8(_) => ScalarType::U8,
            Tensor::I4(_) => ScalarType::I4,
            Tensor::U4(_) => ScalarType::U4,
            Tensor::Bool(_) => ScalarType::Bool,
        }
    }

    pub fn shape(&self) -> &[usize] {
        for_each_tensor!(self, a => a.shape())
    }

    pub fn len(&self) -> usize {
        for_each_tensor!(self, a => a.len())
    }

    /// The same elements (row-major order) with another shape of equal element count.
    pub fn to_shape(&self, shape: &[usize]) -> Result<Tensor, String> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(format!("cannot view {} elements as {:?}", self.len(), shape));
        }
        Ok(map_tensor!(self, a => {
            let v: Vec<_> = a.iter().cloned().collect();
            ArrayD::from_shape_vec(IxDyn(shape), v).expect("element count checked")
        }))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The static tensor type of this value.
    pub fn ty(&self) -> TensorType {
        TensorType::of(self.shape(), self.scalar_type())
    }

    /// A tensor of zeros (false for bool).
    pub fn zeros(ty: ScalarType, shape: &[usize]) -> Tensor {
        let s = IxDyn(shape);
        match ty {
            ScalarType::F32 => Tensor::F32(ArrayD::zeros(s)),
            ScalarType::F16 => Tensor::F16(ArrayD::from_elem(s, f16::ZERO)),
            ScalarType::BF16 => Tensor::BF16(ArrayD::from_elem(s, bf16::ZERO)),
            ScalarType::F64 => Tensor::F64(ArrayD::zeros(s)),
            ScalarType::I64 => Tensor::I64(ArrayD::zeros(s)),
            ScalarType::I32 => Tensor::I32(ArrayD::zeros(s)),
            ScalarType::I16 => Tensor::I16(ArrayD::zeros(s)),
            ScalarType::I8 => Tensor::I8(ArrayD::zeros(s)),
            ScalarType::U64 => Tensor::U64(ArrayD::zeros(s)),
            ScalarType::U32 => Tensor::U32(ArrayD::zeros(s)),
            ScalarType::U16 => Tensor::U16(ArrayD::zeros(s)),
            ScalarType::U8 => Tensor::U8(ArrayD::zeros(s)),
            ScalarType::I4 => Tensor::I4(ArrayD::zeros(s)),
            ScalarType::U4 => Tensor::U4(ArrayD::zeros(s)),
            ScalarType::Bool => Tensor::Bool(ArrayD::from_elem(s, false)),
        }
    }

    /// Every element as f64 (bool as 0/1), in logical row-major order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Tensor::F32(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::F16(a) => a.iter().map(|v| v.to_f64()).collect(),
            Tensor::BF16(a) => a.iter().map(|v| v.to_f64()).collect(),
            Tensor::F64(a) => a.iter().copied().collect(),
            Tensor::I64(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::I32(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::I16(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::I8(a) | Tensor::I4(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U64(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U32(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U16(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::U8(a) | Tensor::U4(a) => a.iter().map(|&v| v as f64).collect(),
            Tensor::Bool(a) => a.iter().map(|&v| v as u8 as f64).collect(),
        }
    }

    /// A tensor of type `ty` from f64 values in row-major order, each converted as a cast would
    /// (saturating for integers; nonzero is true for bool).
    pub fn from_f64(ty: ScalarType, shape: &[usize], values: &[f64]) -> Result<Tensor, String> {
        if shape.iter().product::<usize>() != values.len() {
            return Err(format!("{} values for shape {:?}", values.len(), shape));
        }
        fn arr<T>(shape: &[usize], values: &[f64], f: impl Fn(f64) -> T) -> ArrayD<T> {
            ArrayD::from_shape_vec(IxDyn(shape), values.iter().map(|&v| f(v)).collect())
                .expect("element count checked")
        }
        Ok(match ty {
            ScalarType::F32 => Tensor::F32(arr(shape, values, |v| v as f32)),
            ScalarType::F16 => Tensor::F16(arr(shape, values, f16::from_f64)),
            ScalarType::BF16 => Tensor::BF16(arr(shape, values, bf16::from_f64)),
            ScalarType::F64 => Tensor::F64(arr(shape, values, |v| v)),
            ScalarType::I64 => Tensor::I64(arr(shape, values, |v| v as i64)),
            ScalarType::I32 => Tensor::I32(arr(shape, values, |v| v as i32)),
            ScalarType::I16 => Tensor::I16(arr(shape, values, |v| v as i16)),
            ScalarType::I8 => Tensor::I8(arr(shape, values, |v| v as i8)),
            ScalarType::U64 => Tensor::U64(arr(shape, values, |v| v as u64)),
            ScalarType::U32 => Tensor::U32(arr(shape, values, |v| v as u32)),
            ScalarType::U16 => Tensor::U16(arr(shape, values, |v| v as u16)),
            ScalarType::U8 => Tensor::U8(arr(shape, values, |v| v as u8)),
            ScalarType::I4 => Tensor::I4(arr(shape, values, |v| v.clamp(-8.0, 7.0) as i8)),
            ScalarType::U4 => Tensor::U4(arr(shape, values, |v| v.clamp(0.0, 15.0) as u8)),
            ScalarType::Bool => Tensor::Bool(arr(shape, values, |v| v != 0.0)),
        })
    }

    /// Integer contents (for shape-like operands: axes, shapes, indices). Errors on float/bool.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            Tensor::I64(a) => a.iter().copied().collect(),
            Tensor::I32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::I16(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::I8(a) | Tensor::I4(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U64(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U32(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U16(a) => a.iter().map(|&v| v as i64).collect(),
            Tensor::U8(a) | Tensor::U4(a) => a.iter().map(|&v| v as i64).collect(),
            _ => return None,
        })
    }

    /// Raw little-endian bytes in row-major order (4-bit types packed two per byte, low nibble
    /// first, as ONNX stores them).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        fn le<T: Copy, const N: usize>(a: &ArrayD<T>, f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
            let mut out = Vec::with_capacity(a.len() * N);
            for &v in a.iter() {
                out.extend_from_slice(&f(v));
            }
            out
        }
        match self {
            Tensor::F32(a) => le(a, f32::to_le_bytes),
            Tensor::F16(a) => le(a, f16::to_le_bytes),
            Tensor::BF16(a) => le(a, bf16::to_le_bytes),
            Tensor::F64(a) => le(a, f64::to_le_bytes),
            Tensor::I64(a) => le(a, i64::to_le_bytes),
            Tensor::I32(a) => le(a, i32::to_le_bytes),
            Tensor::I16(a) => le(a, i16::to_le_bytes),
            Tensor::I8(a) => le(a, i8::to_le_bytes),
            Tensor::U64(a) => le(a, u64::to_le_bytes),
            Tensor::U32(a) => le(a, u32::to_le_bytes),
            Tensor::U16(a) => le(a, u16::to_le_bytes),
            Tensor::U8(a) => le(a, u8::to_le_bytes),
            Tensor::Bool(a) => le(a, |b: bool| [b as u8]),
            Tensor::I4(a) => pack_nibbles(a.iter().map(|&v| v as u8)),
            Tensor::U4(a) => pack_nibbles(a.iter().copied()),
        }
    }

    /// Builds a tensor from raw little-endian bytes (the layout of [`Tensor::to_le_bytes`]).
    pub fn from_le_bytes(ty: ScalarType, shape: &[usize], bytes: &[u8]) -> Result<Tensor, String> {
        // The shape comes from a file: check its size rather than let it wrap. ndarray also
        // requires the product of the non-zero dims to fit in isize even when a zero dim makes
        // the tensor empty, so [0, 2^40, 2^40] is rejected here too (found by fuzzing; it
        // panicked in `from_shape_vec`).
        let too_big = || format!("shape {shape:?} of {ty} has too many elements");
        let nonzero = shape
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&p| isize::try_from(p).is_ok())
            .ok_or_else(too_big)?;
        let n = if shape.contains(&0) { 0 } else { nonzero };
        let need = n.checked_mul(ty.bits()).ok_or_else(too_big)?.div_ceil(8);
        if bytes.len() != need {
            return Err(format!("expected {need} bytes for {n} elements of {ty}, found {}", bytes.len()));
        }
        fn arr<T, const N: usize>(shape: &[usize], bytes: &[u8], f: impl Fn([u8; N]) -> T) -> ArrayD<T> {
            let v: Vec<T> = bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunk size"))).collect();
            ArrayD::from_shape_vec(IxDyn(shape), v).expect("length checked")
        }
        let nib = |signed: bool| -> Vec<u8> {
            (0..n)
                .map(|i| {
                    let b = bytes[i / 2];
                    let v = if i % 2 == 0 { b & 0xf } else { b >> 4 };
                    if signed && v & 0x8 != 0 {
                        v | 0xf0
                    } else {
                        v
                    }
                })
                .collect()
        };
        Ok(match ty {
            ScalarType::F32 => Tensor::F32(arr(shape, bytes, f32::from_le_bytes)),
            ScalarType::F16 => Tensor::F16(arr(shape, bytes, f16::from_le_bytes)),
            ScalarType::BF16 => Tensor::BF16(arr(shape, bytes, bf16::from_le_bytes)),
            ScalarType::F64 => Tensor::F64(arr(shape, bytes, f64::from_le_bytes)),
            ScalarType::I64 => Tensor::I64(arr(shape, bytes, i64::from_le_bytes)),
            ScalarType::I32 => Tensor::I32(arr(shape, bytes, i32::from_le_bytes)),
            ScalarType::I16 => Tensor::I16(arr(shape, bytes, i16::from_le_bytes)),
            ScalarType::I8 => Tensor::I8(arr(shape, bytes, i8::from_le_bytes)),
            ScalarType::U64 => Tensor::U64(arr(shape, bytes, u64::from_le_bytes)),
            ScalarType::U32 => Tensor::U32(arr(shape, bytes, u32::from_le_bytes)),
            ScalarType::U16 => Tensor::U16(arr(shape, bytes, u16::from_le_bytes)),
            ScalarType::U8 => Tensor::U8(arr(shape, bytes, u8::from_le_bytes)),
            ScalarType::Bool => Tensor::Bool(arr(shape, bytes, |[b]: [u8; 1]| b != 0)),
            ScalarType::I4 => Tensor::I4(
                ArrayD::from_shape_vec(IxDyn(shape), nib(true).into_iter().map(|v| v as i8).collect())
                    .expect("length checked"),
            ),
            ScalarType::U4 => {
                Tensor::U4(ArrayD::from_shape_vec(IxDyn(shape), nib(false)).expect("length checked"))
            }
        })
    }
}

fn pack_nibbles(vals: impl Iterator<Item = u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, v) in vals.enumerate() {
        if i % 2 == 0 {
            out.push(v & 0xf);
        } else {
            *out.last_mut().expect("pushed above") |= (v & 0xf) << 4;
        }
    }
    out
}

/// A constant tensor in the IR: a static type and its raw little-endian bytes. The bytes are a
/// reference-counted slice, so weights imported from a memory-mapped file are never copied.
#[derive(Clone, Debug)]
pub struct ConstTensor {
    pub ty: TensorType,
    pub bytes: Bytes,
}

impl PartialEq for ConstTensor {
    fn eq(&self, other: &Self) -> bool {
        self.ty == other.ty && self.bytes == other.bytes
    }
}

impl ConstTensor {
    /// The interpreter value of this constant (copies the bytes into an array).
    pub fn to_tensor(&self) -> Result<Tensor, String> {
        let shape = self.ty.static_shape().ok_or("constant with non-static type")?;
        Tensor::from_le_bytes(self.ty.scalar(), &shape, &self.bytes)
    }

    pub fn from_tensor(t: &Tensor) -> ConstTensor {
        ConstTensor { ty: t.ty(), bytes: Bytes::from(t.to_le_bytes()) }
    }

    /// Returns a copy with the element type replaced (same storage bits), e.g. to attach
    /// quantization parameters.
    pub fn with_type(mut self, ty: TensorType) -> ConstTensor {
        self.ty = ty;
        self
    }
}

impl From<Tensor> for ConstTensor {
    fn from(t: Tensor) -> Self {
        ConstTensor::from_tensor(&t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_every_type() {
        for ty in ScalarType::ALL {
            let t = Tensor::zeros(ty, &[3, 1]);
            let b = t.to_le_bytes();
            assert_eq!(Tensor::from_le_bytes(ty, &[3, 1], &b).unwrap(), t, "{ty}");
        }
        let i4 = Tensor::I4(ArrayD::from_shape_vec(IxDyn(&[3]), vec![-8, 7, -1]).unwrap());
        let b = i4.to_le_bytes();
        assert_eq!(b, vec![0x78, 0x0f]);
        assert_eq!(Tensor::from_le_bytes(ScalarType::I4, &[3], &b).unwrap(), i4);
    }
}
