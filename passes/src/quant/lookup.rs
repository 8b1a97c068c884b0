//! Elementwise float functions between int8 tensors as 256-entry tables (`q.lookup`), as
//! TFLite's int8 GELU, TANH, LOGISTIC, LEAKY_RELU... kernels compute them.
//!
//! The pattern is `q.dequantize(x) → f₁ → … → fₙ → q.quantize` with reshapes anywhere between
//! (they do not change elements), every value in it used once, `x` per-tensor int8 and each `fᵢ`
//! a one-operand elementwise op on f32. Entry `q + 128` of the table is the interpreter's value
//! of the functions at `dequantize(q)`, quantized like the `q.quantize`: exactly what the float
//! path computes for that input value, so the rewrite changes no result beyond the float
//! functions' own rounding on the target. Post-training quantization forms the tables it has
//! measured (`int8.rs`); `fold-quantized` forms every one (a pre-quantized model states the
//! quantization around the function).

use crate::canon::{defining_op, use_counts};
use edgec_ir::ops::qint8::{dequantize_value, per_tensor_i8, quantize_value};
use edgec_ir::ops::{EvalCtx, Traits};
use edgec_ir::{
    Attr, Attrs, Builder, ConstTensor, ElemType, Function, Op, OpKind, ScalarType, Tensor, TensorType, Value,
};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;

/// A one-operand, one-result, pure elementwise op on f32.
pub fn is_float_function(f: &Function, op: Op) -> bool {
    let d = &f.ops[op];
    let f32 = |v: Value| f.values[v].ty.elem == ElemType::Scalar(ScalarType::F32);
    d.kind.traits().contains(Traits::ELEMENTWISE | Traits::PURE)
        && d.regions.is_empty()
        && d.operands.len() == 1
        && d.results.len() == 1
        && f32(d.operands[0])
        && f32(d.results[0])
}

/// The table of `funcs` (in order) from int8 inputs with parameters `pin` to int8 outputs with
/// parameters `pout`.
pub fn table(f: &Function, funcs: &[Op], pin: (f64, i64), pout: (f64, i64)) -> Result<Vec<i8>, String> {
    let xs: Vec<f32> = (-128..=127).map(|q| dequantize_value(q, pin.0, pin.1 as i32)).collect();
    let ty = TensorType::of(&[256], ScalarType::F32);
    let mut t = Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[256]), xs).map_err(|e| e.to_string())?);
    for &op in funcs {
        let d = &f.ops[op];
        let (inputs, types) = ([t], [ty.clone()]);
        let ctx = EvalCtx {
            attrs: &d.attrs,
            inputs: &inputs,
            operand_types: &types,
            result_types: std::slice::from_ref(&ty),
        };
        t = (d.kind.def().eval)(&ctx).map_err(|e| format!("{}: {e}", d.kind.name()))?.remove(0);
    }
    let (s, zp) = (pout.0 as f32, pout.1 as i32);
    Ok(t.to_f64_vec().iter().map(|&y| quantize_value(y as f32, s, zp, -128, 127) as i8).collect())
}

/// One match of the pattern: the `q.quantize`, the int8 input, the functions and the reshapes
/// (both in order).
struct Match {
    quantize: Op,
    x: Value,
    funcs: Vec<Op>,
    reshapes: Vec<Op>,
}

/// Walks back from a `q.quantize`'s operand.
fn match_at(f: &Function, q: Op, uses: &edgec_ir::entity::SecondaryMap<Value, u32>) -> Option<Match> {
    let mut cur = f.ops[q].operands[0];
    let (mut funcs, mut reshapes) = (Vec::new(), Vec::new());
    loop {
        if *uses.get(cur) != 1 {
            return None;
        }
        let op = defining_op(f, cur)?;
        let d = &f.ops[op];
        match d.kind {
            OpKind::QDequantize => {
                let x = d.operands[0];
                per_tensor_i8(&f.values[x].ty, "x").ok()?;
                if funcs.is_empty() {
                    return None;
                }
                funcs.reverse();
                reshapes.reverse();
                return Some(Match { quantize: q, x, funcs, reshapes });
            }
            OpKind::Reshape => reshapes.push(op),
            _ if is_float_function(f, op) => funcs.push(op),
            _ => return None,
        }
        cur = d.operands[0];
    }
}

/// Replaces every match whose `q.quantize` reads a value `accept` takes by `q.lookup` on the int8
/// input followed by the same reshapes; returns how many. Dead ops are left for the caller's DCE.
pub fn form_lookups(f: &mut Function, accept: &dyn Fn(Value) -> bool) -> Result<usize, String> {
    let body = f.body;
    let uses = use_counts(f);
    let matches: Vec<Match> = f.blocks[body]
        .ops
        .iter()
        .filter(|&&op| f.ops[op].kind == OpKind::QQuantize && accept(f.ops[op].operands[0]))
        .filter_map(|&op| match_at(f, op, &uses))
        .collect();
    let mut at: HashMap<Op, Vec<Op>> = HashMap::new();
    for m in &matches {
        let pin = per_tensor_i8(&f.values[m.x].ty, "x")?;
        let qr = f.ops[m.quantize].results[0];
        let pout = per_tensor_i8(&f.values[qr].ty, "y")?;
        let t = table(f, &m.funcs, pin, pout)?;
        let loc = f.ops[m.funcs[0]].loc.clone();
        let tt = TensorType::of(&[256], ScalarType::I8);
        let data = Tensor::I8(ArrayD::from_shape_vec(IxDyn(&[256]), t).map_err(|e| e.to_string())?);
        let value = Attr::Tensor(ConstTensor::from_tensor(&data).with_type(tt.clone()));
        let tc =
            f.create_op(OpKind::Constant, vec![], vec![tt], Attrs::new().with("value", value), loc.clone());
        let mut new = vec![tc];
        let attrs = f.ops[m.quantize].attrs.clone();
        let operands = vec![m.x, f.ops[tc].results[0]];
        let mut v = create(f, OpKind::QLookup, operands, attrs, loc, &mut new)?;
        for &r in &m.reshapes {
            let d = &f.ops[r];
            let (operands, attrs, loc) = (vec![v, d.operands[1]], d.attrs.clone(), d.loc.clone());
            v = create(f, OpKind::Reshape, operands, attrs, loc, &mut new)?;
        }
        f.replace_all_uses(qr, v);
        at.insert(m.quantize, new);
    }
    let old = std::mem::take(&mut f.blocks[body].ops);
    for op in old {
        f.blocks[body].ops.extend(at.remove(&op).unwrap_or_default());
        f.blocks[body].ops.push(op);
    }
    Ok(matches.len())
}

/// Creates an op with inferred types, records it in `new` and returns its result.
fn create(
    f: &mut Function,
    kind: OpKind,
    operands: Vec<Value>,
    attrs: Attrs,
    loc: edgec_ir::Loc,
    new: &mut Vec<Op>,
) -> Result<Value, String> {
    let types =
        Builder::new(f).infer(kind, &operands, &attrs, 1).map_err(|e| format!("{}: {e}", kind.name()))?;
    let op = f.create_op(kind, operands, types, attrs, loc);
    new.push(op);
    Ok(f.ops[op].results[0])
}
