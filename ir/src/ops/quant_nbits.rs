//! `q.matmul_nbits` and `q.gather_nbits`: weight-only block-quantized (4-bit) products and
//! embedding lookups, in the spirit of ONNX Runtime's `MatMulNBits` / `GatherBlockQuantized`
//! contrib ops. Produced by the `quantize-int4-weights` pass (see `docs/quantization.md`).
//!
//! ## Data model
//! The weight is a plain `i4` tensor `[N, K]`: row `n` holds the `K` weights of output channel
//! `n` along the reduction dimension (the layout of a transposed-B GEMM, and of an embedding
//! table `[vocab, dim]`). Constants of `i4` type are stored packed, two elements per byte, low
//! nibble first, row-major, so a `[N, K]` weight with even `K` is `N × K/2` bytes with every row
//! starting on a byte (the interpreter holds it unpacked, one element per byte). The scales are
//! `f32 [N, ceil(K / group_size)]`: scale `j` of row `n` covers the `group_size` consecutive
//! elements `j·G .. min((j+1)·G, K)` (the last group may be short). Quantization is symmetric
//! (no zero point): `w[n][k] = q[n][k] × scale[n][k / G]`.
//!
//! ## Numerics
//! - `q.matmul_nbits`: `y[..., m, n] = Σ_k x[..., m, k] · (q[n][k] · scale[n][k/G]) + bias[n]`.
//!   The reference dequantizes each weight in `f32` (exact: a 4-bit integer times an `f32`),
//!   accumulates the products in `f64` and rounds once to `f32`; machine backends accumulate in
//!   `f32` in their own order, so they agree to rounding.
//! - `q.gather_nbits`: `y[i..., d] = q[idx][d] · scale[idx][d / G]` in `f32` (exact), with ONNX
//!   Gather's index rules (negative indices count from the end; out of range is an error).

use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::tensor::Tensor;
use crate::types::{Dim, ScalarType, TensorType};
use ndarray::{ArrayD, IxDyn};

pub static MATMUL_NBITS: OpDef = OpDef {
    name: "q.matmul_nbits",
    summary: "Weight-only block-quantized matmul: y = x · dequant(w)ᵀ + bias, w an i4 [N, K] with one \
              f32 scale per group_size consecutive elements of a row (symmetric).",
    operands: &["x", "w", "scales", "bias?"],
    results: &["y"],
    attrs: &[AttrDef::req("group_size", AttrKind::Int), AttrDef::opt("bits", AttrKind::Int, "4")],
    traits: Traits::PURE,
    infer: infer_matmul_nbits,
    eval: eval_matmul_nbits,
};

pub static GATHER_NBITS: OpDef = OpDef {
    name: "q.gather_nbits",
    summary: "Rows of a block-quantized i4 table [N, K] (one f32 scale per group_size elements of a row), \
              dequantized: y = dequant(w)[indices] (Gather along axis 0).",
    operands: &["w", "scales", "indices"],
    results: &["y"],
    attrs: &[AttrDef::req("group_size", AttrKind::Int), AttrDef::opt("bits", AttrKind::Int, "4")],
    traits: Traits::PURE,
    infer: infer_gather_nbits,
    eval: eval_gather_nbits,
};

/// Number of groups of a row of `k` elements.
pub fn num_groups(k: usize, group_size: usize) -> usize {
    k.div_ceil(group_size)
}

/// Checks `bits` and `group_size` (a power of two ≥ 2) and returns the group size.
fn group_size(attrs: &crate::attr::Attrs) -> OpResult<usize> {
    let bits = attrs.int("bits").unwrap_or(4);
    if bits != 4 {
        return Err(format!("bits = {bits} is not supported (only 4)"));
    }
    let g = attrs.int("group_size").ok_or("missing attribute group_size")?;
    if g < 2 || (g as u64).count_ones() != 1 {
        return Err(format!("group_size = {g} must be a power of two of at least 2"));
    }
    Ok(g as usize)
}

