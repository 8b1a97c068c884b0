//! Kernels behind the `math.*` ops: numpy broadcasting over `ndarray`, dtype-dispatch macros,
//! the scalar rules that ONNX defines differently for integers and floats, and `Cast`.
//!
//! ## How an elementwise op is written
//! An op's scalar rule is one Rust expression. The dispatch macros (`map_same!`,
//! `zip_same!`, `map_pred!`, `zip_pred!`) match the input tensor variant(s) and expand that
//! expression once per element type, inside a closure the broadcasting kernels
//! ([`zip2`], [`try_zip2`], [`zip3`]) call per element. So the expression is type-checked (and
//! inlined) for every element type it is instantiated with:
//! - float arms bind `F`, the *compute* type: `f32` for `f32`, `f16` and `bf16`; `f64` for `f64`.
//!   Half-precision values are widened to `f32`, computed, and rounded back (nearest-even) once
//!   per op, which is how the ONNX reference and onnxruntime evaluate them;
//! - integer arms compute in the element type itself and return `OpResult<T>`, so that a
//!   division by zero becomes an error instead of a panic or a made-up value. Integer overflow
//!   wraps (two's complement), as in numpy.
//!
//! 4-bit integer tensors (`I4`/`U4`) take part only in `Cast` and `Where`: ONNX defines no
//! arithmetic on them.

use crate::ops::util::broadcast_shapes;
use crate::ops::OpResult;
use crate::tensor::Tensor;
use crate::types::ScalarType;
use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn, Zip};
use std::cell::RefCell;

// ---------------------------------------------------------------------------------------------
// Broadcasting kernels

fn broadcast_err(shapes: &[&[usize]]) -> String {
    format!("cannot broadcast shapes {shapes:?}")
}

/// Applies `f` to the numpy-broadcast elements of `a` and `b`.
pub fn zip2<A: Copy, B: Copy, O>(a: &ArrayD<A>, b: &ArrayD<B>, f: impl Fn(A, B) -> O) -> OpResult<ArrayD<O>> {
    let shapes = [a.shape(), b.shape()];
    let shape = IxDyn(&broadcast_shapes(&shapes)?);
    let av = a.broadcast(shape.clone()).ok_or_else(|| broadcast_err(&shapes))?;
    let bv = b.broadcast(shape).ok_or_else(|| broadcast_err(&shapes))?;
    Ok(Zip::from(av).and(bv).map_collect(|&x, &y| f(x, y)))
}

