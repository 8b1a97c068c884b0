//! `simplify`: algebraic identities and data-movement chain folding.
//!
//! Every rewrite applies only when the replacement has exactly the type of the value it
//! replaces (same element type and dims), so broadcasting can never be lost: `x + 0` with a
//! `[4]`-shaped `x` and a `[2, 4]` zero is left alone, because the sum is `[2, 4]`. A constant
//! operand counts as the identity element when all its elements are (a scalar, or a splat of
//! any shape).
//!
//! | pattern | becomes | condition |
//! |---|---|---|
//! | `x + c`, `c + x` | `x` | integer `c == 0`, or float `c` all `-0.0` (see below) |
//! | `x - c` | `x` | integer `c == 0`, or float `c` all `+0.0` |
//! | `x * 1`, `1 * x`, `x / 1` | `x` | |
//! | `x ^ 1` | `x` | float `x`, or integer `x` with an integer exponent (an integer base with a float exponent is computed through f64, which may round) |
//! | `cast(x)` to `x`'s element type | `x` | |
//! | `neg(neg(x))` | `x` | |
//! | `transpose(x)` with the identity perm | `x` | |
//! | `transpose(transpose(x))` | one transpose with the composed perm, or `x` | |
//! | a chain of reshape/flatten/squeeze/unsqueeze | one `shape.reshape` with a constant shape | the result type is static |
//! | reshape-like, `expand` to the operand's own type | `x` | no `?` dims |
//! | `slice` selecting everything | `x` | constant starts/ends/axes/steps, steps all 1 |
//! | inference `dropout` (one result, `training_mode` absent or false) | `x` | |
//!
//! Signed zeros: `-0.0 + (+0.0)` is `+0.0`, so rewriting `x + 0.0` to `x` would give `-0.0`
//! where the model computes `+0.0`. This pass keeps results bit-exact instead: `x + c` folds
//! only when `c` is `-0.0` (`x + (-0.0) == x` for every `x`, `-0.0` included), and `x - c` only
//! when `c` is `+0.0`. The common `x + 0.0` therefore stays.
//!
//! Rewrites run in block order with operands already rewritten, so chains collapse in one
//! sweep; the pass still repeats sweeps until nothing changes (bounded by [`MAX_SWEEPS`]).

use super::{collect_blocks, const_data, create_constant, defining_op, fused_loc, has_operand, Replacements};
use crate::pass::{Pass, PassError};
use edgec_ir::types::ElemType;
use edgec_ir::{
    Attr, Attrs, ConstTensor, Dim, Function, Module, Op, OpKind, ScalarType, Tensor, TensorType, Value,
};

/// Upper bound on sweeps; each sweep that changes something shortens the graph, so this is
/// only a guard against a rewrite cycle.
pub const MAX_SWEEPS: usize = 8;

/// Constants larger than this are not inspected for identity elements (a splat that large is
/// rare, and reading it on every sweep would cost more than the rewrite saves).
const MAX_INSPECTED_ELEMENTS: u64 = 1 << 16;

pub struct Simplify;

impl Pass for Simplify {
    fn name(&self) -> &'static str {
        "simplify"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            simplify(f);
        }
        Ok(())
    }
}

/// Simplifies `f` to a fixed point. Returns how many rewrites were applied.
pub fn simplify(f: &mut Function) -> usize {
    let mut total = 0;
    for _ in 0..MAX_SWEEPS {
        let n = sweep(f);
        total += n;
        if n == 0 {
            break;
        }
    }
    total
}

/// What to do with one op.
enum Rewrite {
    /// Replace the op's single result by this value.
    Forward(Value),
    /// Insert these new ops in its place, and replace its result by the value.
    Replace(Vec<Op>, Value),
}

