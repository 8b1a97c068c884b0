//! `fold-batchnorm`: folds an inference batch norm into the layer that produces its input.
//!
//! In inference mode `nn.batch_norm` is a per-channel affine map `y = x * s + t` with
//! `s = gamma / sqrt(var + eps)` and `t = beta - mean * s`. When `x` is the single-use output of
//! a layer that is linear in a constant weight, along the batch norm's channel axis (axis 1),
//! the map moves into the weight and bias: `w' = w * s` per output channel and
//! `b' = (b - mean) * s + beta`. Handled producers (f32 weights only; other dtypes are left):
//!
//! - `nn.conv`: W `[M, C/group, k...]`, output channel `m` is W's axis 0.
//! - `nn.conv_transpose`: W `[C, M/group, k...]`; input channel `c` is in group
//!   `g = c / (C/group)`, and W's `[c, m]` slice feeds output channel `g * (M/group) + m`.
//! - `nn.gemm`: output `[rows, N]`, channel = column `n` of B' (B's axis 1, or axis 0 with
//!   `transB`); C (absent or constant) becomes `s * (beta * C - mean) + beta_bn` and `beta` 1.
//! - `nn.matmul` with a 2-D constant B and a 2-D result: B's columns are scaled and the bias
//!   is added by a new `math.add` (matmul has no bias operand).
//!
//! A conv without a bias gets one (the optional operand is appended, or a zero-element
//! placeholder is replaced). Coefficients are computed in f64 and rounded once to f32; results
//! differ from the unfolded model only by that rounding (~1e-7 relative per element).
//! New constants are placed just before the producer and keep its location; the producer's
//! location becomes the fusion of both ops' names.

use super::{
    collect_blocks, const_data, create_constant_typed, defining_op, fused_loc, has_operand, use_counts,
    Replacements,
};
use crate::pass::{Pass, PassError};
use edgec_ir::entity::SecondaryMap;
use edgec_ir::{Attr, Attrs, Function, Module, Op, OpKind, ScalarType, Tensor, TensorType, Value};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

pub struct FoldBatchNorm;

impl Pass for FoldBatchNorm {
    fn name(&self) -> &'static str {
        "fold-batchnorm"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            fold_batchnorm(f);
        }
        Ok(())
    }
}

/// The batch norm as a per-channel affine map.
struct Affine {
    /// `gamma / sqrt(var + eps)`.
    scale: Vec<f64>,
    mean: Vec<f64>,
    beta: Vec<f64>,
}

impl Affine {
    /// The new bias of a channel whose old bias is `b`.
    fn bias(&self, k: usize, b: f64) -> f64 {
        (b - self.mean[k]) * self.scale[k] + self.beta[k]
    }
}

/// An edit to apply when the block is rebuilt.
struct Fold {
    producer: Op,
    /// New ops to place just before the producer (constants).
    before_producer: Vec<Op>,
    /// New ops to place where the batch norm was (matmul's bias add).
    at_bn: Vec<Op>,
    /// The value that replaces the batch norm's result.
    value: Value,
}

/// Folds every eligible batch norm of `f`. Returns how many were folded.
pub fn fold_batchnorm(f: &mut Function) -> usize {
    let mut uses = use_counts(f);
    let mut repl = Replacements::new();
    let mut folded = 0;
    for b in collect_blocks(f) {
        let ops = f.blocks[b].ops.clone();
        let mut position: SecondaryMap<Op, Option<usize>> = SecondaryMap::with_default(None);
        for (i, &op) in ops.iter().enumerate() {
            position.set(op, Some(i));
        }
        // Looked up by op only (never iterated), so the map's order cannot reach the output.
        let mut before: HashMap<Op, Vec<Op>> = HashMap::new();
        let mut at_bn: HashMap<Op, Vec<Op>> = HashMap::new();
        for &bn in &ops {
            repl.rewrite_op(f, bn);
            let Some(x) = f.ops[bn].operands.first().copied() else { continue };
            if f.ops[bn].kind != OpKind::BatchNorm || *uses.get(x) != 1 {
                continue;
            }
            // The producer must be in this block, so that its new operands can be placed before it.
            let Some(producer) = defining_op(f, x).filter(|&p| position.get(p).is_some()) else { continue };
            let Some(fold) = try_fold(f, bn, producer) else { continue };
            folded += 1;
            let y = f.ops[bn].results[0];
            // The batch norm's users move to the folded value; the batch norm's own use of the
            // producer is gone (for matmul, the new add uses the producer instead).
            let y_uses = *uses.get(y);
            let before_uses = if fold.value == x { uses.get(x) - 1 } else { 0 };
            uses.set(fold.value, before_uses + y_uses);
            repl.replace(y, fold.value);
            before.entry(fold.producer).or_default().extend(fold.before_producer);
            at_bn.insert(bn, fold.at_bn);
        }
        if at_bn.is_empty() {
            continue;
        }
        let mut rebuilt = Vec::with_capacity(ops.len() + 2 * at_bn.len());
        for op in ops {
            if let Some(new) = before.remove(&op) {
                rebuilt.extend(new);
            }
            match at_bn.remove(&op) {
                Some(new) => rebuilt.extend(new),
                None => rebuilt.push(op),
            }
        }
        f.blocks[b].ops = rebuilt;
    }
    repl.apply(f);
    folded
}