/// Like [`zip2`] for a fallible scalar rule; the first error is returned.
pub fn try_zip2<A: Copy, B: Copy, O: Default>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    f: impl Fn(A, B) -> OpResult<O>,
) -> OpResult<ArrayD<O>> {
    // `Zip` has no early exit; remember the first error and fill the rest with defaults.
    let first_err = RefCell::new(None);
    let out = zip2(a, b, |x, y| match f(x, y) {
        Ok(v) => v,
        Err(e) => {
            first_err.borrow_mut().get_or_insert(e);
            O::default()
        }
    })?;
    match first_err.into_inner() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Applies a fallible `f` to every element; the first error is returned.
pub fn try_map<A: Copy, O: Default>(a: &ArrayD<A>, f: impl Fn(A) -> OpResult<O>) -> OpResult<ArrayD<O>> {
    let mut first_err = None;
    let out = a.mapv(|x| match f(x) {
        Ok(v) => v,
        Err(e) => {
            first_err.get_or_insert(e);
            O::default()
        }
    });
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Applies `f` to the numpy-broadcast elements of three arrays.
pub fn zip3<A: Copy, B: Copy, C: Copy, O>(
    a: &ArrayD<A>,
    b: &ArrayD<B>,
    c: &ArrayD<C>,
    f: impl Fn(A, B, C) -> O,
) -> OpResult<ArrayD<O>> {
    let shapes = [a.shape(), b.shape(), c.shape()];
    let shape = IxDyn(&broadcast_shapes(&shapes)?);
    let av = a.broadcast(shape.clone()).ok_or_else(|| broadcast_err(&shapes))?;
    let bv = b.broadcast(shape.clone()).ok_or_else(|| broadcast_err(&shapes))?;
    let cv = c.broadcast(shape).ok_or_else(|| broadcast_err(&shapes))?;
    Ok(Zip::from(av).and(bv).and(cv).map_collect(|&x, &y, &z| f(x, y, z)))
}

// ---------------------------------------------------------------------------------------------
// Element types

/// A floating-point element type and the type its arithmetic is done in.
pub trait FloatElem: Copy {
    type C: Copy;
    fn up(self) -> Self::C;
    fn down(c: Self::C) -> Self;
}

impl FloatElem for f32 {
    type C = f32;
    fn up(self) -> f32 {
        self
    }
    fn down(c: f32) -> f32 {
        c
    }
}

impl FloatElem for f64 {
    type C = f64;
    fn up(self) -> f64 {
        self
    }
    fn down(c: f64) -> f64 {
        c
    }
}

impl FloatElem for f16 {
    type C = f32;
    fn up(self) -> f32 {
        self.to_f32()
    }
    fn down(c: f32) -> f16 {
        f16::from_f32(c)
    }
}

impl FloatElem for bf16 {
    type C = f32;
    fn up(self) -> f32 {
        self.to_f32()
    }
    fn down(c: f32) -> bf16 {
        bf16::from_f32(c)
    }
}

/// The element type held by a [`Tensor`] variant (for the dispatch macros).
macro_rules! elem_ty {
    (F32) => {
        f32
    };
    (F64) => {
        f64
    };
    (F16) => {
        half::f16
    };
    (BF16) => {
        half::bf16
    };
}
pub(crate) use elem_ty;

/// Scalar functions of the compute float types that `std` does not provide, and the ONNX rules
/// for float modulo.
pub trait Real: Copy {
    fn erf(self) -> Self;
    /// `x - floor(x / y) * y` with numpy's special cases: the result has the sign of `y`
    /// (a zero result takes `y`'s sign too), and an infinite `y` with a finite `x` of the
    /// opposite sign gives `y`.
    fn floor_mod(self, y: Self) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            fn erf(self) -> $t {
                $erf(self)
            }
            fn floor_mod(self, y: $t) -> $t {
                // `%` on floats is C's fmod (truncated, exact); shift it into y's sign.
                let r = self % y;
                if r == 0.0 {
                    (0.0 as $t).copysign(y)
                } else if (r < 0.0) != (y < 0.0) {
                    r + y
                } else {
                    r
                }
            }
        }
    };
}
impl_real!(f32, libm::erff);
impl_real!(f64, libm::erf);

/// The ONNX rules for integer element types that need more than an operator: division and
/// modulo (errors on a zero divisor), shifts with out-of-range amounts, integer powers.
pub trait IntElem: Copy + Default + Ord {
    const BITS: u32;
    fn trunc_div(self, y: Self) -> OpResult<Self>;
    /// Remainder with the sign of the divisor (numpy `mod`, ONNX `fmod=0`).
    fn floor_mod(self, y: Self) -> OpResult<Self>;
    /// Remainder with the sign of the dividend (C `%`, ONNX `fmod=1`).
    fn trunc_mod(self, y: Self) -> OpResult<Self>;
    /// ONNX `BitShift`: a shift by a negative amount or by at least the bit width gives what the
    /// sign fill alone gives (0, or -1 for a right shift of a negative value).
    fn shift(self, amount: Self, left: bool) -> Self;
    /// `self` to the power `e`, wrapping; a negative exponent truncates `1 / self^|e|`.
    fn ipow(self, e: i64) -> OpResult<Self>;
    fn is_negative(self) -> bool;
    /// -1, 0 or 1.
    fn sign(self) -> Self;
}

