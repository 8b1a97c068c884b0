//! `quantize-int4-weights`: group-wise int4 weight-only quantization for LLM-style models.
//!
//! Rewrites products with a constant f32 weight into `q.matmul_nbits` (see
//! `edgec_ir::ops::quant_nbits`), whose weight is an `i4 [N, K]` constant (two elements per
//! byte) with one f32 scale per `group_size` consecutive elements along K:
//!
//! - `nn.matmul x, B` with x of rank ≥ 1 and B a 2-D constant `[K, N]` (stored transposed), or
//!   `shape.transpose C {perm = [1, 0]}` of a constant `C [N, K]` (used as it is: this is how
//!   exporters write a tied LM head);
//! - `nn.gemm A, B, C?` with `transA = 0`, B a 2-D constant (`transB` either way, or a transpose
//!   of a constant as above), C absent or a constant `[N]` / `[1, N]` (becomes the bias, times
//!   `beta`); `alpha` is folded into the scales.
//!
//! Only weights with `K ≥ group_size` and even `K` are quantized (rows of whole bytes); the rest
//! stay float. Quantization is symmetric round-to-nearest: per group `scale = max|w| / 7`
//! (1 for an all-zero group), `q = clamp(round_half_even(w / scale), −8, 7)`.
//!
//! Embeddings: a `shape.gather` (axis 0) of a 2-D f32 constant table `[V, D]` with run-time
//! indices becomes `q.gather_nbits`. When the table is also a quantized weight — the same
//! constant, or a constant holding exactly its transpose (a tied LM head that the exporter
//! folded into a second copy) — the gather reads that weight's int4 table and scales, so the
//! table is stored once. Other tables with `D ≥ group_size` (even `D`) get their own int4 table.
//!
//! New constants go to the top of the body; the replaced float weights become unused and `dce`
//! removes them. Each weight is quantized once however many products use it.

use crate::canon::{const_data, create_constant_typed, defining_op, has_operand, Replacements};
use crate::pass::{Pass, PassError};
use edgec_ir::ops::quant_nbits::{num_groups, quantize_blocks};
use edgec_ir::{Attr, Attrs, Function, Loc, Module, Op, OpKind, ScalarType, Tensor, TensorType, Value};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// The default group size (`--group-size`): 64 keeps a 4-byte scale per 32 bytes of weights
/// (0.5625 bytes per weight, 14.1% of f32).
pub const DEFAULT_GROUP_SIZE: usize = 64;

pub struct QuantizeInt4Weights {
    pub group_size: usize,
}

impl Default for QuantizeInt4Weights {
    fn default() -> Self {
        QuantizeInt4Weights { group_size: DEFAULT_GROUP_SIZE }
    }
}

impl Pass for QuantizeInt4Weights {
    fn name(&self) -> &'static str {
        "quantize-int4-weights"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        let g = self.group_size;
        if g < 2 || !g.is_power_of_two() {
            return Err(PassError::Failed {
                pass: self.name().into(),
                message: format!("group size {g} must be a power of two of at least 2"),
            });
        }
        for f in &mut module.functions {
            quantize_function(f, g);
        }
        Ok(())
    }
}

/// A quantized weight: the i4 `[N, K]` constant, its scales, and the f32 values it came from
/// (row-major `[N, K]`, to recognize a transposed copy of an embedding table).
struct Quantized {
    w: Value,
    scales: Value,
    /// The scales' multiplier this entry was made with (`alpha`); tables are shared only at 1.
    alpha: f32,
    n: usize,
    k: usize,
    values: Vec<f32>,
}

/// Where a weight's `[N, K]` values come from: a constant value, read transposed or not.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    source: Value,
    /// The constant is `[K, N]` and must be transposed.
    transpose: bool,
    alpha_bits: u32,
}

struct Cx {
    g: usize,
    table: HashMap<Key, usize>,
    quantized: Vec<Quantized>,
    new_consts: Vec<Op>,
}

impl Cx {
    /// The quantized form of the f32 2-D constant `source` read as `[N, K]`.
    fn weight(&mut self, f: &mut Function, source: Value, transpose: bool, alpha: f32) -> Option<usize> {
        let key = Key { source, transpose, alpha_bits: alpha.to_bits() };
        if let Some(&i) = self.table.get(&key) {
            return Some(i);
        }
        let c = const_data(f, source)?;
        if c.ty.elem != ScalarType::F32.into() || c.ty.rank() != 2 {
            return None;
        }
        let shape = c.ty.static_shape()?;
        let Ok(Tensor::F32(a)) = c.to_tensor() else { return None };
        let (n, k) = if transpose { (shape[1], shape[0]) } else { (shape[0], shape[1]) };
        if k < self.g || !k.is_multiple_of(2) || n == 0 {
            return None;
        }
        let values: Vec<f32> =
            if transpose { a.t().iter().copied().collect() } else { a.iter().copied().collect() };
        let loc = f.ops[defining_op(f, source)?].loc.clone();
        let i = self.add(f, values, n, k, alpha, loc);
        self.table.insert(key, i);
        Some(i)
    }