/// Checks the weight `[N, K]` (i4) and scales `[N, ceil(K/G)]` (f32); returns (N, K) when static.
fn check_weight(w: &TensorType, s: &TensorType, g: usize) -> OpResult<(Dim, Dim)> {
    if w.scalar() != ScalarType::I4 || w.rank() != 2 {
        return Err(format!("w must be a 2-D i4 tensor [N, K], found {w}"));
    }
    if s.scalar() != ScalarType::F32 || s.rank() != 2 {
        return Err(format!("scales must be a 2-D f32 tensor [N, ceil(K / group_size)], found {s}"));
    }
    let (n, k) = (w.dims[0].clone(), w.dims[1].clone());
    if let (Some(nv), Some(sn)) = (n.as_static(), s.dims[0].as_static()) {
        if nv != sn {
            return Err(format!("scales has {sn} rows but w has {nv}"));
        }
    }
    if let (Some(kv), Some(sg)) = (k.as_static(), s.dims[1].as_static()) {
        let want = num_groups(kv as usize, g) as u64;
        if sg != want {
            return Err(format!("scales has {sg} groups per row; K = {kv} with group_size {g} needs {want}"));
        }
    }
    Ok((n, k))
}

fn infer_matmul_nbits(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let g = group_size(ctx.attrs)?;
    let x = operand(ctx, 0)?;
    let (n, k) = check_weight(operand(ctx, 1)?, operand(ctx, 2)?, g)?;
    if x.scalar() != ScalarType::F32 || x.rank() == 0 {
        return Err(format!("x must be an f32 tensor of rank >= 1, found {x}"));
    }
    let xk = &x.dims[x.rank() - 1];
    if let (Some(a), Some(b)) = (xk.as_static(), k.as_static()) {
        if a != b {
            return Err(format!("reduction dims differ: x has {a}, w has K = {b}"));
        }
    }
    if ctx.has_operand(3) {
        let b = operand(ctx, 3)?;
        let ok = b.scalar() == ScalarType::F32
            && b.rank() == 1
            && (b.dims[0].as_static().is_none() || n.as_static().is_none() || b.dims[0] == n);
        if !ok {
            return Err(format!("bias must be an f32 vector [N], found {b}"));
        }
    }
    let mut dims = x.dims.clone();
    *dims.last_mut().unwrap() = n;
    Ok(vec![TensorType::new(dims, ScalarType::F32)])
}

fn infer_gather_nbits(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let g = group_size(ctx.attrs)?;
    let (_, k) = check_weight(operand(ctx, 0)?, operand(ctx, 1)?, g)?;
    let idx = operand(ctx, 2)?;
    if !matches!(idx.scalar(), ScalarType::I64 | ScalarType::I32) {
        return Err(format!("indices must be i64 or i32, found {idx}"));
    }
    let mut dims = idx.dims.clone();
    dims.push(k);
    Ok(vec![TensorType::new(dims, ScalarType::F32)])
}

/// The dequantized weight `[N, K]` as f32 (row-major), with N and K.
fn dequantize(w: &Tensor, s: &Tensor, g: usize) -> OpResult<(Vec<f32>, usize, usize)> {
    let Tensor::I4(q) = w else { return Err(format!("w must be i4, found {}", w.scalar_type())) };
    let Tensor::F32(sc) = s else { return Err(format!("scales must be f32, found {}", s.scalar_type())) };
    let (&[n, k], &[sn, sg]) = (q.shape(), sc.shape()) else {
        return Err("w and scales must be 2-D".into());
    };
    if sn != n || sg != num_groups(k, g) {
        return Err(format!("scales shape [{sn}, {sg}] does not match w [{n}, {k}] with group_size {g}"));
    }
    let q: Vec<i8> = q.iter().copied().collect();
    let sc: Vec<f32> = sc.iter().copied().collect();
    let mut out = vec![0f32; n * k];
    for r in 0..n {
        for c in 0..k {
            out[r * k + c] = q[r * k + c] as f32 * sc[r * sg + c / g];
        }
    }
    Ok((out, n, k))
}

