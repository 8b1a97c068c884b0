//! The reference interpreter: runs a function op by op with each op's declared reference
//! evaluation. It is the oracle every pass and backend is tested against, so it favours
//! clarity over speed; it does free each intermediate after its last use so that large models
//! run in bounded memory.

use crate::entity::{Block, Op, SecondaryMap, Value};
use crate::error::IrError;
use crate::module::Function;
use crate::ops::{EvalCtx, OpKind, Traits};
use crate::tensor::Tensor;
use crate::types::{Dim, TensorType};

/// Runs `f` on `inputs` (one per parameter, in order) and returns one tensor per result.
pub fn run_function(f: &Function, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, IrError> {
    run(f, inputs, None)
}

/// [`run_function`], calling `observe` with every op result as it is computed (calibration,
/// per-layer error measurement).
pub fn run_function_observed(
    f: &Function,
    inputs: Vec<Tensor>,
    observe: &mut dyn FnMut(Value, &Tensor),
) -> Result<Vec<Tensor>, IrError> {
    run(f, inputs, Some(observe))
}

fn run(
    f: &Function,
    inputs: Vec<Tensor>,
    observer: Option<&mut dyn FnMut(Value, &Tensor)>,
) -> Result<Vec<Tensor>, IrError> {
    let params = f.params();
    if inputs.len() != params.len() {
        return Err(IrError::Input(format!(
            "function @{} takes {} inputs, {} given",
            f.name,
            params.len(),
            inputs.len()
        )));
    }
    let mut env = Env { values: SecondaryMap::with_default(None), remaining_uses: use_counts(f), observer };
    for (i, (&p, t)) in params.iter().zip(inputs).enumerate() {
        let ty = &f.values[p].ty;
        check_value(ty, &t).map_err(|m| {
            let name = f.values[p].name.clone().unwrap_or_else(|| format!("#{i}"));
            IrError::Input(format!("input {name:?}: {m}"))
        })?;
        env.values.set(p, Some(t));
    }
    let results = run_block(f, f.body, &mut env)?;
    Ok(results)
}

struct Env<'o> {
    values: SecondaryMap<Value, Option<Tensor>>,
    remaining_uses: SecondaryMap<Value, u32>,
    observer: Option<&'o mut dyn FnMut(Value, &Tensor)>,
}

impl Env<'_> {
    /// Takes an operand's tensor, moving it out on its last use.
    fn take(&mut self, v: Value) -> Option<Tensor> {
        let n = *self.remaining_uses.get(v);
        if n <= 1 {
            self.remaining_uses.set(v, 0);
            let t = self.values.get(v).clone();
            self.values.set(v, None);
            t
        } else {
            self.remaining_uses.set(v, n - 1);
            self.values.get(v).clone()
        }
    }
}

fn use_counts(f: &Function) -> SecondaryMap<Value, u32> {
    let mut m = SecondaryMap::with_default(0u32);
    for (_, d) in f.ops.iter() {
        for &o in &d.operands {
            m.set(o, m.get(o) + 1);
        }
    }
    m
}

fn op_err(f: &Function, op: Op, message: String) -> IrError {
    let d = &f.ops[op];
    IrError::Op { op: Some(op), op_name: d.kind.name().into(), loc: d.loc.clone(), message }
}

fn run_block(f: &Function, b: Block, env: &mut Env<'_>) -> Result<Vec<Tensor>, IrError> {
    for &op in &f.blocks[b].ops {
        let d = &f.ops[op];
        let mut inputs = Vec::with_capacity(d.operands.len());
        for &o in &d.operands {
            let t = env
                .take(o)
                .ok_or_else(|| op_err(f, op, format!("operand {o} has no value (not yet computed)")))?;
            inputs.push(t);
        }
        if matches!(d.kind, OpKind::Return | OpKind::Yield) {
            return Ok(inputs);
        }
        // Region-holding ops (a delegate's subgraph, a fused kernel) mean what their region computes.
        let outputs = if d.kind.traits().contains(Traits::HAS_REGIONS) {
            let region_block = d.regions[0].blocks[0];
            for (&a, t) in f.blocks[region_block].args.iter().zip(inputs) {
                env.values.set(a, Some(t));
            }
            run_block(f, region_block, env)?
        } else {
            let operand_types: Vec<TensorType> = d.operands.iter().map(|&v| f.values[v].ty.clone()).collect();
            let result_types: Vec<TensorType> = d.results.iter().map(|&v| f.values[v].ty.clone()).collect();
            let ctx = EvalCtx {
                attrs: &d.attrs,
                inputs: &inputs,
                operand_types: &operand_types,
                result_types: &result_types,
            };
            (d.kind.def().eval)(&ctx).map_err(|m| op_err(f, op, m))?
        };
        if outputs.len() != d.results.len() {
            return Err(op_err(
                f,
                op,
                format!("evaluation gave {} results, op has {}", outputs.len(), d.results.len()),
            ));
        }
        for (i, (&r, t)) in d.results.iter().zip(outputs).enumerate() {
            check_value(&f.values[r].ty, &t).map_err(|m| op_err(f, op, format!("result #{i}: {m}")))?;
            if let Some(obs) = env.observer.as_mut() {
                obs(r, &t);
            }
            if *env.remaining_uses.get(r) > 0 {
                env.values.set(r, Some(t));
            }
        }
    }
    Err(IrError::Input(format!("block {b} has no terminator")))
}

/// Checks that a runtime tensor fits a declared type (element storage type, rank, static dims).
pub fn check_value(ty: &TensorType, t: &Tensor) -> Result<(), String> {
    if ty.elem.storage() != t.scalar_type() {
        return Err(format!("expected element type {}, found {}", ty.elem, t.scalar_type()));
    }
    let shape = t.shape();
    if shape.len() != ty.rank()
        || ty.dims.iter().zip(shape).any(|(d, &s)| matches!(d, Dim::Static(n) if *n as usize != s))
    {
        return Err(format!("expected shape {ty}, found {:?}", shape));
    }
    Ok(())
}