fn sweep(f: &mut Function) -> usize {
    let mut repl = Replacements::new();
    let mut changed = 0;
    for b in collect_blocks(f) {
        let ops = std::mem::take(&mut f.blocks[b].ops);
        let mut kept = Vec::with_capacity(ops.len());
        for op in ops {
            repl.rewrite_op(f, op);
            let result = f.ops[op].results.first().copied();
            match (rewrite(f, op), result) {
                (Some(Rewrite::Forward(v)), Some(r)) => {
                    repl.replace(r, v);
                    changed += 1;
                }
                (Some(Rewrite::Replace(new_ops, v)), Some(r)) => {
                    kept.extend(new_ops);
                    repl.replace(r, v);
                    changed += 1;
                }
                _ => kept.push(op),
            }
        }
        f.blocks[b].ops = kept;
    }
    repl.apply(f);
    changed
}

fn ty(f: &Function, v: Value) -> &TensorType {
    &f.values[v].ty
}

/// `Forward(x)` if `x` has exactly the type of `op`'s result.
fn forward_if_same_type(f: &Function, op: Op, x: Value) -> Option<Rewrite> {
    let r = f.ops[op].results[0];
    (ty(f, x) == ty(f, r)).then_some(Rewrite::Forward(x))
}

fn has_unknown_dims(t: &TensorType) -> bool {
    t.dims.iter().any(|d| matches!(d, Dim::Unknown))
}