    fn add(&mut self, f: &mut Function, values: Vec<f32>, n: usize, k: usize, alpha: f32, loc: Loc) -> usize {
        let g = self.g;
        let (q, mut s) = quantize_blocks(&values, n, k, g);
        if alpha != 1.0 {
            s.iter_mut().for_each(|v| *v *= alpha);
        }
        let wt = Tensor::I4(ArrayD::from_shape_vec(IxDyn(&[n, k]), q).expect("n*k values"));
        let groups = num_groups(k, g);
        let st = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[n, groups]), s).expect("n*groups scales"));
        let wop = create_constant_typed(f, &wt, TensorType::of(&[n, k], ScalarType::I4), loc.clone());
        let sop = create_constant_typed(f, &st, TensorType::of(&[n, groups], ScalarType::F32), loc);
        self.new_consts.push(wop);
        self.new_consts.push(sop);
        self.quantized.push(Quantized {
            w: f.ops[wop].results[0],
            scales: f.ops[sop].results[0],
            alpha,
            n,
            k,
            values,
        });
        self.quantized.len() - 1
    }

    fn attrs(&self) -> Attrs {
        Attrs::new().with("group_size", Attr::Int(self.g as i64)).with("bits", Attr::Int(4))
    }
}

/// The constant behind a weight operand: itself, or the constant under a 2-D `[1, 0]` transpose
/// (which flips `transposed`).
fn weight_source(f: &Function, v: Value, transposed: bool) -> Option<(Value, bool)> {
    if const_data(f, v).is_some() {
        return Some((v, transposed));
    }
    let op = defining_op(f, v)?;
    let d = &f.ops[op];
    if d.kind == OpKind::Transpose
        && d.attrs.ints("perm") == Some(&[1, 0])
        && const_data(f, d.operands[0]).is_some()
    {
        return Some((d.operands[0], !transposed));
    }
    None
}

/// A constant f32 bias `[N]` or `[1, N]` times `beta`, as a new `[N]` constant.
fn bias_const(f: &mut Function, cx: &mut Cx, v: Value, n: usize, beta: f32) -> Option<Value> {
    let c = const_data(f, v)?;
    let shape = c.ty.static_shape()?;
    if c.ty.elem != ScalarType::F32.into() || !(shape == [n] || shape == [1, n]) {
        return None;
    }
    if shape == [n] && beta == 1.0 {
        return Some(v);
    }
    let Ok(Tensor::F32(a)) = c.to_tensor() else { return None };
    let vals: Vec<f32> = a.iter().map(|x| x * beta).collect();
    let t = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[n]), vals).ok()?);
    let loc = f.ops[defining_op(f, v)?].loc.clone();
    let op = create_constant_typed(f, &t, TensorType::of(&[n], ScalarType::F32), loc);
    cx.new_consts.push(op);
    Some(f.ops[op].results[0])
}

/// The replacement `q.matmul_nbits` of a matmul or gemm, if it qualifies.
fn rewrite_product(f: &mut Function, cx: &mut Cx, op: Op) -> Option<Op> {
    let d = &f.ops[op];
    let (x, b) = (*d.operands.first()?, *d.operands.get(1)?);
    let rty = f.values[d.results[0]].ty.clone();
    let xty = f.values[x].ty.clone();
    if xty.elem != ScalarType::F32.into() || rty.elem != ScalarType::F32.into() || xty.rank() == 0 {
        return None;
    }
    let (transposed, alpha, beta, c) = match d.kind {
        // matmul's B is [K, N]: the [N, K] weight is its transpose.
        OpKind::MatMul => (true, 1.0f32, 1.0f32, None),
        OpKind::Gemm => {
            if d.attrs.int("transA").unwrap_or(0) != 0 || xty.rank() != 2 {
                return None;
            }
            let tb = d.attrs.int("transB").unwrap_or(0) != 0;
            let alpha = d.attrs.float("alpha").unwrap_or(1.0) as f32;
            let beta = d.attrs.float("beta").unwrap_or(1.0) as f32;
            let c = if has_operand(f, op, 2) && beta != 0.0 { Some(d.operands[2]) } else { None };
            (!tb, alpha, beta, c)
        }
        _ => return None,
    };
    if f.values[b].ty.rank() != 2 {
        return None;
    }
    let (source, transpose) = weight_source(f, b, transposed)?;
    // Check the bias before quantizing anything.
    let n =
        if transposed { f.values[b].ty.dims[1].as_static()? } else { f.values[b].ty.dims[0].as_static()? }
            as usize;
    if let Some(c) = c {
        let cd = const_data(f, c)?;
        let shape = cd.ty.static_shape()?;
        if cd.ty.elem != ScalarType::F32.into() || !(shape == [n] || shape == [1, n]) {
            return None;
        }
    }
    let i = cx.weight(f, source, transpose, alpha)?;
    let mut operands = vec![x, cx.quantized[i].w, cx.quantized[i].scales];
    if let Some(c) = c {
        operands.push(bias_const(f, cx, c, n, beta)?);
    }
    let loc = f.ops[op].loc.clone();
    let attrs = cx.attrs();
    Some(f.create_op(OpKind::MatMulNBits, operands, vec![rty], attrs, loc))
}

