//! `nn.*` matrix multiplication, convolution, einsum, attention, rotary embedding and pooling.
//!
//! This file holds the matrix products (`nn.matmul`, `nn.gemm`) and the numeric machinery the
//! whole family shares; the other ops live in `linalg_einsum.rs`, `linalg_conv.rs`,
//! `linalg_pool.rs` and `linalg_attention.rs` and are re-exported here, so the op table names
//! every op of the family as `linalg::NAME`.
//!
//! ## How the kernels compute
//! Every kernel is generic over [`Scalar`], which has three implementations: `f32`, `f64` and
//! `i64`. A tensor is turned into a [`Work`] value: `f32`/`f64` arrays are borrowed as they
//! are, `f16`/`bf16` are widened to `f32` (ONNX runtimes accumulate narrow floats in f32 too)
//! and rounded once at the end, and every integer type is widened to `i64` with wrapping
//! arithmetic — two's-complement products and sums truncated to the narrow type give the
//! same bits as computing in that type, which is what ONNX integer matmul does.
//! Matrix products of floats go through ndarray's `general_mat_mul` (a blocked, vectorized
//! GEMM that accepts any strides), because the interpreter runs whole models.

use super::util::operand;
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::tensor::Tensor;
use crate::types::{Dim, ElemType, ScalarType, TensorType};
use half::{bf16, f16};
use ndarray::{
    linalg::general_mat_mul, ArrayD, ArrayView2, ArrayViewD, ArrayViewMut2, Axis, CowArray, IxDyn,
};

pub use super::linalg_attention::{ATTENTION, ROTARY_EMBEDDING};
pub use super::linalg_conv::{CONV, CONV_TRANSPOSE};
pub use super::linalg_einsum::EINSUM;
pub use super::linalg_pool::{AVERAGE_POOL, GLOBAL_AVERAGE_POOL, GLOBAL_MAX_POOL, LP_POOL, LRN, MAX_POOL};

// ---------------------------------------------------------------------------------------------
// Numeric machinery shared by the family
// ---------------------------------------------------------------------------------------------

/// An element type the kernels compute in (see the module docs).
pub(crate) trait Scalar: Copy + PartialOrd + Send + Sync + std::fmt::Debug + 'static {
    const ZERO: Self;
    const ONE: Self;
    /// The smallest value (`-inf` for floats): the identity of `max`.
    const LOWEST: Self;
    const IS_FLOAT: bool;
    /// Addition; wrapping for integers.
    fn add(self, o: Self) -> Self;
    fn to_f64(self) -> f64;
    /// Conversion from f64 (saturating for integers).
    fn from_f64(v: f64) -> Self;
    /// `c = alpha * a·b + beta * c`.
    fn gemm(alpha: Self, a: &ArrayView2<Self>, b: &ArrayView2<Self>, beta: Self, c: &mut ArrayViewMut2<Self>);
    /// Builds a tensor of scalar type `ty` from a result computed in this type.
    fn into_tensor(a: ArrayD<Self>, ty: ScalarType) -> OpResult<Tensor>;
}

fn bad_result_type(ty: ScalarType, work: &str) -> String {
    format!("internal: a {work} result cannot become {ty}")
}

impl Scalar for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    const LOWEST: f32 = f32::NEG_INFINITY;
    const IS_FLOAT: bool = true;
    fn add(self, o: f32) -> f32 {
        self + o
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn gemm(alpha: f32, a: &ArrayView2<f32>, b: &ArrayView2<f32>, beta: f32, c: &mut ArrayViewMut2<f32>) {
        general_mat_mul(alpha, a, b, beta, c);
    }
    fn into_tensor(a: ArrayD<f32>, ty: ScalarType) -> OpResult<Tensor> {
        match ty {
            ScalarType::F32 => Ok(Tensor::F32(a)),
            ScalarType::F16 => Ok(Tensor::F16(a.mapv(f16::from_f32))),
            ScalarType::BF16 => Ok(Tensor::BF16(a.mapv(bf16::from_f32))),
            _ => Err(bad_result_type(ty, "f32")),
        }
    }
}

impl Scalar for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    const LOWEST: f64 = f64::NEG_INFINITY;
    const IS_FLOAT: bool = true;
    fn add(self, o: f64) -> f64 {
        self + o
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn gemm(alpha: f64, a: &ArrayView2<f64>, b: &ArrayView2<f64>, beta: f64, c: &mut ArrayViewMut2<f64>) {
        general_mat_mul(alpha, a, b, beta, c);
    }
    fn into_tensor(a: ArrayD<f64>, ty: ScalarType) -> OpResult<Tensor> {
        match ty {
            ScalarType::F64 => Ok(Tensor::F64(a)),
            _ => Err(bad_result_type(ty, "f64")),
        }
    }
}