fn rewrite(f: &mut Function, op: Op) -> Option<Rewrite> {
    let d = &f.ops[op];
    if d.results.len() != 1 || !d.regions.is_empty() {
        return None;
    }
    let operands = d.operands.clone();
    match d.kind {
        OpKind::Add => [(0, 1), (1, 0)]
            .into_iter()
            .find_map(|(x, c)| identity_operand(f, op, &operands, x, c, Identity::AddZero)),
        OpKind::Sub => identity_operand(f, op, &operands, 0, 1, Identity::SubZero),
        OpKind::Mul => [(0, 1), (1, 0)]
            .into_iter()
            .find_map(|(x, c)| identity_operand(f, op, &operands, x, c, Identity::One)),
        OpKind::Div => identity_operand(f, op, &operands, 0, 1, Identity::One),
        OpKind::Pow => {
            let (x, e) = (*operands.first()?, *operands.get(1)?);
            // An integer base with a float exponent goes through f64 and may round.
            if ty(f, x).scalar().is_int() && !ty(f, e).scalar().is_int() {
                return None;
            }
            identity_operand(f, op, &operands, 0, 1, Identity::One)
        }
        OpKind::Cast => {
            let x = *operands.first()?;
            let to = f.ops[op].attrs.ty("to")?;
            if ty(f, x).elem != ElemType::Scalar(to) {
                return None;
            }
            forward_if_same_type(f, op, x)
        }
        OpKind::Neg => {
            let inner = defining_op(f, *operands.first()?)?;
            if f.ops[inner].kind != OpKind::Neg {
                return None;
            }
            forward_if_same_type(f, op, *f.ops[inner].operands.first()?)
        }
        OpKind::Transpose => simplify_transpose(f, op),
        OpKind::Reshape | OpKind::Flatten | OpKind::Squeeze | OpKind::Unsqueeze => simplify_reshape(f, op),
        OpKind::Expand => {
            let x = *operands.first()?;
            if has_unknown_dims(ty(f, x)) {
                return None;
            }
            forward_if_same_type(f, op, x)
        }
        OpKind::Slice => simplify_slice(f, op),
        OpKind::Dropout => {
            let x = *operands.first()?;
            let training = if has_operand(f, op, 2) {
                match const_data(f, operands[2])?.to_tensor().ok()? {
                    Tensor::Bool(t) => t.iter().any(|&b| b),
                    _ => return None,
                }
            } else {
                false
            };
            if training {
                return None;
            }
            forward_if_same_type(f, op, x)
        }
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    /// Right identity of `+`: integer 0, float `-0.0`.
    AddZero,
    /// Right identity of `-`: integer 0, float `+0.0`.
    SubZero,
    One,
}

/// `Forward(operands[x])` if `operands[c]` is a constant whose every element is `id` and the
/// result has `operands[x]`'s type.
fn identity_operand(
    f: &Function,
    op: Op,
    operands: &[Value],
    x: usize,
    c: usize,
    id: Identity,
) -> Option<Rewrite> {
    let (xv, cv) = (*operands.get(x)?, *operands.get(c)?);
    let xt = ty(f, xv);
    // Quantized values mean `scale * (q - zp)`, so their identity elements are not 0 and 1;
    // bool arithmetic is not defined.
    let (ElemType::Scalar(xs), ElemType::Scalar(cs)) = (&xt.elem, &ty(f, cv).elem) else { return None };
    if *xs == ScalarType::Bool || *cs == ScalarType::Bool {
        return None;
    }
    let data = const_data(f, cv)?;
    if data.ty.num_elements()? > MAX_INSPECTED_ELEMENTS || data.ty.num_elements()? == 0 {
        return None;
    }
    let vals = data.to_tensor().ok()?.to_f64_vec();
    let float = cs.is_float();
    let ok = vals.iter().all(|&v| match id {
        Identity::One => v == 1.0,
        Identity::AddZero => v == 0.0 && (!float || v.is_sign_negative()),
        Identity::SubZero => v == 0.0 && (!float || v.is_sign_positive()),
    });
    if !ok {
        return None;
    }
    forward_if_same_type(f, op, xv)
}

/// The permutation of a transpose (default: reversed axes), if valid for `rank`.
fn transpose_perm(f: &Function, op: Op, rank: usize) -> Option<Vec<usize>> {
    let perm: Vec<usize> = match f.ops[op].attrs.ints("perm") {
        Some(p) => p.iter().map(|&a| usize::try_from(a).ok()).collect::<Option<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&a| a >= rank || std::mem::replace(&mut seen[a], true)) {
        return None;
    }
    Some(perm)
}

fn is_identity(perm: &[usize]) -> bool {
    perm.iter().enumerate().all(|(i, &p)| i == p)
}

fn simplify_transpose(f: &mut Function, op: Op) -> Option<Rewrite> {
    let x = *f.ops[op].operands.first()?;
    let rank = ty(f, x).rank();
    let perm = transpose_perm(f, op, rank)?;
    if is_identity(&perm) {
        return forward_if_same_type(f, op, x);
    }
    let inner = defining_op(f, x)?;
    if f.ops[inner].kind != OpKind::Transpose {
        return None;
    }
    let y = *f.ops[inner].operands.first()?;
    let inner_perm = transpose_perm(f, inner, rank)?;
    // Result axis i is x's axis perm[i], which is y's axis inner_perm[perm[i]].
    let composed: Vec<usize> = perm.iter().map(|&p| inner_perm[p]).collect();
    if is_identity(&composed) {
        return forward_if_same_type(f, op, y);
    }
    let r = f.ops[op].results[0];
    let rty = ty(f, r).clone();
    let loc = fused_loc(&f.ops[inner].loc, &f.ops[op].loc);
    let attrs = Attrs::new().with("perm", Attr::Ints(composed.iter().map(|&a| a as i64).collect()));
    let t = f.create_op(OpKind::Transpose, vec![y], vec![rty], attrs, loc);
    let v = f.ops[t].results[0];
    Some(Rewrite::Replace(vec![t], v))
}

fn is_reshape_like(k: OpKind) -> bool {
    matches!(k, OpKind::Reshape | OpKind::Flatten | OpKind::Squeeze | OpKind::Unsqueeze)
}

fn simplify_reshape(f: &mut Function, op: Op) -> Option<Rewrite> {
    let x = *f.ops[op].operands.first()?;
    let r = f.ops[op].results[0];
    // Same dims in the same order, none unknown: the row-major data is unchanged.
    if !has_unknown_dims(ty(f, x)) && ty(f, x) == ty(f, r) {
        return Some(Rewrite::Forward(x));
    }
    let inner = defining_op(f, x)?;
    if !is_reshape_like(f.ops[inner].kind) {
        return None;
    }
    let y = *f.ops[inner].operands.first()?;
    let rty = ty(f, r).clone();
    // Per-axis quantization parameters would have to follow the axis through the chain.
    if !matches!(rty.elem, ElemType::Scalar(_)) || ty(f, y).elem != rty.elem {
        return None;
    }
    if !has_unknown_dims(ty(f, y)) && *ty(f, y) == rty {
        return Some(Rewrite::Forward(y));
    }
    let shape = rty.static_shape()?;
    let dims: Vec<i64> = shape.iter().map(|&n| n as i64).collect();
    let loc = fused_loc(&f.ops[inner].loc, &f.ops[op].loc);
    let target =
        Tensor::I64(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[dims.len()]), dims.clone()).ok()?);
    let c = create_constant(f, ConstTensor::from_tensor(&target), loc.clone());
    let cv = f.ops[c].results[0];
    // With a zero-size dim, `allowzero` keeps the 0 literal instead of copying the input dim.
    let attrs = if dims.contains(&0) { Attrs::new().with("allowzero", Attr::Int(1)) } else { Attrs::new() };
    let reshape = f.create_op(OpKind::Reshape, vec![y, cv], vec![rty], attrs, loc);
    let v = f.ops[reshape].results[0];
    Some(Rewrite::Replace(vec![c, reshape], v))
}