fn eval_matmul_nbits(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let g = group_size(ctx.attrs)?;
    let Tensor::F32(x) = input(ctx, 0)? else { return Err("x must be f32".into()) };
    let (w, n, k) = dequantize(input(ctx, 1)?, input(ctx, 2)?, g)?;
    let xs = x.shape().to_vec();
    if xs.last() != Some(&k) {
        return Err(format!("x's last dim {:?} differs from K = {k}", xs.last()));
    }
    let bias: Option<Vec<f32>> = match ctx.opt_input(3) {
        Some(Tensor::F32(b)) if b.len() == n => Some(b.iter().copied().collect()),
        Some(b) => return Err(format!("bias must be f32 [{n}], found {}", b.ty())),
        None => None,
    };
    let xv: Vec<f32> = x.iter().copied().collect();
    let rows = xv.len() / k.max(1);
    let mut y = Vec::with_capacity(rows * n);
    for m in 0..rows {
        let xr = &xv[m * k..(m + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let mut acc: f64 = xr.iter().zip(wr).map(|(&a, &b)| a as f64 * b as f64).sum();
            if let Some(b) = &bias {
                acc += b[j] as f64;
            }
            y.push(acc as f32);
        }
    }
    let mut ys = xs;
    *ys.last_mut().unwrap() = n;
    let y = ArrayD::from_shape_vec(IxDyn(&ys), y).map_err(|e| format!("internal shape error: {e}"))?;
    Ok(vec![Tensor::F32(y)])
}

fn eval_gather_nbits(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let g = group_size(ctx.attrs)?;
    let (w, n, k) = dequantize(input(ctx, 0)?, input(ctx, 1)?, g)?;
    let idx = input(ctx, 2)?;
    if !matches!(idx.scalar_type(), ScalarType::I64 | ScalarType::I32) {
        return Err(format!("indices must be i64 or i32, found {}", idx.scalar_type()));
    }
    let ids = idx.to_i64_vec().unwrap_or_default();
    let mut y = Vec::with_capacity(ids.len() * k);
    for &i in &ids {
        let r = if i < 0 { i + n as i64 } else { i };
        if r < 0 || r >= n as i64 {
            return Err(format!("index {i} is out of range for {n} rows"));
        }
        y.extend_from_slice(&w[r as usize * k..(r as usize + 1) * k]);
    }
    let mut ys = idx.shape().to_vec();
    ys.push(k);
    let y = ArrayD::from_shape_vec(IxDyn(&ys), y).map_err(|e| format!("internal shape error: {e}"))?;
    Ok(vec![Tensor::F32(y)])
}

/// Symmetric round-to-nearest block quantization of an f32 matrix `[n, k]` (row-major) with
/// groups of `g` along each row: `scale = max|w| / 7` per group (1 for an all-zero group),
/// `q = clamp(round_half_even(w / scale), -8, 7)`. Returns the i4 values (unpacked, row-major)
/// and the scales `[n, ceil(k / g)]`. This is the rule of the `quantize-int4-weights` pass.
pub fn quantize_blocks(w: &[f32], n: usize, k: usize, g: usize) -> (Vec<i8>, Vec<f32>) {
    let groups = num_groups(k, g);
    let mut q = vec![0i8; n * k];
    let mut scales = vec![0f32; n * groups];
    for r in 0..n {
        for j in 0..groups {
            let (lo, hi) = (r * k + j * g, r * k + ((j + 1) * g).min(k));
            let amax = w[lo..hi].iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = if amax > 0.0 && amax.is_finite() { amax / 7.0 } else { 1.0 };
            scales[r * groups + j] = s;
            for i in lo..hi {
                q[i] = (w[i] / s).round_ties_even().clamp(-8.0, 7.0) as i8;
            }
        }
    }
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{Attr, Attrs};

    fn run(def: &OpDef, inputs: Vec<Tensor>, g: i64) -> OpResult<Tensor> {
        let attrs = Attrs::new().with("group_size", Attr::Int(g));
        let operand_types: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
        let consts: Vec<Option<Tensor>> = inputs.iter().map(|t| Some(t.clone())).collect();
        let icx = InferCtx { attrs: &attrs, operands: &operand_types, consts: &consts, num_results: 1 };
        let rt = (def.infer)(&icx)?;
        let cx = EvalCtx { attrs: &attrs, inputs: &inputs, operand_types: &operand_types, result_types: &rt };
        let mut out = (def.eval)(&cx)?;
        assert_eq!(out[0].ty(), rt[0]);
        Ok(out.remove(0))
    }
    fn f32s(shape: &[usize], v: Vec<f32>) -> Tensor {
        Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }
    fn i4s(shape: &[usize], v: Vec<i8>) -> Tensor {
        Tensor::I4(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    /// A pseudo-random stream in [-1, 1).
    fn lcg(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matmul_matches_dequantized_reference() {
        // K = 10 with groups of 4: groups of 4, 4 and 2 (a short last group).
        let (m, n, k, g) = (3, 5, 10, 4);
        let q: Vec<i8> = (0..n * k).map(|i| ((i * 7 + 3) % 16) as i8 - 8).collect();
        let s: Vec<f32> = (0..n * 3).map(|i| 0.25 + i as f32 * 0.125).collect();
        let x = lcg(1, m * k);
        let bias: Vec<f32> = (0..n).map(|i| i as f32 - 2.0).collect();
        let y = run(
            &MATMUL_NBITS,
            vec![
                f32s(&[1, m, k], x.clone()),
                i4s(&[n, k], q.clone()),
                f32s(&[n, 3], s.clone()),
                f32s(&[n], bias.clone()),
            ],
            g as i64,
        )
        .unwrap();
        assert_eq!(y.shape(), &[1, m, n]);
        // Straightforward reference: dequantize, then a plain triple loop in f64.
        let got = y.to_f64_vec();
        for i in 0..m {
            for j in 0..n {
                let mut want = bias[j] as f64;
                for c in 0..k {
                    want += x[i * k + c] as f64 * (q[j * k + c] as f64 * s[j * 3 + c / g] as f64);
                }
                assert!((got[i * n + j] - want).abs() <= 1e-5 * want.abs().max(1.0), "{i},{j}");
            }
        }
        // Without the bias, a 1-D x.
        let y = run(
            &MATMUL_NBITS,
            vec![f32s(&[k], x[..k].to_vec()), i4s(&[n, k], q), f32s(&[n, 3], s)],
            g as i64,
        )
        .unwrap();
        assert_eq!(y.shape(), &[n]);
    }

    #[test]
    fn gather_dequantizes_rows() {
        let q: Vec<i8> = vec![-8, 7, 1, -1, 3, 0, 2, -2];
        let s = vec![0.5, 2.0, 1.0, 0.25];
        let idx = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[1, 3]), vec![1, -2, 1]).unwrap());
        let y = run(&GATHER_NBITS, vec![i4s(&[2, 4], q), f32s(&[2, 2], s), idx], 2).unwrap();
        assert_eq!(y.shape(), &[1, 3, 4]);
        assert_eq!(y.to_f64_vec(), vec![3.0, 0.0, 0.5, -0.5, -4.0, 3.5, 2.0, -2.0, 3.0, 0.0, 0.5, -0.5]);
        let bad = Tensor::I64(ArrayD::from_shape_vec(IxDyn(&[1]), vec![2]).unwrap());
        let e = run(&GATHER_NBITS, vec![i4s(&[2, 4], vec![0; 8]), f32s(&[2, 2], vec![1.0; 4]), bad], 2);
        assert!(e.unwrap_err().contains("out of range"));
    }

    #[test]
    fn shape_rule_errors() {
        let w = i4s(&[4, 8], vec![0; 32]);
        // Wrong number of groups.
        let e =
            run(&MATMUL_NBITS, vec![f32s(&[1, 8], vec![0.0; 8]), w.clone(), f32s(&[4, 3], vec![1.0; 12])], 4);
        assert!(e.unwrap_err().contains("groups"));
        // Group size not a power of two.
        let e =
            run(&MATMUL_NBITS, vec![f32s(&[1, 8], vec![0.0; 8]), w.clone(), f32s(&[4, 3], vec![1.0; 12])], 3);
        assert!(e.unwrap_err().contains("power of two"));
        // Reduction mismatch.
        let e = run(&MATMUL_NBITS, vec![f32s(&[1, 6], vec![0.0; 6]), w, f32s(&[4, 2], vec![1.0; 8])], 4);
        assert!(e.unwrap_err().contains("reduction"));
    }

    #[test]
    fn quantization_rule_round_trips_representable_weights() {
        // Values q * 0.5 with max |q| = 7 in each group quantize exactly.
        // An all-zero group gets scale 1.
        let w: Vec<f32> = vec![3.5, -1.0, -3.5, 2.0, 0.0, 0.0, 7.0, 1.0];
        let (q, s) = quantize_blocks(&w, 2, 4, 2);
        assert_eq!(s, vec![0.5, 0.5, 1.0, 1.0]);
        assert_eq!(q, vec![7, -2, -7, 4, 0, 0, 7, 1]);
        // Error bound: at most half a step per element.
        let w = lcg(7, 4 * 64);
        let (q, s) = quantize_blocks(&w, 4, 64, 32);
        for (i, &v) in w.iter().enumerate() {
            let sc = s[(i / 64) * 2 + (i % 64) / 32];
            assert!((q[i] as f32 * sc - v).abs() <= sc * 0.5 + 1e-7);
        }
    }
}