impl Scalar for i64 {
    const ZERO: i64 = 0;
    const ONE: i64 = 1;
    const LOWEST: i64 = i64::MIN;
    const IS_FLOAT: bool = false;
    fn add(self, o: i64) -> i64 {
        self.wrapping_add(o)
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> i64 {
        v as i64
    }
    fn gemm(alpha: i64, a: &ArrayView2<i64>, b: &ArrayView2<i64>, beta: i64, c: &mut ArrayViewMut2<i64>) {
        // Integer products are rare in models; a plain i-k-j loop over contiguous copies.
        let (m, k) = a.dim();
        let n = b.dim().1;
        let a = a.as_standard_layout();
        let b = b.as_standard_layout();
        let (a, b) = (a.as_slice().expect("standard layout"), b.as_slice().expect("standard layout"));
        let mut row = vec![0i64; n];
        for i in 0..m {
            row.iter_mut().for_each(|v| *v = 0);
            for p in 0..k {
                let av = a[i * k + p];
                if av == 0 {
                    continue;
                }
                for (r, &bv) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                    *r = r.wrapping_add(av.wrapping_mul(bv));
                }
            }
            for (j, r) in row.iter().enumerate() {
                let cv = &mut c[[i, j]];
                *cv = alpha.wrapping_mul(*r).wrapping_add(beta.wrapping_mul(*cv));
            }
        }
    }
    fn into_tensor(a: ArrayD<i64>, ty: ScalarType) -> OpResult<Tensor> {
        // `as` truncates to the low bits: the wrapping result of the narrow type.
        Ok(match ty {
            ScalarType::I64 => Tensor::I64(a),
            ScalarType::I32 => Tensor::I32(a.mapv(|v| v as i32)),
            ScalarType::I16 => Tensor::I16(a.mapv(|v| v as i16)),
            ScalarType::I8 => Tensor::I8(a.mapv(|v| v as i8)),
            ScalarType::U64 => Tensor::U64(a.mapv(|v| v as u64)),
            ScalarType::U32 => Tensor::U32(a.mapv(|v| v as u32)),
            ScalarType::U16 => Tensor::U16(a.mapv(|v| v as u16)),
            ScalarType::U8 => Tensor::U8(a.mapv(|v| v as u8)),
            // 4-bit values are kept sign- or zero-extended in their byte.
            ScalarType::I4 => Tensor::I4(a.mapv(|v| (((v as u8) << 4) as i8) >> 4)),
            ScalarType::U4 => Tensor::U4(a.mapv(|v| (v as u8) & 0xf)),
            _ => return Err(bad_result_type(ty, "i64")),
        })
    }
}

/// A tensor in the type its kernels compute in: borrowed when it already is `f32`/`f64`/`i64`.
pub(crate) enum Work<'a> {
    F32(CowArray<'a, f32, IxDyn>),
    F64(CowArray<'a, f64, IxDyn>),
    I64(CowArray<'a, i64, IxDyn>),
}

impl Work<'_> {
    pub(crate) fn of(t: &Tensor) -> OpResult<Work<'_>> {
        Ok(match t {
            Tensor::F32(a) => Work::F32(a.view().into()),
            Tensor::F16(a) => Work::F32(a.mapv(|v| v.to_f32()).into()),
            Tensor::BF16(a) => Work::F32(a.mapv(|v| v.to_f32()).into()),
            Tensor::F64(a) => Work::F64(a.view().into()),
            Tensor::I64(a) => Work::I64(a.view().into()),
            Tensor::I32(a) => Work::I64(a.mapv(|v| v as i64).into()),
            Tensor::I16(a) => Work::I64(a.mapv(|v| v as i64).into()),
            Tensor::I8(a) | Tensor::I4(a) => Work::I64(a.mapv(|v| v as i64).into()),
            // u64 is reinterpreted: wrapping i64 arithmetic gives the same bits.
            Tensor::U64(a) => Work::I64(a.mapv(|v| v as i64).into()),
            Tensor::U32(a) => Work::I64(a.mapv(|v| v as i64).into()),
            Tensor::U16(a) => Work::I64(a.mapv(|v| v as i64).into()),
            Tensor::U8(a) | Tensor::U4(a) => Work::I64(a.mapv(|v| v as i64).into()),
            Tensor::Bool(_) => return Err("bool tensors are not supported by this op".into()),
        })
    }

    /// Like [`Work::of`] but only for floating-point tensors.
    pub(crate) fn float(t: &Tensor) -> OpResult<Work<'_>> {
        if !t.scalar_type().is_float() {
            return Err(format!("expected a floating-point tensor, found {}", t.scalar_type()));
        }
        Work::of(t)
    }
}

/// A computation generic over the kernel type, run by [`dispatch`].
pub(crate) trait Kernel {
    /// `ins` has one entry per operand (`None` when an optional one is absent).
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>>;
}

/// Converts the operands (which must share one element type) to their kernel type, runs `k`
/// and converts the result back to that element type. `float_only` rejects integer operands.
pub(crate) fn dispatch<K: Kernel>(k: &K, ins: &[Option<&Tensor>], float_only: bool) -> OpResult<Tensor> {
    let ty = ins.iter().flatten().next().ok_or("internal: no operands")?.scalar_type();
    if let Some(t) = ins.iter().flatten().find(|t| t.scalar_type() != ty) {
        return Err(format!("operands must share one element type, found {ty} and {}", t.scalar_type()));
    }
    if float_only && !ty.is_float() {
        return Err(format!("expected floating-point operands, found {ty}"));
    }
    let works: Vec<Option<Work>> =
        ins.iter().map(|t| t.map(Work::of).transpose()).collect::<OpResult<_>>()?;
    macro_rules! views {
        ($v:ident) => {
            works
                .iter()
                .map(|w| match w {
                    None => Ok(None),
                    Some(Work::$v(a)) => Ok(Some(a.view())),
                    Some(_) => Err("internal: operand kinds differ".to_string()),
                })
                .collect::<OpResult<Vec<_>>>()?
        };
    }
    match works.iter().flatten().next().ok_or("internal: no operands")? {
        Work::F32(_) => f32::into_tensor(k.run(&views!(F32))?, ty),
        Work::F64(_) => f64::into_tensor(k.run(&views!(F64))?, ty),
        Work::I64(_) => i64::into_tensor(k.run(&views!(I64))?, ty),
    }
}