/// A slice whose constant parameters select every element, in order.
fn simplify_slice(f: &Function, op: Op) -> Option<Rewrite> {
    let d = &f.ops[op];
    let x = *d.operands.first()?;
    let xt = ty(f, x);
    let rank = xt.rank() as i64;
    let ints = |i: usize| -> Option<Option<Vec<i64>>> {
        if !has_operand(f, op, i) {
            return Some(None);
        }
        Some(Some(const_data(f, d.operands[i])?.to_tensor().ok()?.to_i64_vec()?))
    };
    let starts = ints(1)??;
    let ends = ints(2)??;
    let axes = ints(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = ints(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return None;
    }
    for (((&s, &e), &a), &st) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
        let a = if a < 0 { a + rank } else { a };
        if st != 1 || !(0..rank).contains(&a) {
            return None;
        }
        let full = match xt.dims[a as usize] {
            Dim::Static(n) => {
                let n = i64::try_from(n).ok()?;
                let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(n) };
                clamp(s) == 0 && clamp(e) == n
            }
            // Without the extent, only the open-ended `0:INT64_MAX` is known to be everything.
            _ => s == 0 && e == i64::MAX,
        };
        if !full {
            return None;
        }
    }
    if has_unknown_dims(xt) {
        return None;
    }
    forward_if_same_type(f, op, x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::testutil::{check_differential, run_pipeline};
    use edgec_ir::parser::parse_module;

    fn simplified(src: &str) -> String {
        check_differential(src, "simplify,dce", None)
    }

    #[test]
    fn arithmetic_identities() {
        let src = r#"
func @f(%x: tensor<2x3xf32>, %i: tensor<3xi64>) -> ("a": tensor<2x3xf32>, "b": tensor<3xi64>, "c": tensor<2x3xf32>) {
  %nz = builtin.constant {value = dense<[-0.0]> : tensor<f32>} : tensor<f32>
  %pz = builtin.constant {value = dense<[0.0]> : tensor<f32>} : tensor<f32>
  %one = builtin.constant {value = dense<[1.0, 1.0, 1.0]> : tensor<3xf32>} : tensor<3xf32>
  %ione = builtin.constant {value = dense<[1]> : tensor<i64>} : tensor<i64>
  %izero = builtin.constant {value = dense<[0, 0, 0]> : tensor<3xi64>} : tensor<3xi64>
  %a1 = math.add %x, %nz : tensor<2x3xf32>
  %a2 = math.add %nz, %a1 : tensor<2x3xf32>
  %a3 = math.sub %a2, %pz : tensor<2x3xf32>
  %a4 = math.mul %one, %a3 : tensor<2x3xf32>
  %a5 = math.div %a4, %one : tensor<2x3xf32>
  %a6 = math.pow %a5, %ione : tensor<2x3xf32>
  %a7 = math.neg %a6 : tensor<2x3xf32>
  %a8 = math.neg %a7 : tensor<2x3xf32>
  %a9 = math.cast %a8 {to = f32} : tensor<2x3xf32>
  %b1 = math.add %izero, %i : tensor<3xi64>
  %b2 = math.mul %b1, %ione : tensor<3xi64>
  %b3 = math.pow %b2, %ione : tensor<3xi64>
  %c1 = math.add %x, %pz : tensor<2x3xf32>
  func.return %a9, %b3, %c1
}
"#;
        let out = simplified(src);
        // Everything folds to the parameters except `x + (+0.0)`, which would lose a -0.0.
        assert!(out.contains("func.return %x, %i, %c1"), "{out}");
        assert_eq!(out.matches("math.").count(), 1, "{out}");
        assert!(out.contains("%c1 = math.add %x, %pz"), "{out}");
    }

    #[test]
    fn keeps_broadcasting_identities() {
        // x + 0 where the zero broadcasts x to a larger shape is not x.
        let src = r#"
func @f(%x: tensor<3xf32>) -> ("y": tensor<2x3xf32>, "z": tensor<3xf32>) {
  %z = builtin.constant {value = dense<[-0.0, -0.0, -0.0, -0.0, -0.0, -0.0]> : tensor<2x3xf32>} : tensor<2x3xf32>
  %y = math.add %x, %z : tensor<2x3xf32>
  %one = builtin.constant {value = dense<[1.0, 2.0, 1.0]> : tensor<3xf32>} : tensor<3xf32>
  %w = math.mul %x, %one : tensor<3xf32>
  func.return %y, %w
}
"#;
        let out = simplified(src);
        assert!(out.contains("math.add") && out.contains("math.mul"), "{out}");
    }

    #[test]
    fn transposes_compose() {
        let src = r#"
func @f(%x: tensor<2x3x4xf32>) -> ("a": tensor<2x3x4xf32>, "b": tensor<3x2x4xf32>, "c": tensor<2x3x4xf32>) {
  %t1 = shape.transpose %x {perm = [1, 2, 0]} : tensor<3x4x2xf32> loc("t1")
  %t2 = shape.transpose %t1 {perm = [2, 0, 1]} : tensor<2x3x4xf32> loc("t2")
  %t3 = shape.transpose %t1 {perm = [0, 2, 1]} : tensor<3x2x4xf32> loc("t3")
  %t4 = shape.transpose %x {perm = [0, 1, 2]} : tensor<2x3x4xf32> loc("t4")
  %t5 = shape.transpose %t3 : tensor<4x2x3xf32> loc("t5")
  %t6 = shape.transpose %t5 {perm = [1, 2, 0]} : tensor<2x3x4xf32> loc("t6")
  func.return %t2, %t3, %t6
}
"#;
        let out = simplified(src);
        assert!(
            out.contains(
                "%0 = shape.transpose %x {perm = [1, 0, 2]} : tensor<3x2x4xf32> loc(fused[\"t1\", \"t3\"])"
            ),
            "{out}"
        );
        assert!(out.contains("func.return %x, %0, %x"), "{out}");
        assert_eq!(out.matches("shape.transpose").count(), 1, "{out}");
    }

    #[test]
    fn reshape_chains_become_one_reshape() {
        let src = r#"
func @f(%x: tensor<2x3x4xf32>) -> ("a": tensor<6x4xf32>, "b": tensor<2x3x4xf32>, "c": tensor<2x12xf32>) {
  %ax = builtin.constant {value = dense<[0]> : tensor<1xi64>} : tensor<1xi64>
  %u = shape.unsqueeze %x, %ax : tensor<1x2x3x4xf32> loc("u")
  %fl = shape.flatten %u {axis = 3} : tensor<6x4xf32> loc("fl")
  %sq = shape.squeeze %u, %ax : tensor<2x3x4xf32> loc("sq")
  %s = builtin.constant {value = dense<[2, 12]> : tensor<2xi64>} : tensor<2xi64>
  %same = builtin.constant {value = dense<[0, 0, 0]> : tensor<3xi64>} : tensor<3xi64>
  %r0 = shape.reshape %x, %same : tensor<2x3x4xf32> loc("r0")
  %r = shape.reshape %r0, %s : tensor<2x12xf32> loc("r")
  func.return %fl, %sq, %r
}
"#;
        let out = simplified(src);
        assert!(
            out.contains("dense<[6, 4]> : tensor<2xi64>} : tensor<2xi64> loc(fused[\"u\", \"fl\"])"),
            "{out}"
        );
        assert!(out.contains("shape.reshape %x, %0 : tensor<6x4xf32> loc(fused[\"u\", \"fl\"])"), "{out}");
        // The identity reshape disappears and the next one reads `x` directly.
        assert!(out.contains("%r = shape.reshape %x, %s : tensor<2x12xf32> loc(\"r\")"), "{out}");
        assert!(!out.contains("unsqueeze") && !out.contains("flatten") && !out.contains("squeeze"), "{out}");
        assert!(out.contains("func.return %1, %x, %r"), "{out}");
    }

    #[test]
    fn full_slices_expand_and_dropout() {
        let src = r#"
func @f(%x: tensor<2x3xf32>) -> ("a": tensor<2x3xf32>, "b": tensor<2x2xf32>, "c": tensor<2x3xf32>, "d": tensor<2x3xf32>, "e": tensor<2x3xf32>) {
  %st = builtin.constant {value = dense<[0, -3]> : tensor<2xi64>} : tensor<2xi64>
  %en = builtin.constant {value = dense<[9223372036854775807, 3]> : tensor<2xi64>} : tensor<2xi64>
  %part = builtin.constant {value = dense<[2, 2]> : tensor<2xi64>} : tensor<2xi64>
  %s1 = shape.slice %x, %st, %en : tensor<2x3xf32>
  %s2 = shape.slice %x, %st, %part : tensor<2x2xf32>
  %shape = builtin.constant {value = dense<[1, 3]> : tensor<2xi64>} : tensor<2xi64>
  %e = shape.expand %x, %shape : tensor<2x3xf32>
  %d = nn.dropout %x : tensor<2x3xf32>
  %no = builtin.constant {value = dense<[false]> : tensor<bool>} : tensor<bool>
  %r = builtin.constant {value = dense<[0.5]> : tensor<f32>} : tensor<f32>
  %d2 = nn.dropout %x, %r, %no : tensor<2x3xf32>
  func.return %s1, %s2, %e, %d, %d2
}
"#;
        let out = simplified(src);
        assert!(out.contains("func.return %x, %s2, %x, %x, %x"), "{out}");
        assert_eq!(out.matches("shape.slice").count(), 1, "{out}");
    }

    #[test]
    fn reaches_a_fixed_point() {
        let src = r#"
func @f(%x: tensor<4xf32>) -> ("y": tensor<4xf32>) {
  %a = math.neg %x : tensor<4xf32>
  %b = math.neg %a : tensor<4xf32>
  %c = math.neg %b : tensor<4xf32>
  %d = math.neg %c : tensor<4xf32>
  %e = math.neg %d : tensor<4xf32>
  func.return %e
}
"#;
        let out = simplified(src);
        assert_eq!(out.matches("math.neg").count(), 1, "{out}");
        let mut m = parse_module(src).unwrap();
        run_pipeline(&mut m, "simplify");
        assert_eq!(simplify(&mut m.functions[0]), 0);
    }
}
