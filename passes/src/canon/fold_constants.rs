//! `fold-constants`: evaluates pure ops whose operands are all constants.
//!
//! Each op's reference evaluation (`OpDef::eval`, the interpreter's semantics) computes the
//! result, so folding can never disagree with running the model. `shape.shape` and
//! `shape.size` fold whenever their operand's type is static, constant or not: the answer is in
//! the type. The folded op is replaced in its block by one constant per result, with the op's
//! location; the operands, if now unused, are left for `dce`.
//!
//! Size guard: a result is materialized only if it has at most [`MAX_FOLD_ELEMENTS`] elements
//! or no more elements than the largest operand. Transposing or casting a weight thus folds
//! (the model does not grow), but an expand, tile or constant_of_shape that would turn a tiny
//! operand into a huge tensor stays an op.

use super::{collect_blocks, const_data, create_constant_typed, Replacements};
use crate::pass::{Pass, PassError};
use edgec_ir::ops::{EvalCtx, Traits};
use edgec_ir::{Function, Module, Op, OpKind, Tensor, TensorType};

/// Results up to this many elements always fold.
pub const MAX_FOLD_ELEMENTS: u64 = 65536;

pub struct FoldConstants;

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold-constants"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            fold_constants(f);
        }
        Ok(())
    }
}

/// Folds every foldable op of `f` (in every block). Returns how many ops were folded.
pub fn fold_constants(f: &mut Function) -> usize {
    let mut repl = Replacements::new();
    let mut folded = 0;
    // One forward sweep suffices: an op's operands are defined before it, so they are already
    // folded when it is reached, and outer blocks come before the regions they hold.
    for b in collect_blocks(f) {
        let ops = std::mem::take(&mut f.blocks[b].ops);
        let mut kept = Vec::with_capacity(ops.len());
        for op in ops {
            repl.rewrite_op(f, op);
            match evaluate(f, op) {
                Some(values) => {
                    folded += 1;
                    let loc = f.ops[op].loc.clone();
                    let results = f.ops[op].results.clone();
                    for (r, t) in results.into_iter().zip(values) {
                        let ty = f.values[r].ty.clone();
                        let c = create_constant_typed(f, &t, ty, loc.clone());
                        kept.push(c);
                        let cv = f.ops[c].results[0];
                        repl.replace(r, cv);
                    }
                }
                None => kept.push(op),
            }
        }
        f.blocks[b].ops = kept;
    }
    repl.apply(f);
    folded
}

/// The values of `op`'s results if it can be folded, else `None`.
fn evaluate(f: &Function, op: Op) -> Option<Vec<Tensor>> {
    let d = &f.ops[op];
    let traits = d.kind.traits();
    if !traits.contains(Traits::PURE)
        || traits.intersects(Traits::CONSTANT_LIKE | Traits::HAS_REGIONS)
        || !d.regions.is_empty()
        || d.results.is_empty()
    {
        return None;
    }
    let result_types: Vec<TensorType> = d.results.iter().map(|&r| f.values[r].ty.clone()).collect();
    // A constant has a static type, and the folded value must have exactly the result's type.
    let result_shapes: Vec<Vec<usize>> =
        result_types.iter().map(|t| t.static_shape()).collect::<Option<_>>()?;
    let operand_types: Vec<TensorType> = d.operands.iter().map(|&v| f.values[v].ty.clone()).collect();
    let largest_operand = operand_types.iter().filter_map(|t| t.num_elements()).max().unwrap_or(0);
    for t in &result_types {
        let n = t.num_elements()?;
        if n > MAX_FOLD_ELEMENTS && n > largest_operand {
            return None;
        }
    }
    if let Some(v) = shape_of_static(f, op) {
        return Some(vec![v]);
    }
    let inputs: Vec<Tensor> =
        d.operands.iter().map(|&v| const_data(f, v)?.to_tensor().ok()).collect::<Option<_>>()?;
    let ctx = EvalCtx {
        attrs: &d.attrs,
        inputs: &inputs,
        operand_types: &operand_types,
        result_types: &result_types,
    };
    // An evaluation error (say, an out-of-range index) is left for run time, where it is
    // reported with the op's context; folding must not turn it into a compile error.
    let outs = (d.kind.def().eval)(&ctx).ok()?;
    if outs.len() != result_types.len() {
        return None;
    }
    for ((t, ty), shape) in outs.iter().zip(&result_types).zip(&result_shapes) {
        if t.scalar_type() != ty.scalar() || t.shape() != shape.as_slice() {
            return None;
        }
    }
    Some(outs)
}

/// `shape.shape` / `shape.size` of a value with a static type, read from the type (the operand
/// need not be a constant). `start`/`end` count from the back when negative, then clamp to the
/// rank, as `shape.shape` (ONNX Shape-15) defines them.
fn shape_of_static(f: &Function, op: Op) -> Option<Tensor> {
    let d = &f.ops[op];
    if !matches!(d.kind, OpKind::Shape | OpKind::Size) || d.operands.len() != 1 {
        return None;
    }
    let shape = f.values[d.operands[0]].ty.static_shape()?;
    let dims: Vec<i64> = shape.iter().map(|&n| i64::try_from(n).ok()).collect::<Option<_>>()?;
    if d.kind == OpKind::Size {
        let n = dims.iter().try_fold(1i64, |a, &b| a.checked_mul(b))?;
        return Some(Tensor::I64(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), n)));
    }
    let r = dims.len() as i64;
    let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
    let start = clamp(d.attrs.int("start").unwrap_or(0));
    let end = clamp(d.attrs.int("end").unwrap_or(r)).max(start);
    let sel = dims[start as usize..end as usize].to_vec();
    Some(Tensor::I64(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[sel.len()]), sel).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canon::testutil::{check_differential, run_pipeline};
    use edgec_ir::parser::parse_module;

    /// An exporter-style shape chain on an activation: shape -> gather -> concat -> reshape.
    const SHAPE_CHAIN: &str = r#"