/// The replacement `q.gather_nbits` of an embedding lookup, if it qualifies.
fn rewrite_gather(f: &mut Function, cx: &mut Cx, op: Op) -> Option<Op> {
    let d = &f.ops[op];
    if d.attrs.int("axis").unwrap_or(0) != 0 || d.operands.len() != 2 {
        return None;
    }
    let (table, idx) = (d.operands[0], d.operands[1]);
    let rty = f.values[d.results[0]].ty.clone();
    if const_data(f, idx).is_some() || !matches!(f.values[idx].ty.scalar(), ScalarType::I64 | ScalarType::I32)
    {
        return None;
    }
    let c = const_data(f, table)?;
    if c.ty.elem != ScalarType::F32.into() || c.ty.rank() != 2 {
        return None;
    }
    let shape = c.ty.static_shape()?;
    let key = Key { source: table, transpose: false, alpha_bits: 1f32.to_bits() };
    let i = match cx.table.get(&key) {
        Some(&i) => i,
        None => {
            // A quantized weight holding exactly this table's values (a tied head's folded
            // transpose): share it.
            let vals = || match c.to_tensor() {
                Ok(Tensor::F32(a)) => Some(a.iter().copied().collect::<Vec<f32>>()),
                _ => None,
            };
            let mut found = None;
            let mut mine: Option<Vec<f32>> = None;
            for (j, q) in cx.quantized.iter().enumerate() {
                if q.alpha == 1.0 && q.n == shape[0] && q.k == shape[1] {
                    let v = mine.get_or_insert_with(|| vals().unwrap_or_default());
                    if v.len() == q.values.len()
                        && v.iter().zip(&q.values).all(|(a, b)| a.to_bits() == b.to_bits())
                    {
                        found = Some(j);
                        break;
                    }
                }
            }
            match found {
                Some(j) => {
                    cx.table.insert(key, j);
                    j
                }
                None => cx.weight(f, table, false, 1.0)?,
            }
        }
    };
    let operands = vec![cx.quantized[i].w, cx.quantized[i].scales, idx];
    let loc = f.ops[op].loc.clone();
    let attrs = cx.attrs();
    Some(f.create_op(OpKind::GatherNBits, operands, vec![rty], attrs, loc))
}

/// Quantizes the eligible products and embedding lookups of `f`'s body. Returns how many ops
/// were rewritten.
pub fn quantize_function(f: &mut Function, group_size: usize) -> usize {
    let mut cx = Cx { g: group_size, table: HashMap::new(), quantized: Vec::new(), new_consts: Vec::new() };
    let ops = f.blocks[f.body].ops.clone();
    let mut replaced: HashMap<Op, Op> = HashMap::new();
    let mut repl = Replacements::new();
    // Products first, so that an embedding table can share a head's int4 weight.
    for kinds in [&[OpKind::MatMul, OpKind::Gemm][..], &[OpKind::Gather][..]] {
        for &op in &ops {
            if !kinds.contains(&f.ops[op].kind) || f.ops[op].results.len() != 1 {
                continue;
            }
            let new = if f.ops[op].kind == OpKind::Gather {
                rewrite_gather(f, &mut cx, op)
            } else {
                rewrite_product(f, &mut cx, op)
            };
            if let Some(new) = new {
                repl.replace(f.ops[op].results[0], f.ops[new].results[0]);
                replaced.insert(op, new);
            }
        }
    }
    if replaced.is_empty() {
        return 0;
    }
    let mut rebuilt = cx.new_consts.clone();
    rebuilt.extend(ops.iter().map(|op| replaced.get(op).copied().unwrap_or(*op)));
    f.blocks[f.body].ops = rebuilt;
    repl.apply(f);
    replaced.len()
}