/// Checks that an operand is a ranked tensor of a plain (not quantized) scalar type and
/// returns that type.
pub(crate) fn plain_scalar(ty: &TensorType, what: &str) -> OpResult<ScalarType> {
    match &ty.elem {
        ElemType::Scalar(s) => Ok(*s),
        ElemType::Quant(_) => {
            Err(format!("{what} has quantized element type {}; dequantize it first", ty.elem))
        }
    }
}

/// The element type of a float operand (f32, f16, bf16, f64).
pub(crate) fn float_scalar(ty: &TensorType, what: &str) -> OpResult<ScalarType> {
    let s = plain_scalar(ty, what)?;
    if !s.is_float() {
        return Err(format!("{what} must be a floating-point tensor, found {s}"));
    }
    Ok(s)
}

/// The element type of a numeric operand (no bool).
pub(crate) fn numeric_scalar(ty: &TensorType, what: &str) -> OpResult<ScalarType> {
    let s = plain_scalar(ty, what)?;
    if s == ScalarType::Bool {
        return Err(format!("{what} must be numeric, found bool"));
    }
    Ok(s)
}

/// Errors unless two operands have the same element type.
pub(crate) fn same_elem(a: &TensorType, b: &TensorType, what: &str) -> OpResult<()> {
    if a.elem != b.elem {
        return Err(format!("{what}: element types differ ({} vs {})", a.elem, b.elem));
    }
    Ok(())
}

/// Two dims that must be equal: an error if both are static and differ; the more precise
/// one otherwise.
pub(crate) fn unify_dims(a: &Dim, b: &Dim, what: &str) -> OpResult<Dim> {
    Ok(match (a, b) {
        (Dim::Static(x), Dim::Static(y)) if x != y => return Err(format!("{what}: {x} vs {y}")),
        (Dim::Static(x), _) | (_, Dim::Static(x)) => Dim::Static(*x),
        (Dim::Sym(x), _) | (_, Dim::Sym(x)) => Dim::Sym(x.clone()),
        _ => Dim::Unknown,
    })
}

/// Product of a dim and a constant factor.
pub(crate) fn dim_times(d: &Dim, k: u64) -> Dim {
    match d {
        Dim::Static(n) => Dim::Static(n * k),
        _ if k == 0 => Dim::Static(0),
        _ if k == 1 => d.clone(),
        _ => Dim::Unknown,
    }
}

/// An integer attribute with its default.
pub(crate) fn int_attr(attrs: &crate::attr::Attrs, name: &str, default: i64) -> i64 {
    attrs.int(name).unwrap_or(default)
}

/// A float attribute with its default.
pub(crate) fn float_attr(attrs: &crate::attr::Attrs, name: &str, default: f64) -> f64 {
    attrs.float(name).unwrap_or(default)
}

/// Reshapes an owned array (row-major) to `shape`.
pub(crate) fn reshape_owned<T: Clone>(a: ArrayD<T>, shape: &[usize]) -> OpResult<ArrayD<T>> {
    let a = if a.is_standard_layout() { a } else { a.as_standard_layout().into_owned() };
    a.into_shape_with_order(IxDyn(shape)).map_err(|e| format!("internal reshape error: {e}"))
}