/// The batch norm's affine map if it is in inference form with constant parameters.
fn affine(f: &Function, bn: Op) -> Option<Affine> {
    let d = &f.ops[bn];
    if d.results.len() != 1 || d.attrs.int("training_mode").unwrap_or(0) != 0 || d.operands.len() != 5 {
        return None;
    }
    let param = |i: usize| -> Option<Vec<f64>> {
        let t = const_data(f, d.operands[i])?;
        t.ty.scalar().is_float().then_some(())?;
        Some(t.to_tensor().ok()?.to_f64_vec())
    };
    let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()].iter().any(|&n| n != c) {
        return None;
    }
    let eps = d.attrs.float("epsilon").unwrap_or(1e-5);
    let scale: Vec<f64> = gamma.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
    scale.iter().all(|s| s.is_finite()).then_some(Affine { scale, mean, beta })
}

fn f32_tensor(shape: &[usize], data: Vec<f64>) -> Option<Tensor> {
    let v: Vec<f32> = data.into_iter().map(|x| x as f32).collect();
    Some(Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v).ok()?))
}

/// An f32 constant operand's shape and values.
fn f32_const(f: &Function, v: Value) -> Option<(Vec<usize>, Vec<f64>)> {
    let t = const_data(f, v)?;
    if t.ty.elem != ScalarType::F32.into() {
        return None;
    }
    Some((t.ty.static_shape()?, t.to_tensor().ok()?.to_f64_vec()))
}

fn try_fold(f: &mut Function, bn: Op, producer: Op) -> Option<Fold> {
    let x = f.ops[bn].operands[0];
    let xty = &f.values[x].ty;
    if xty.elem != ScalarType::F32.into() || xty.rank() < 2 {
        return None;
    }
    let channels = xty.dims[1].as_static()? as usize;
    let aff = affine(f, bn)?;
    if aff.scale.len() != channels || f.values[f.ops[bn].results[0]].ty != *xty {
        return None;
    }
    let loc = fused_loc(&f.ops[producer].loc, &f.ops[bn].loc);
    let fold = match f.ops[producer].kind {
        OpKind::Conv | OpKind::ConvTranspose => fold_conv(f, producer, &aff, channels)?,
        OpKind::Gemm => fold_gemm(f, producer, &aff, channels)?,
        OpKind::MatMul => fold_matmul(f, bn, producer, &aff, channels)?,
        _ => return None,
    };
    f.ops[producer].loc = loc;
    Some(fold)
}

/// Output channel of each element of a conv weight, in row-major order.
fn conv_channel_of(kind: OpKind, shape: &[usize], group: usize) -> Option<Vec<usize>> {
    let inner: usize = shape[2..].iter().product();
    let (d0, d1) = (shape[0], shape[1]);
    let mut out = Vec::with_capacity(d0 * d1 * inner);
    for i in 0..d0 {
        for j in 0..d1 {
            let ch = if kind == OpKind::Conv {
                i
            } else {
                // ConvTranspose: input channel i is in group i / (C/group); its slice j feeds
                // output channel group_index * (M/group) + j.
                if group == 0 || d0 % group != 0 {
                    return None;
                }
                (i / (d0 / group)) * d1 + j
            };
            out.extend(std::iter::repeat_n(ch, inner));
        }
    }
    Some(out)
}