func @f(%x: tensor<2x3x4xf32>) -> ("y": tensor<2x12xf32>) {
  %s = shape.shape %x : tensor<3xi64> loc("Shape")
  %i = builtin.constant {value = dense<[0]> : tensor<i64>} : tensor<i64> loc("idx")
  %b = shape.gather %s, %i : tensor<i64> loc("Gather")
  %ax = builtin.constant {value = dense<[0]> : tensor<1xi64>} : tensor<1xi64> loc("axes")
  %bu = shape.unsqueeze %b, %ax : tensor<1xi64> loc("Unsqueeze")
  %m1 = builtin.constant {value = dense<[-1]> : tensor<1xi64>} : tensor<1xi64> loc("minus1")
  %t = shape.concat %bu, %m1 {axis = 0} : tensor<2xi64> loc("Concat")
  %y = shape.reshape %x, %t : tensor<2x12xf32> loc("Reshape")
  func.return %y
}
"#;

    #[test]
    fn folds_shape_chains_and_keeps_locations() {
        let out = check_differential(SHAPE_CHAIN, "fold-constants,dce", None);
        assert!(
            out.contains(
                "builtin.constant {value = dense<[2, -1]> : tensor<2xi64>} : tensor<2xi64> loc(\"Concat\")"
            ),
            "{out}"
        );
        assert_eq!(out.matches("builtin.constant").count(), 1, "{out}");
        assert!(out.contains("shape.reshape %x, %0"), "{out}");
    }

    #[test]
    fn folds_weight_transpose_and_arithmetic() {
        let src = r#"
func @f(%x: tensor<2x3xf32>) -> ("y": tensor<2x2xf32>) {
  %w = builtin.constant {value = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]> : tensor<2x3xf32>} : tensor<2x3xf32>
  %wt = shape.transpose %w {perm = [1, 0]} : tensor<3x2xf32>
  %two = builtin.constant {value = dense<[2.0]> : tensor<f32>} : tensor<f32>
  %w2 = math.mul %wt, %two : tensor<3x2xf32>
  %y = nn.matmul %x, %w2 : tensor<2x2xf32>
  func.return %y
}
"#;
        let out = check_differential(src, "fold-constants,dce", None);
        assert!(out.contains("dense<[2.0, 8.0, 4.0, 10.0, 6.0, 12.0]> : tensor<3x2xf32>"), "{out}");
        assert_eq!(out.matches("builtin.constant").count(), 1, "{out}");
    }

    #[test]
    fn does_not_blow_up_small_operands() {
        // 1 x 100000 elements from a 2-element shape and a scalar: stays an op.
        let src = r#"
func @f() -> ("y": tensor<1x100000xf32>) {
  %s = builtin.constant {value = dense<[1, 100000]> : tensor<2xi64>} : tensor<2xi64>
  %y = shape.constant_of_shape %s : tensor<1x100000xf32>
  func.return %y
}
"#;
        let mut m = parse_module(src).unwrap();
        let out = run_pipeline(&mut m, "fold-constants");
        assert!(out.contains("shape.constant_of_shape"), "{out}");
        // Below the threshold it folds.
        let small = src.replace("100000", "1000");
        let mut m = parse_module(&small).unwrap();
        let out = run_pipeline(&mut m, "fold-constants,dce");
        assert!(!out.contains("shape.constant_of_shape"), "{out}");
    }

    #[test]
    fn leaves_failing_evaluations() {
        // An out-of-range gather index is a run-time error, not a compile-time one.
        let src = r#"
func @f() -> ("y": tensor<i64>) {
  %d = builtin.constant {value = dense<[1, 2, 3]> : tensor<3xi64>} : tensor<3xi64>
  %i = builtin.constant {value = dense<[7]> : tensor<i64>} : tensor<i64>
  %y = shape.gather %d, %i : tensor<i64>
  func.return %y
}
"#;
        let mut m = parse_module(src).unwrap();
        let out = run_pipeline(&mut m, "fold-constants");
        assert!(out.contains("shape.gather"), "{out}");
    }

    #[test]
    fn is_idempotent_and_deterministic() {
        let mut a = parse_module(SHAPE_CHAIN).unwrap();
        let mut b = parse_module(SHAPE_CHAIN).unwrap();
        let once = run_pipeline(&mut a, "fold-constants,dce");
        assert_eq!(once, run_pipeline(&mut b, "fold-constants,dce"));
        assert_eq!(once, run_pipeline(&mut a, "fold-constants,dce"));
        assert_eq!(fold_constants(&mut a.functions[0]), 0);
    }
}