/// Batched matrix product: `a` is `[batch..., m, k]`, `b` is `[batch..., k, n]` with the
/// batch dims already broadcast to `batch` (zero strides allowed); returns `[batch..., m, n]`.
pub(crate) fn batched_gemm<T: Scalar>(
    a: &ArrayViewD<T>,
    b: &ArrayViewD<T>,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
) -> OpResult<ArrayD<T>> {
    let nb: usize = batch.iter().product();
    let mut shape = batch.to_vec();
    shape.extend([m, n]);
    let mut out = ArrayD::from_elem(IxDyn(&shape), T::ZERO);
    if nb == 0 || m == 0 || n == 0 {
        return Ok(out);
    }
    {
        let mut out3 = out
            .view_mut()
            .into_shape_with_order((nb, m, n))
            .map_err(|e| format!("internal reshape error: {e}"))?;
        let mut idx = vec![0usize; batch.len()];
        for bi in 0..nb {
            // Decompose the flat batch index into a multi-index (row-major).
            let mut r = bi;
            for (d, &s) in batch.iter().enumerate().rev() {
                idx[d] = r % s;
                r /= s;
            }
            let mut av = a.view();
            let mut bv = b.view();
            for &i in &idx {
                av = av.index_axis_move(Axis(0), i);
                bv = bv.index_axis_move(Axis(0), i);
            }
            let av = av.into_dimensionality::<ndarray::Ix2>().map_err(|e| e.to_string())?;
            let bv = bv.into_dimensionality::<ndarray::Ix2>().map_err(|e| e.to_string())?;
            debug_assert_eq!(av.dim(), (m, k));
            let mut c = out3.index_axis_mut(Axis(0), bi);
            T::gemm(T::ONE, &av, &bv, T::ZERO, &mut c);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// nn.matmul
// ---------------------------------------------------------------------------------------------

pub static MATMUL: OpDef = OpDef {
    name: "nn.matmul",
    summary: "Matrix product with numpy semantics: 1-D operands are promoted to a row/column and \
              the extra dim removed; leading dims broadcast (ONNX MatMul).",
    operands: &["A", "B"],
    results: &["Y"],
    attrs: &[],
    traits: Traits::PURE,
    infer: infer_matmul,
    eval: eval_matmul,
};

fn infer_matmul(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let a = operand(ctx, 0)?;
    let b = operand(ctx, 1)?;
    let elem = numeric_scalar(a, "A")?;
    same_elem(a, b, "A and B")?;
    if a.rank() == 0 || b.rank() == 0 {
        return Err("MatMul operands must have rank >= 1".into());
    }
    let (ar, br) = (a.rank(), b.rank());
    let ka = &a.dims[ar - 1];
    let kb = if br == 1 { &b.dims[0] } else { &b.dims[br - 2] };
    unify_dims(ka, kb, "inner dims of A and B differ")?;
    let a_batch = if ar > 2 { &a.dims[..ar - 2] } else { &[][..] };
    let b_batch = if br > 2 { &b.dims[..br - 2] } else { &[][..] };
    let mut dims = super::util::broadcast_dims(a_batch, b_batch)?;
    if ar >= 2 {
        dims.push(a.dims[ar - 2].clone());
    }
    if br >= 2 {
        dims.push(b.dims[br - 1].clone());
    }
    Ok(vec![TensorType::new(dims, elem)])
}

fn eval_matmul(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let ins = [Some(super::util::input(ctx, 0)?), Some(super::util::input(ctx, 1)?)];
    Ok(vec![dispatch(&MatMulK, &ins, false)?])
}

struct MatMulK;

impl Kernel for MatMulK {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        match ins {
            [Some(a), Some(b)] => matmul(a, b),
            _ => Err("MatMul takes A and B".into()),
        }
    }
}

/// Numpy `matmul` of two arrays of rank >= 1.
pub(crate) fn matmul<T: Scalar>(a: &ArrayViewD<T>, b: &ArrayViewD<T>) -> OpResult<ArrayD<T>> {
    if a.ndim() == 0 || b.ndim() == 0 {
        return Err("MatMul operands must have rank >= 1".into());
    }
    let a_vec = a.ndim() == 1;
    let b_vec = b.ndim() == 1;
    let a2 = if a_vec { a.view().insert_axis(Axis(0)) } else { a.view() };
    let b2 = if b_vec { b.view().insert_axis(Axis(1)) } else { b.view() };
    let (ar, br) = (a2.ndim(), b2.ndim());
    let (m, k) = (a2.shape()[ar - 2], a2.shape()[ar - 1]);
    let (k2, n) = (b2.shape()[br - 2], b2.shape()[br - 1]);
    if k != k2 {
        return Err(format!("inner dims differ: A is {:?}, B is {:?}", a.shape(), b.shape()));
    }
    let batch = super::util::broadcast_shapes(&[&a2.shape()[..ar - 2], &b2.shape()[..br - 2]])?;
    let mut out_shape = batch.clone();
    if !a_vec {
        out_shape.push(m);
    }
    if !b_vec {
        out_shape.push(n);
    }
    let out = if br == 2 && ar > 2 {
        // B is one matrix shared by every batch (a linear layer): fold the batch into the
        // rows of one large product.
        let rows: usize = batch.iter().product::<usize>() * m;
        let a_std = a2.as_standard_layout();
        let a_mat = a_std.view().into_shape_with_order((rows, k)).map_err(|e| e.to_string())?;
        let b_mat = b2.into_dimensionality::<ndarray::Ix2>().map_err(|e| e.to_string())?;
        let mut c = ndarray::Array2::from_elem((rows, n), T::ZERO);
        if rows > 0 && n > 0 {
            T::gemm(T::ONE, &a_mat, &b_mat, T::ZERO, &mut c.view_mut());
        }
        c.into_dyn()
    } else {
        let mut a_shape = batch.clone();
        a_shape.extend([m, k]);
        let mut b_shape = batch.clone();
        b_shape.extend([k, n]);
        let a_b = a2.broadcast(IxDyn(&a_shape)).ok_or("cannot broadcast A")?;
        let b_b = b2.broadcast(IxDyn(&b_shape)).ok_or("cannot broadcast B")?;
        batched_gemm(&a_b, &b_b, &batch, m, k, n)?
    };
    reshape_owned(out, &out_shape)
}

// ---------------------------------------------------------------------------------------------
// nn.gemm
// ---------------------------------------------------------------------------------------------

pub static GEMM: OpDef = OpDef {
    name: "nn.gemm",
    summary: "General matrix multiply `Y = alpha * A' * B' + beta * C` where A' and B' are \
              optionally transposed 2-D matrices and C broadcasts to the result (ONNX Gemm).",
    operands: &["A", "B", "C?"],
    results: &["Y"],
    attrs: &[
        AttrDef::opt("alpha", AttrKind::Float, "1.0"),
        AttrDef::opt("beta", AttrKind::Float, "1.0"),
        AttrDef::opt("transA", AttrKind::Int, "0"),
        AttrDef::opt("transB", AttrKind::Int, "0"),
    ],
    traits: Traits::PURE,
    infer: infer_gemm,
    eval: eval_gemm,
};

fn infer_gemm(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let a = operand(ctx, 0)?;
    let b = operand(ctx, 1)?;
    let elem = numeric_scalar(a, "A")?;
    same_elem(a, b, "A and B")?;
    if a.rank() != 2 || b.rank() != 2 {
        return Err(format!("Gemm takes 2-D A and B, found ranks {} and {}", a.rank(), b.rank()));
    }
    let ta = int_attr(ctx.attrs, "transA", 0) != 0;
    let tb = int_attr(ctx.attrs, "transB", 0) != 0;
    let m = &a.dims[if ta { 1 } else { 0 }];
    let ka = &a.dims[if ta { 0 } else { 1 }];
    let kb = &b.dims[if tb { 1 } else { 0 }];
    let n = &b.dims[if tb { 0 } else { 1 }];
    unify_dims(ka, kb, "inner dims of A' and B' differ")?;
    let out = vec![m.clone(), n.clone()];
    if ctx.has_operand(2) {
        let c = operand(ctx, 2)?;
        same_elem(a, c, "A and C")?;
        if c.rank() > 2 {
            return Err(format!("C must have rank <= 2, found {}", c.rank()));
        }
        // C broadcasts unidirectionally: the broadcast with [M, N] must be [M, N].
        let bc = super::util::broadcast_dims(&out, &c.dims)?;
        for (o, x) in out.iter().zip(&bc) {
            if let (Dim::Static(o), Dim::Static(x)) = (o, x) {
                if o != x {
                    return Err(format!("C of type {c} does not broadcast to [{m}, {n}]"));
                }
            }
        }
    }
    Ok(vec![TensorType::new(out, elem)])
}

fn eval_gemm(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let p = GemmParams {
        alpha: float_attr(ctx.attrs, "alpha", 1.0),
        beta: float_attr(ctx.attrs, "beta", 1.0),
        ta: int_attr(ctx.attrs, "transA", 0) != 0,
        tb: int_attr(ctx.attrs, "transB", 0) != 0,
    };
    let ins = [Some(super::util::input(ctx, 0)?), Some(super::util::input(ctx, 1)?), ctx.opt_input(2)];
    Ok(vec![dispatch(&p, &ins, false)?])
}

impl Kernel for GemmParams {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        match ins {
            [Some(a), Some(b), c] => gemm(a, b, c.as_ref().map(|c| c.view()), self),
            _ => Err("Gemm takes A, B and an optional C".into()),
        }
    }
}

struct GemmParams {
    alpha: f64,
    beta: f64,
    ta: bool,
    tb: bool,
}

fn gemm<T: Scalar>(
    a: &ArrayViewD<T>,
    b: &ArrayViewD<T>,
    c: Option<ArrayViewD<T>>,
    p: &GemmParams,
) -> OpResult<ArrayD<T>> {
    let a = a.view().into_dimensionality::<ndarray::Ix2>().map_err(|_| "A must be 2-D")?;
    let b = b.view().into_dimensionality::<ndarray::Ix2>().map_err(|_| "B must be 2-D")?;
    let a = if p.ta { a.reversed_axes() } else { a };
    let b = if p.tb { b.reversed_axes() } else { b };
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    if k != k2 {
        return Err(format!("inner dims of A' ({m}x{k}) and B' ({k2}x{n}) differ"));
    }
    // Integer Gemm with a fractional alpha or beta is computed in f64 and rounded toward zero.
    let exact = |v: f64| T::from_f64(v).to_f64() == v;
    if !T::IS_FLOAT && (!exact(p.alpha) || !exact(p.beta)) {
        let af = a.mapv(|v| v.to_f64());
        let bf = b.mapv(|v| v.to_f64());
        let cf = c.map(|c| c.mapv(|v| v.to_f64()));
        let pf = GemmParams { alpha: p.alpha, beta: p.beta, ta: false, tb: false };
        let y = gemm(&af.view().into_dyn(), &bf.view().into_dyn(), cf.as_ref().map(|c| c.view()), &pf)?;
        return Ok(y.mapv(T::from_f64));
    }
    let mut y = ndarray::Array2::from_elem((m, n), T::ZERO);
    let mut beta = T::ZERO;
    if let Some(c) = c {
        if p.beta != 0.0 {
            let cb = c
                .broadcast(IxDyn(&[m, n]))
                .ok_or_else(|| format!("C of shape {:?} does not broadcast to [{m}, {n}]", c.shape()))?;
            y.assign(&cb.into_dimensionality::<ndarray::Ix2>().map_err(|e| e.to_string())?);
            beta = T::from_f64(p.beta);
        }
    }
    if m > 0 && n > 0 {
        T::gemm(T::from_f64(p.alpha), &a, &b, beta, &mut y.view_mut());
    }
    Ok(y.into_dyn())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::attr::{Attr, Attrs};
    use crate::types::ScalarType;
    use ndarray::ArrayD;

    pub(crate) fn f32t(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    pub(crate) fn run(def: &OpDef, attrs: &Attrs, inputs: Vec<Tensor>) -> Vec<Tensor> {
        let types: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
        let consts: Vec<Option<Tensor>> = inputs.iter().map(|t| Some(t.clone())).collect();
        let ictx = InferCtx { attrs, operands: &types, consts: &consts, num_results: def.results.len() };
        let rtypes = (def.infer)(&ictx).unwrap();
        let ctx = EvalCtx { attrs, inputs: &inputs, operand_types: &types, result_types: &rtypes };
        let out = (def.eval)(&ctx).unwrap();
        for (t, ty) in out.iter().zip(&rtypes) {
            crate::interp::check_value(ty, t).unwrap();
        }
        out
    }

    #[test]
    fn matmul_shapes() {
        let a = f32t(&[3], vec![1., 2., 3.]);
        let b = f32t(&[2, 3, 1], vec![1., 0., 0., 0., 1., 1.]);
        let y = run(&MATMUL, &Attrs::new(), vec![a, b]);
        assert_eq!(y[0], f32t(&[2, 1], vec![1., 5.]));

        let a = f32t(&[2, 1, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]);
        let b = f32t(&[3, 2, 1], vec![1., 1., 1., 0., 0., 1.]);
        let y = run(&MATMUL, &Attrs::new(), vec![a, b]);
        assert_eq!(y[0].shape(), &[2, 3, 2, 1]);
        assert_eq!(y[0].to_f64_vec(), vec![3., 7., 1., 3., 2., 4., 11., 15., 5., 7., 6., 8.]);
    }

    #[test]
    fn matmul_ints_wrap() {
        let a = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[1, 2]), vec![i32::MAX, 1]).unwrap());
        let b = Tensor::I32(ArrayD::from_shape_vec(IxDyn(&[2, 1]), vec![2, 3]).unwrap());
        let y = run(&MATMUL, &Attrs::new(), vec![a, b]);
        assert_eq!(y[0].to_i64_vec().unwrap(), vec![(i32::MAX.wrapping_mul(2)).wrapping_add(3) as i64]);
    }

    #[test]
    fn gemm_trans_and_bias() {
        let a = f32t(&[2, 2], vec![1., 2., 3., 4.]);
        let b = f32t(&[2, 2], vec![1., 0., 1., 1.]);
        let c = f32t(&[2], vec![10., 20.]);
        let attrs = Attrs::new()
            .with("transA", Attr::Int(1))
            .with("transB", Attr::Int(1))
            .with("alpha", Attr::Float(2.0))
            .with("beta", Attr::Float(0.5));
        // A' = [[1,3],[2,4]], B' = [[1,1],[0,1]]; A'B' = [[1,4],[2,6]]
        let y = run(&GEMM, &attrs, vec![a, b, c]);
        assert_eq!(y[0], f32t(&[2, 2], vec![7., 18., 9., 22.]));
    }

    /// Operand `k` of an oracle case: `sin(0.37 * i + k)` as f32.
    pub(crate) fn oracle_input(shape: &[usize], k: usize) -> Tensor {
        let n: usize = shape.iter().product();
        f32t(shape, (0..n).map(|i| (i as f64 * 0.37 + k as f64).sin() as f32).collect())
    }

    /// Asserts that `t` has `shape` and is close to `want`.
    pub(crate) fn assert_close(t: &Tensor, shape: &[usize], want: &[f64]) {
        assert_eq!(t.shape(), shape);
        for (i, (g, w)) in t.to_f64_vec().iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 + 1e-4 * w.abs(), "element {i}: got {g}, want {w}");
        }
    }

    fn ints(v: &[i64]) -> Attr {
        Attr::Ints(v.to_vec())
    }

    fn s(v: &str) -> Attr {
        Attr::Str(v.into())
    }

    use super::super::linalg_testdata as td;

    #[test]
    fn conv_oracle() {
        let a = Attrs::new().with("auto_pad", s("SAME_LOWER")).with("strides", ints(&[2, 2]));
        let y = run(&CONV, &a, vec![oracle_input(&[1, 1, 5, 5], 0), oracle_input(&[1, 1, 3, 3], 1)]);
        assert_close(&y[0], td::CONV_SAME_LOWER_0_SHAPE, &td::conv_same_lower_0());

        let a = Attrs::new()
            .with("group", Attr::Int(2))
            .with("pads", ints(&[1, 0, 2, 1]))
            .with("strides", ints(&[2, 1]))
            .with("dilations", ints(&[1, 2]));
        let ins = vec![oracle_input(&[1, 4, 5, 6], 0), oracle_input(&[6, 2, 3, 2], 1), oracle_input(&[6], 2)];
        assert_close(&run(&CONV, &a, ins)[0], td::CONV_GROUP_0_SHAPE, &td::conv_group_0());

        let a = Attrs::new()
            .with("auto_pad", s("SAME_UPPER"))
            .with("dilations", ints(&[2]))
            .with("strides", ints(&[2]));
        let ins = vec![oracle_input(&[2, 2, 7], 0), oracle_input(&[3, 2, 2], 1)];
        assert_close(&run(&CONV, &a, ins)[0], td::CONV1D_SAME_UPPER_0_SHAPE, &td::conv1d_same_upper_0());

        let a = Attrs::new().with("pads", ints(&[1, 0, 1, 0, 1, 0]));
        let ins = vec![oracle_input(&[1, 2, 3, 4, 3], 0), oracle_input(&[2, 2, 2, 2, 2], 1)];
        assert_close(&run(&CONV, &a, ins)[0], td::CONV3D_0_SHAPE, &td::conv3d_0());
    }

    #[test]
    fn conv_transpose_oracle() {
        let a = Attrs::new().with("output_shape", ints(&[10, 8])).with("strides", ints(&[3, 2]));
        let ins = vec![oracle_input(&[1, 1, 3, 3], 0), oracle_input(&[1, 2, 3, 3], 1)];
        assert_close(
            &run(&CONV_TRANSPOSE, &a, ins)[0],
            td::CONVT_OUTPUT_SHAPE_0_SHAPE,
            &td::convt_output_shape_0(),
        );

        let a = Attrs::new()
            .with("group", Attr::Int(2))
            .with("strides", ints(&[2, 3]))
            .with("dilations", ints(&[2, 1]))
            .with("pads", ints(&[1, 0, 0, 2]))
            .with("output_padding", ints(&[1, 0]));
        let ins = vec![oracle_input(&[2, 4, 3, 2], 0), oracle_input(&[4, 3, 2, 3], 1), oracle_input(&[6], 2)];
        assert_close(&run(&CONV_TRANSPOSE, &a, ins)[0], td::CONVT_GROUP_0_SHAPE, &td::convt_group_0());

        let a = Attrs::new().with("auto_pad", s("SAME_LOWER")).with("strides", ints(&[2]));
        let ins = vec![oracle_input(&[1, 2, 4], 0), oracle_input(&[2, 1, 3], 1)];
        assert_close(
            &run(&CONV_TRANSPOSE, &a, ins)[0],
            td::CONVT_SAME_LOWER_0_SHAPE,
            &td::convt_same_lower_0(),
        );
    }

    #[test]
    fn pool_oracle() {
        let a = Attrs::new()
            .with("kernel_shape", ints(&[3, 2]))
            .with("strides", ints(&[2, 2]))
            .with("ceil_mode", Attr::Int(1))
            .with("storage_order", Attr::Int(1))
            .with("pads", ints(&[1, 0, 0, 0]));
        let x = oracle_input(&[1, 2, 5, 4], 0);
        let types = vec![x.ty()];
        let consts = vec![None];
        let ictx = InferCtx { attrs: &a, operands: &types, consts: &consts, num_results: 2 };
        let rtypes = (MAX_POOL.infer)(&ictx).unwrap();
        let ins = [x];
        let ctx = EvalCtx { attrs: &a, inputs: &ins, operand_types: &types, result_types: &rtypes };
        let y = (MAX_POOL.eval)(&ctx).unwrap();
        assert_eq!(rtypes[1].scalar(), ScalarType::I64);
        assert_close(&y[0], td::MAXPOOL_IDX_0_SHAPE, &td::maxpool_idx_0());
        assert_close(&y[1], td::MAXPOOL_IDX_1_SHAPE, &td::maxpool_idx_1());

        for (cip, shape, want) in [
            (1, td::AVGPOOL_CEIL_PAD_0_SHAPE, td::avgpool_ceil_pad_0()),
            (0, td::AVGPOOL_NOPAD_COUNT_0_SHAPE, td::avgpool_nopad_count_0()),
        ] {
            let a = Attrs::new()
                .with("kernel_shape", ints(&[3, 3]))
                .with("strides", ints(&[2, 2]))
                .with("ceil_mode", Attr::Int(1))
                .with("count_include_pad", Attr::Int(cip))
                .with("pads", ints(&[1, 1, 1, 1]));
            assert_close(&run(&AVERAGE_POOL, &a, vec![oracle_input(&[1, 1, 5, 5], 0)])[0], shape, &want);
        }
    }

    #[test]
    fn attention_oracle() {
        let a = Attrs::new()
            .with("q_num_heads", Attr::Int(4))
            .with("kv_num_heads", Attr::Int(2))
            .with("is_causal", Attr::Int(1))
            .with("softcap", Attr::Float(1.5))
            .with("qk_matmul_output_mode", Attr::Int(1));
        let shapes: [&[usize]; 6] =
            [&[2, 3, 16], &[2, 3, 8], &[2, 3, 6], &[3, 5], &[2, 2, 2, 4], &[2, 2, 2, 3]];
        let ins = shapes.iter().enumerate().map(|(k, s)| oracle_input(s, k)).collect();
        let y = run(&ATTENTION, &a, ins);
        assert_close(&y[0], td::ATTN_3D_GQA_PAST_0_SHAPE, &td::attn_3d_gqa_past_0());
        assert_close(&y[1], td::ATTN_3D_GQA_PAST_1_SHAPE, &td::attn_3d_gqa_past_1());
        assert_close(&y[2], td::ATTN_3D_GQA_PAST_2_SHAPE, &td::attn_3d_gqa_past_2());
        assert_close(&y[3], td::ATTN_3D_GQA_PAST_3_SHAPE, &td::attn_3d_gqa_past_3());

        let a = Attrs::new()
            .with("is_causal", Attr::Int(1))
            .with("left_window_size", Attr::Int(1))
            .with("qk_matmul_output_mode", Attr::Int(3))
            .with("scale", Attr::Float(0.3));
        let mask = match oracle_input(&[1, 1, 3, 5], 3) {
            Tensor::F32(m) => Tensor::Bool(m.mapv(|v| v > -0.3)),
            _ => unreachable!(),
        };
        let empty = Tensor::zeros(ScalarType::F32, &[0]);
        let nonpad = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[2]), vec![4, 6]).unwrap());
        let ins = vec![
            oracle_input(&[2, 2, 3, 4], 0),
            oracle_input(&[2, 2, 6, 4], 1),
            oracle_input(&[2, 2, 6, 4], 2),
            mask,
            empty.clone(),
            empty,
            nonpad,
        ];
        let y = run(&ATTENTION, &a, ins);
        assert_close(&y[0], td::ATTN_4D_WINDOW_0_SHAPE, &td::attn_4d_window_0());
        assert_close(&y[3], td::ATTN_4D_WINDOW_1_SHAPE, &td::attn_4d_window_1());
    }

    #[test]
    fn rotary_oracle() {
        let a = Attrs::new()
            .with("num_heads", Attr::Int(2))
            .with("interleaved", Attr::Int(1))
            .with("rotary_embedding_dim", Attr::Int(4));
        let pos = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0, 3, 5, 9, 1, 2]).unwrap());
        let ins =
            vec![oracle_input(&[2, 3, 12], 0), oracle_input(&[10, 2], 1), oracle_input(&[10, 2], 2), pos];
        assert_close(&run(&ROTARY_EMBEDDING, &a, ins)[0], td::ROPE_3D_0_SHAPE, &td::rope_3d_0());
    }

    fn infer(
        def: &OpDef,
        attrs: &Attrs,
        operands: Vec<TensorType>,
        num_results: usize,
    ) -> OpResult<Vec<TensorType>> {
        let consts: Vec<Option<Tensor>> = operands.iter().map(|_| None).collect();
        (def.infer)(&InferCtx { attrs, operands: &operands, consts: &consts, num_results })
    }

    fn ty(dims: &[&str], elem: ScalarType) -> TensorType {
        let dims = dims
            .iter()
            .map(|d| match d.parse::<u64>() {
                Ok(n) => Dim::Static(n),
                Err(_) if *d == "?" => Dim::Unknown,
                Err(_) => Dim::Sym(d.to_string()),
            })
            .collect();
        TensorType::new(dims, elem)
    }

    #[test]
    fn shape_rules_with_symbolic_dims() {
        let f = ScalarType::F32;
        let none = Attrs::new();
        let r = infer(&MATMUL, &none, vec![ty(&["b", "s", "8"], f), ty(&["8", "16"], f)], 1).unwrap();
        assert_eq!(r[0], ty(&["b", "s", "16"], f));
        let r = infer(&MATMUL, &none, vec![ty(&["8"], f), ty(&["3", "8", "2"], f)], 1).unwrap();
        assert_eq!(r[0], ty(&["3", "2"], f));
        assert!(infer(&MATMUL, &none, vec![ty(&["2", "3"], f), ty(&["4", "2"], f)], 1).is_err());
        assert!(infer(&MATMUL, &none, vec![ty(&["2", "3"], f), ty(&["3", "2"], ScalarType::F16)], 1).is_err());

        let a = Attrs::new().with("pads", ints(&[1, 1, 1, 1])).with("strides", ints(&[2, 2]));
        let r =
            infer(&CONV, &a, vec![ty(&["n", "3", "h", "9"], f), ty(&["8", "3", "3", "3"], f)], 1).unwrap();
        assert_eq!(r[0], ty(&["n", "8", "?", "5"], f));
        let g = a.clone().with("group", Attr::Int(2));
        assert!(
            infer(&CONV, &g, vec![ty(&["1", "3", "9", "9"], f), ty(&["8", "3", "3", "3"], f)], 1).is_err()
        );
        let big = Attrs::new();
        let e = infer(&CONV, &big, vec![ty(&["1", "3", "2", "9"], f), ty(&["8", "3", "3", "3"], f)], 1)
            .unwrap_err();
        assert!(e.contains("exceeds"), "{e}");

        let t = Attrs::new().with("output_shape", ints(&[10, 8])).with("strides", ints(&[3, 2]));
        let r =
            infer(&CONV_TRANSPOSE, &t, vec![ty(&["1", "4", "?", "?"], f), ty(&["4", "2", "3", "3"], f)], 1)
                .unwrap();
        assert_eq!(r[0], ty(&["1", "2", "10", "8"], f));
        let t = Attrs::new().with("group", Attr::Int(2)).with("strides", ints(&[2]));
        let r =
            infer(&CONV_TRANSPOSE, &t, vec![ty(&["1", "4", "5"], f), ty(&["4", "3", "3"], f)], 1).unwrap();
        assert_eq!(r[0], ty(&["1", "6", "11"], f));

        let p = Attrs::new().with("kernel_shape", ints(&[2, 2])).with("strides", ints(&[2, 2]));
        let r = infer(&MAX_POOL, &p, vec![ty(&["1", "c", "7", "8"], f)], 2).unwrap();
        assert_eq!(r, vec![ty(&["1", "c", "3", "4"], f), ty(&["1", "c", "3", "4"], ScalarType::I64)]);
        assert!(infer(&AVERAGE_POOL, &p, vec![ty(&["1", "2", "7", "8"], ScalarType::I8)], 1).is_err());
        let r = infer(&GLOBAL_AVERAGE_POOL, &none, vec![ty(&["n", "c", "7", "8"], f)], 1).unwrap();
        assert_eq!(r[0], ty(&["n", "c", "1", "1"], f));

        let at = Attrs::new().with("q_num_heads", Attr::Int(4)).with("kv_num_heads", Attr::Int(2));
        let ops = vec![
            ty(&["b", "s", "32"], f),
            ty(&["b", "s", "16"], f),
            ty(&["b", "s", "12"], f),
            ty(&["s", "t"], f),
            ty(&["b", "2", "p", "8"], f),
            ty(&["b", "2", "p", "6"], f),
        ];
        let r = infer(&ATTENTION, &at, ops, 4).unwrap();
        assert_eq!(r[0], ty(&["b", "s", "24"], f));
        assert_eq!(r[1], ty(&["b", "2", "?", "8"], f));
        assert_eq!(r[2], ty(&["b", "2", "?", "6"], f));
        assert_eq!(r[3], ty(&["b", "4", "s", "?"], f));
        let r = infer(
            &ATTENTION,
            &none,
            vec![ty(&["2", "8", "5", "16"], f), ty(&["2", "2", "7", "16"], f), ty(&["2", "2", "7", "4"], f)],
            1,
        )
        .unwrap();
        assert_eq!(r[0], ty(&["2", "8", "5", "4"], f));
        let bad_mask = vec![
            ty(&["2", "8", "5", "16"], f),
            ty(&["2", "2", "7", "16"], f),
            ty(&["2", "2", "7", "4"], f),
            ty(&["3", "7"], f),
        ];
        assert!(infer(&ATTENTION, &none, bad_mask, 1).is_err());

        let e = Attrs::new().with("equation", s("...ij,jk->...ik"));
        let r = infer(&EINSUM, &e, vec![ty(&["b", "4", "5"], f), ty(&["5", "n"], f)], 1).unwrap();
        assert_eq!(r[0], ty(&["b", "4", "n"], f));
    }
}