fn fold_conv(f: &mut Function, conv: Op, aff: &Affine, channels: usize) -> Option<Fold> {
    let kind = f.ops[conv].kind;
    let (wshape, w) = f32_const(f, *f.ops[conv].operands.get(1)?)?;
    if wshape.len() < 2 {
        return None;
    }
    let group = usize::try_from(f.ops[conv].attrs.int("group").unwrap_or(1)).ok()?;
    let out_channels = if kind == OpKind::Conv { wshape[0] } else { wshape[1] * group };
    if out_channels != channels {
        return None;
    }
    let bias = if has_operand(f, conv, 2) {
        let (bshape, b) = f32_const(f, f.ops[conv].operands[2])?;
        (bshape == [channels]).then_some(b)?
    } else {
        vec![0.0; channels]
    };
    let chan = conv_channel_of(kind, &wshape, group)?;
    let new_w: Vec<f64> = w.iter().zip(&chan).map(|(v, &k)| v * aff.scale[k]).collect();
    let new_b: Vec<f64> = (0..channels).map(|k| aff.bias(k, bias[k])).collect();
    let loc = f.ops[conv].loc.clone();
    let wty = f.values[f.ops[conv].operands[1]].ty.clone();
    let wc = create_constant_typed(f, &f32_tensor(&wshape, new_w)?, wty, loc.clone());
    let bc = create_constant_typed(
        f,
        &f32_tensor(&[channels], new_b)?,
        TensorType::of(&[channels], ScalarType::F32),
        loc,
    );
    let (wv, bv) = (f.ops[wc].results[0], f.ops[bc].results[0]);
    let operands = &mut f.ops[conv].operands;
    operands[1] = wv;
    if operands.len() > 2 {
        operands[2] = bv;
    } else {
        operands.push(bv);
    }
    Some(Fold { producer: conv, before_producer: vec![wc, bc], at_bn: vec![], value: f.ops[conv].results[0] })
}

fn fold_gemm(f: &mut Function, gemm: Op, aff: &Affine, n: usize) -> Option<Fold> {
    let d = &f.ops[gemm];
    let (bshape, b) = f32_const(f, *d.operands.get(1)?)?;
    let trans_b = d.attrs.int("transB").unwrap_or(0) != 0;
    let beta = d.attrs.float("beta").unwrap_or(1.0);
    if bshape.len() != 2 || bshape[if trans_b { 0 } else { 1 }] != n {
        return None;
    }
    // C broadcasts to [rows, n]: keep its row count (1 or rows), widen its columns to n.
    let (crows, c) = if has_operand(f, gemm, 2) {
        let (cshape, c) = f32_const(f, d.operands[2])?;
        let (rows, cols) = match cshape.as_slice() {
            [] => (1, 1),
            [k] => (1, *k),
            [r, k] => (*r, *k),
            _ => return None,
        };
        if cols != 1 && cols != n {
            return None;
        }
        let full: Vec<f64> =
            (0..rows * n).map(|i| c[(i / n) * cols + if cols == 1 { 0 } else { i % n }]).collect();
        (rows, full)
    } else {
        (1, vec![0.0; n])
    };
    let new_b: Vec<f64> = b
        .iter()
        .enumerate()
        .map(|(i, v)| v * aff.scale[if trans_b { i / bshape[1] } else { i % n }])
        .collect();
    let new_c: Vec<f64> = c.iter().enumerate().map(|(i, &v)| aff.bias(i % n, beta * v)).collect();
    let cshape: Vec<usize> = if crows == 1 { vec![n] } else { vec![crows, n] };
    let loc = f.ops[gemm].loc.clone();
    let bty = f.values[f.ops[gemm].operands[1]].ty.clone();
    let bc = create_constant_typed(f, &f32_tensor(&bshape, new_b)?, bty, loc.clone());
    let cc =
        create_constant_typed(f, &f32_tensor(&cshape, new_c)?, TensorType::of(&cshape, ScalarType::F32), loc);
    let (bv, cv) = (f.ops[bc].results[0], f.ops[cc].results[0]);
    let d = &mut f.ops[gemm];
    d.operands[1] = bv;
    if d.operands.len() > 2 {
        d.operands[2] = cv;
    } else {
        d.operands.push(cv);
    }
    d.attrs.set("beta", Attr::Float(1.0));
    Some(Fold { producer: gemm, before_producer: vec![bc, cc], at_bn: vec![], value: f.ops[gemm].results[0] })
}