macro_rules! impl_int {
    ($($t:ty),*) => {$(
        impl IntElem for $t {
            const BITS: u32 = <$t>::BITS;
            fn trunc_div(self, y: $t) -> OpResult<$t> {
                if y == 0 {
                    return Err("integer division by zero".into());
                }
                Ok(self.wrapping_div(y))
            }
            fn floor_mod(self, y: $t) -> OpResult<$t> {
                let r = self.trunc_mod(y)?;
                Ok(if r != 0 && r.is_negative() != y.is_negative() { r.wrapping_add(y) } else { r })
            }
            fn trunc_mod(self, y: $t) -> OpResult<$t> {
                if y == 0 {
                    return Err("integer modulo by zero".into());
                }
                Ok(self.wrapping_rem(y))
            }
            fn shift(self, amount: $t, left: bool) -> $t {
                let s = amount as i128;
                if s < 0 || s >= <$t>::BITS as i128 {
                    return if !left && self.is_negative() { -1i128 as $t } else { 0 };
                }
                if left { self.wrapping_shl(s as u32) } else { self >> s as u32 }
            }
            fn ipow(self, e: i64) -> OpResult<$t> {
                if e < 0 {
                    // |self^e| < 1 except for self = ±1; truncation toward zero gives 0.
                    return match self as i128 {
                        0 => Err("zero raised to a negative integer power".into()),
                        1 => Ok(1),
                        -1 => Ok(if e % 2 == 0 { 1 } else { self }),
                        _ => Ok(0),
                    };
                }
                let (mut base, mut e, mut acc): ($t, u64, $t) = (self, e as u64, 1);
                while e > 0 {
                    if e & 1 == 1 {
                        acc = acc.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                Ok(acc)
            }
            fn is_negative(self) -> bool {
                (self as i128) < 0
            }
            fn sign(self) -> $t {
                (self as i128).signum() as $t
            }
        }
    )*};
}
impl_int!(i64, i32, i16, i8, u64, u32, u16, u8);

// ---------------------------------------------------------------------------------------------
// Dispatch macros. Each evaluates to `Tensor` and uses `?`/`return Err` for mismatched or
// unsupported element types, so they are used inside functions returning `OpResult`.

/// The error for a tensor whose element type an op does not accept.
pub fn unsupported(what: &str, t: &Tensor) -> String {
    format!("{what} does not support element type {}", t.scalar_type())
}

/// The error for operands whose element types differ or are not accepted.
pub fn unsupported2(what: &str, a: &Tensor, b: &Tensor) -> String {
    if a.scalar_type() != b.scalar_type() {
        format!("{what}: operand element types differ ({} and {})", a.scalar_type(), b.scalar_type())
    } else {
        unsupported(what, a)
    }
}

/// `map_same!(t, what, [float variants], |x| float_expr, [int variants], |x| int_expr)`: maps
/// each element; the result has `t`'s element type. The float expression sees `x: F`
/// (compute type); the integer expression gives `OpResult<T>`.
macro_rules! map_same {
    ($t:expr, $what:expr, [$($FV:ident)*], |$fx:ident| $fb:expr, [$($IV:ident)*], |$ix:ident| $ib:expr) => {{
        #[allow(unused_imports)]
        use $crate::ops::elementwise_kernels::FloatElem as _;
        match $t {
            $( $crate::tensor::Tensor::$FV(a) => {
                type E = $crate::ops::elementwise_kernels::elem_ty!($FV);
                #[allow(dead_code)]
                type F = <E as $crate::ops::elementwise_kernels::FloatElem>::C;
                $crate::tensor::Tensor::$FV(a.mapv(|v| { let $fx: F = v.up(); E::down($fb) }))
            } )*
            $( $crate::tensor::Tensor::$IV(a) => {
                $crate::tensor::Tensor::$IV($crate::ops::elementwise_kernels::try_map(a, |$ix| $ib)?)
            } )*
            #[allow(unreachable_patterns)]
            t => return Err($crate::ops::elementwise_kernels::unsupported($what, t)),
        }
    }};
}
pub(crate) use map_same;

/// `zip_same!(a, b, what, [float variants], |x, y| float_expr, [int variants], |x, y| int_expr)`:
/// broadcasts two tensors of the same element type; the result has that element type.
macro_rules! zip_same {
    ($a:expr, $b:expr, $what:expr, [$($FV:ident)*], |$fx:ident, $fy:ident| $fb:expr,
     [$($IV:ident)*], |$ix:ident, $iy:ident| $ib:expr) => {{
        #[allow(unused_imports)]
        use $crate::ops::elementwise_kernels::FloatElem as _;
        match ($a, $b) {
            $( ($crate::tensor::Tensor::$FV(a), $crate::tensor::Tensor::$FV(b)) => {
                type E = $crate::ops::elementwise_kernels::elem_ty!($FV);
                #[allow(dead_code)]
                type F = <E as $crate::ops::elementwise_kernels::FloatElem>::C;
                $crate::tensor::Tensor::$FV($crate::ops::elementwise_kernels::zip2(a, b, |p, q| {
                    let ($fx, $fy): (F, F) = (p.up(), q.up());
                    E::down($fb)
                })?)
            } )*
            $( ($crate::tensor::Tensor::$IV(a), $crate::tensor::Tensor::$IV(b)) => {
                $crate::tensor::Tensor::$IV($crate::ops::elementwise_kernels::try_zip2(a, b, |$ix, $iy| $ib)?)
            } )*
            #[allow(unreachable_patterns)]
            (a, b) => return Err($crate::ops::elementwise_kernels::unsupported2($what, a, b)),
        }
    }};
}
pub(crate) use zip_same;

/// `map_pred!(t, what, |x| bool_expr)`: a predicate of float elements (`x: F`); bool result.
macro_rules! map_pred {
    ($t:expr, $what:expr, |$x:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use $crate::ops::elementwise_kernels::FloatElem as _;
        match $t {
            $crate::tensor::Tensor::F32(a) => $crate::tensor::Tensor::Bool(a.mapv(|v| {
                let $x: f32 = v.up();
                $body
            })),
            $crate::tensor::Tensor::F64(a) => $crate::tensor::Tensor::Bool(a.mapv(|v| {
                let $x: f64 = v.up();
                $body
            })),
            $crate::tensor::Tensor::F16(a) => $crate::tensor::Tensor::Bool(a.mapv(|v| {
                let $x: f32 = v.up();
                $body
            })),
            $crate::tensor::Tensor::BF16(a) => $crate::tensor::Tensor::Bool(a.mapv(|v| {
                let $x: f32 = v.up();
                $body
            })),
            t => return Err($crate::ops::elementwise_kernels::unsupported($what, t)),
        }
    }};
}
pub(crate) use map_pred;

/// `zip_pred!(a, b, what, |x, y| bool_expr)`: a relation between broadcast elements of the same
/// type (any type; compared as stored, which is exact for every type); bool result.
macro_rules! zip_pred {
    ($a:expr, $b:expr, $what:expr, |$x:ident, $y:ident| $body:expr) => {
        $crate::ops::elementwise_kernels::zip_pred!(@arms $a, $b, $what, |$x, $y| $body,
            [F32 F64 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 I4 U4 Bool])
    };
    (@arms $a:expr, $b:expr, $what:expr, |$x:ident, $y:ident| $body:expr, [$($V:ident)*]) => {
        match ($a, $b) {
            $( ($crate::tensor::Tensor::$V(a), $crate::tensor::Tensor::$V(b)) => $crate::tensor::Tensor::Bool(
                $crate::ops::elementwise_kernels::zip2(a, b, |$x, $y| $body)?,
            ), )*
            (a, b) => return Err($crate::ops::elementwise_kernels::unsupported2($what, a, b)),
        }
    };
}
pub(crate) use zip_pred;

/// `Where`: picks from `a` where `cond` is true, else from `b` (broadcast; any element type).
pub fn select(cond: &Tensor, a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    let Tensor::Bool(c) = cond else {
        return Err(format!("condition must be bool, found {}", cond.scalar_type()));
    };
    macro_rules! arms {
        ($($V:ident)*) => {
            match (a, b) {
                $( (Tensor::$V(x), Tensor::$V(y)) => Tensor::$V(zip3(c, x, y, |k, p, q| if k { p } else { q })?), )*
                (x, y) => return Err(unsupported2("math.where", x, y)),
            }
        };
    }
    Ok(arms!(F32 F64 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8 I4 U4 Bool))
}

// ---------------------------------------------------------------------------------------------
// Cast

/// f64 → f32 rounding to odd: truncate toward zero and set the last bit when inexact. Rounding
/// that result to a type with at least two fewer significand bits (f16, bf16) gives the
/// correctly rounded value of the f64, which rounding f64 → f32 → f16 to nearest twice does not.
fn f64_to_f32_round_odd(x: f64) -> f32 {
    let r = x as f32;
    if x.is_nan() || r as f64 == x {
        return r;
    }
    let mut bits = r.to_bits();
    if (r as f64).abs() > x.abs() {
        // Rounded away from zero (possibly to infinity): step back one unit toward zero.
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

/// A cast destination: built from a float (already exact in f64) or an integer (exact in i128).
pub trait CastDst: Sized {
    fn from_f64(v: f64) -> Self;
    fn from_int(v: i128) -> Self;
}

/// A cast source.
pub trait CastSrc: Copy {
    fn cast<D: CastDst>(self) -> D;
}

impl CastDst for f32 {
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn from_int(v: i128) -> f32 {
        // Rounds the exact integer once (going through f64 could round twice).
        v as f32
    }
}

impl CastDst for f64 {
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn from_int(v: i128) -> f64 {
        v as f64
    }
}

impl CastDst for f16 {
    fn from_f64(v: f64) -> f16 {
        // `half`'s own f64 conversion drops low mantissa bits before rounding.
        f16::from_f32(f64_to_f32_round_odd(v))
    }
    fn from_int(v: i128) -> f16 {
        Self::from_f64(v as f64)
    }
}

impl CastDst for bf16 {
    fn from_f64(v: f64) -> bf16 {
        bf16::from_f32(f64_to_f32_round_odd(v))
    }
    fn from_int(v: i128) -> bf16 {
        Self::from_f64(v as f64)
    }
}

impl CastDst for bool {
    fn from_f64(v: f64) -> bool {
        // ±0 is false; everything else, NaN included, is true.
        v != 0.0
    }
    fn from_int(v: i128) -> bool {
        v != 0
    }
}

macro_rules! impl_cast_int {
    ($($t:ty),*) => {$(
        impl CastDst for $t {
            fn from_f64(v: f64) -> $t {
                // Truncate toward zero, then keep the low bits (what numpy does on common
                // hardware for in-range values; ONNX leaves out-of-range values undefined).
                v as i128 as $t
            }
            fn from_int(v: i128) -> $t {
                // Out-of-range integers keep their low bits (two's complement), per ONNX.
                v as $t
            }
        }
        impl CastSrc for $t {
            fn cast<D: CastDst>(self) -> D {
                D::from_int(self as i128)
            }
        }
    )*};
}
impl_cast_int!(i64, i32, i16, i8, u64, u32, u16, u8);

impl CastSrc for bool {
    fn cast<D: CastDst>(self) -> D {
        D::from_int(self as i128)
    }
}

macro_rules! impl_cast_float {
    ($($t:ty => $to64:expr),*) => {$(
        impl CastSrc for $t {
            fn cast<D: CastDst>(self) -> D {
                D::from_f64($to64(self))
            }
        }
    )*};
}
impl_cast_float!(f32 => f64::from, f64 => f64::from, f16 => f16::to_f64, bf16 => bf16::to_f64);

/// Sign-extends the low 4 bits.
fn wrap_i4(v: i8) -> i8 {
    (v << 4) >> 4
}

/// Converts every element to `to` with the ONNX `Cast` rules: floats round to nearest even
/// (±inf when out of range), floats to integers truncate toward zero, integers out of range
/// keep their low bits, anything to bool is "non-zero", bool is 0/1.
pub fn cast(t: &Tensor, to: ScalarType) -> Tensor {
    if t.scalar_type() == to {
        return t.clone();
    }
    fn go<S: CastSrc>(a: &ArrayD<S>, to: ScalarType) -> Tensor {
        match to {
            ScalarType::F32 => Tensor::F32(a.mapv(S::cast)),
            ScalarType::F16 => Tensor::F16(a.mapv(S::cast)),
            ScalarType::BF16 => Tensor::BF16(a.mapv(S::cast)),
            ScalarType::F64 => Tensor::F64(a.mapv(S::cast)),
            ScalarType::I64 => Tensor::I64(a.mapv(S::cast)),
            ScalarType::I32 => Tensor::I32(a.mapv(S::cast)),
            ScalarType::I16 => Tensor::I16(a.mapv(S::cast)),
            ScalarType::I8 => Tensor::I8(a.mapv(S::cast)),
            ScalarType::U64 => Tensor::U64(a.mapv(S::cast)),
            ScalarType::U32 => Tensor::U32(a.mapv(S::cast)),
            ScalarType::U16 => Tensor::U16(a.mapv(S::cast)),
            ScalarType::U8 => Tensor::U8(a.mapv(S::cast)),
            ScalarType::I4 => Tensor::I4(a.mapv(|v| wrap_i4(v.cast()))),
            ScalarType::U4 => Tensor::U4(a.mapv(|v| v.cast::<u8>() & 0xf)),
            ScalarType::Bool => Tensor::Bool(a.mapv(S::cast)),
        }
    }
    // 4-bit values are stored sign- or zero-extended, so they convert like their storage type.
    crate::for_each_tensor!(t, a => go(a, to))
}