fn fold_matmul(f: &mut Function, bn: Op, mm: Op, aff: &Affine, n: usize) -> Option<Fold> {
    let y = f.ops[mm].results[0];
    let yty = f.values[y].ty.clone();
    let (bshape, b) = f32_const(f, *f.ops[mm].operands.get(1)?)?;
    // A 2-D result has the channel axis last, where B's columns land.
    if yty.rank() != 2 || bshape.len() != 2 || bshape[1] != n {
        return None;
    }
    let new_b: Vec<f64> = b.iter().enumerate().map(|(i, v)| v * aff.scale[i % n]).collect();
    let bias: Vec<f64> = (0..n).map(|k| aff.bias(k, 0.0)).collect();
    let loc = f.ops[mm].loc.clone();
    let bty = f.values[f.ops[mm].operands[1]].ty.clone();
    let bc = create_constant_typed(f, &f32_tensor(&bshape, new_b)?, bty, loc.clone());
    let bv = f.ops[bc].results[0];
    f.ops[mm].operands[1] = bv;
    let bn_loc = f.ops[bn].loc.clone();
    let biasc = create_constant_typed(
        f,
        &f32_tensor(&[n], bias)?,
        TensorType::of(&[n], ScalarType::F32),
        bn_loc.clone(),
    );
    let biasv = f.ops[biasc].results[0];
    let add = f.create_op(OpKind::Add, vec![y, biasv], vec![yty], Attrs::new(), bn_loc);
    let value = f.ops[add].results[0];
    Some(Fold { producer: mm, before_producer: vec![bc], at_bn: vec![biasc, add], value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::testutil::{check_differential, run_pipeline, Rng};
    use edgec_ir::parser::parse_module;

    /// A constant of the given shape with pseudo-random values in `[lo, lo + 2)`.
    fn dense(name: &str, shape: &[usize], seed: u64, lo: f64) -> String {
        let mut rng = Rng::new(seed);
        let n: usize = shape.iter().product();
        let vals: Vec<String> =
            (0..n).map(|_| format!("{:?}", lo + ((rng.next_u64() >> 11) % 1024) as f64 / 512.0)).collect();
        let ty: String = shape.iter().map(|d| format!("{d}x")).collect();
        format!(
            "  %{name} = builtin.constant {{value = dense<[{}]> : tensor<{ty}f32>}} : tensor<{ty}f32> loc(\"{name}\")\n",
            vals.join(", ")
        )
    }

    /// Batch-norm parameters for `c` channels (positive variances).
    fn bn_params(c: usize) -> String {
        [("gamma", -1.0), ("beta", -1.0), ("mean", -1.0), ("var", 0.1)]
            .iter()
            .enumerate()
            .map(|(i, (n, lo))| dense(n, &[c], 100 + i as u64, *lo))
            .collect()
    }

    fn folded(src: &str) -> String {
        let out = check_differential(src, "fold-batchnorm,dce", Some(1e-5));
        assert!(!out.contains("nn.batch_norm"), "{out}");
        out
    }

    #[test]
    fn conv_with_and_without_bias_grouped() {
        let src = format!(
            "func @f(%x: tensor<1x4x5x5xf32>) -> (\"y\": tensor<1x6x3x3xf32>, \"z\": tensor<1x6x5x5xf32>) {{\n{}{}{}\
  %c = nn.conv %x, %w {{group = 2}} : tensor<1x6x3x3xf32> loc(\"conv\")
  %y = nn.batch_norm %c, %gamma, %beta, %mean, %var {{epsilon = 0.001}} : tensor<1x6x3x3xf32> loc(\"bn\")
  %c2 = nn.conv %x, %w2, %b2 {{pads = [1, 1, 1, 1]}} : tensor<1x6x5x5xf32> loc(\"conv2\")
  %z = nn.batch_norm %c2, %gamma, %beta, %mean, %var : tensor<1x6x5x5xf32> loc(\"bn2\")
  func.return %y, %z
}}
",
            dense("w", &[6, 2, 3, 3], 1, -1.0),
            dense("w2", &[6, 4, 3, 3], 2, -1.0) + &dense("b2", &[6], 3, -1.0),
            bn_params(6)
        );
        let out = folded(&src);
        assert!(
            out.contains("nn.conv %x, %0, %1 {group = 2} : tensor<1x6x3x3xf32> loc(fused[\"conv\", \"bn\"])"),
            "{out}"
        );
        assert!(out.contains("nn.conv %x, %2, %3 {pads = [1, 1, 1, 1]}"), "{out}");
    }

    #[test]
    fn conv_transpose_grouped_without_bias() {
        // W [C=4, M/group=3, 2, 2] with group 2: 6 output channels, channel g*3+m.
        let src = format!(
            "func @f(%x: tensor<1x4x3x3xf32>) -> (\"y\": tensor<1x6x6x6xf32>) {{\n{}{}\
  %c = nn.conv_transpose %x, %w {{group = 2, strides = [2, 2]}} : tensor<1x6x6x6xf32> loc(\"deconv\")
  %y = nn.batch_norm %c, %gamma, %beta, %mean, %var : tensor<1x6x6x6xf32> loc(\"bn\")
  func.return %y
}}
",
            dense("w", &[4, 3, 2, 2], 4, -1.0),
            bn_params(6)
        );
        folded(&src);
    }

    #[test]
    fn gemm_and_matmul() {
        let src = format!(
            "func @f(%x: tensor<2x3xf32>) -> (\"y\": tensor<2x4xf32>, \"z\": tensor<2x4xf32>, \"u\": tensor<2x4xf32>) {{\n{}{}{}{}\
  %g = nn.gemm %x, %wt, %bias {{beta = 0.5, transB = 1, alpha = 2.0}} : tensor<2x4xf32> loc(\"gemm\")
  %y = nn.batch_norm %g, %gamma, %beta, %mean, %var : tensor<2x4xf32> loc(\"bn\")
  %g2 = nn.gemm %x, %w : tensor<2x4xf32> loc(\"gemm2\")
  %u = nn.batch_norm %g2, %gamma, %beta, %mean, %var : tensor<2x4xf32> loc(\"bn2\")
  %m = nn.matmul %x, %w : tensor<2x4xf32> loc(\"mm\")
  %z = nn.batch_norm %m, %gamma, %beta, %mean, %var : tensor<2x4xf32> loc(\"bn3\")
  func.return %y, %z, %u
}}
",
            dense("wt", &[4, 3], 5, -1.0),
            dense("w", &[3, 4], 6, -1.0),
            dense("bias", &[2, 1], 7, -1.0),
            bn_params(4)
        );
        let out = folded(&src);
        assert!(out.contains("{alpha = 2.0, beta = 1.0, transB = 1}"), "{out}");
        assert!(out.contains("math.add") && out.contains("loc(\"bn3\")"), "{out}");
    }

    #[test]
    fn leaves_unsafe_cases() {
        // The conv output has a second use, and the matmul result is 3-D (channel axis is not
        // the weight's column axis): neither folds.
        let src = format!(
            "func @f(%x: tensor<1x4x5x5xf32>, %s: tensor<2x3x3xf32>) -> (\"y\": tensor<1x6x3x3xf32>, \"c\": tensor<1x6x3x3xf32>, \"z\": tensor<2x3x3xf32>) {{\n{}{}{}\
  %c = nn.conv %x, %w : tensor<1x6x3x3xf32> loc(\"conv\")
  %y = nn.batch_norm %c, %gamma, %beta, %mean, %var : tensor<1x6x3x3xf32> loc(\"bn\")
  %m = nn.matmul %s, %k : tensor<2x3x3xf32> loc(\"mm\")
  %z = nn.batch_norm %m, %g3, %g3, %g3, %g3 : tensor<2x3x3xf32> loc(\"bn3\")
  func.return %y, %c, %z
}}
",
            dense("w", &[6, 4, 3, 3], 8, -1.0),
            dense("k", &[3, 3], 9, -1.0) + &dense("g3", &[3], 10, 0.5),
            bn_params(6)
        );
        let mut m = parse_module(&src).unwrap();
        let out = run_pipeline(&mut m, "fold-batchnorm");
        assert_eq!(out.matches("nn.batch_norm").count(), 2, "{out}");
        assert_eq!(fold_batchnorm(&mut m.functions[0]), 0);
    }

    #[test]
    fn chained_batch_norms_fold_twice() {
        let src = format!(
            "func @f(%x: tensor<1x4x5x5xf32>) -> (\"y\": tensor<1x6x3x3xf32>) {{\n{}{}\
  %c = nn.conv %x, %w : tensor<1x6x3x3xf32> loc(\"conv\")
  %y1 = nn.batch_norm %c, %gamma, %beta, %mean, %var : tensor<1x6x3x3xf32> loc(\"bn1\")
  %y = nn.batch_norm %y1, %var, %mean, %beta, %var : tensor<1x6x3x3xf32> loc(\"bn2\")
  func.return %y
}}
",
            dense("w", &[6, 4, 3, 3], 11, -1.0),
            bn_params(6)
        );
        let out = folded(&src);
        assert!(out.contains("loc(fused[\"conv\", \"bn1\", \"bn2\"])"), "{out}");
    }
}
