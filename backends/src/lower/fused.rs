//! `fused.kernel`: an optional anchor (conv, conv_transpose, matmul, gemm) lowered as usual, then
//! the elementwise members evaluated in one loop nest over the result. With an anchor, the loop
//! is appended to the anchor's last kernel and rewrites its output in place (each element once,
//! right after the GEMM or col2im that produced it), so the fused ops cost no extra kernel and no
//! intermediate buffer. Intermediate values are locals; operands are read through broadcast
//! strides, and scalar constants become immediates.

use super::{elementwise, kty, lower_op, Bind, Lowered, OpCx, OpError};
use crate::kir::*;
use edgec_ir::module::ValueDef;
use edgec_ir::ops::Traits;
use edgec_ir::{Block, Function, OpKind, Value};
use std::collections::HashMap;

pub(super) fn lower(cx: &mut OpCx, f: &Function, block: Block) -> Result<Lowered, OpError> {
    let args = &f.blocks[block].args;
    let arg_index: HashMap<Value, usize> = args.iter().enumerate().map(|(i, &a)| (a, i)).collect();
    let ops: Vec<_> =
        f.blocks[block].ops.iter().copied().filter(|&o| f.ops[o].kind != OpKind::Yield).collect();
    let yield_op = *f.blocks[block].ops.last().ok_or("fused kernel has an empty region")?;
    let root = *f.ops[yield_op].operands.first().ok_or("fused kernel yields nothing")?;
    let out_shape = cx.rshape(0);
    let out_ty = cx.rty(0)?;
    let n_out = out_shape.iter().product::<usize>() as u64;

    let first_is_anchor = ops.first().is_some_and(|&o| !f.ops[o].kind.traits().contains(Traits::ELEMENTWISE));
    let (anchor, epilogue) = if first_is_anchor { (Some(ops[0]), &ops[1..]) } else { (None, &ops[..]) };
    for &o in epilogue {
        if !f.ops[o].kind.traits().contains(Traits::ELEMENTWISE) {
            return Err(format!("fused kernel member {} is not elementwise", f.ops[o].kind.name()).into());
        }
    }

    // The kernel the epilogue goes into, its bindings, and which parameter holds the result.
    let mut calls = Vec::new();
    let (mut k, mut binds, out_buf) = match anchor {
        Some(a) => {
            let d = &f.ops[a];
            // The epilogue rewrites the anchor's output buffer in place, so it must be the
            // kernel's result buffer: same type and shape (the `fuse` pass only forms such
            // groups; hand-written IR may not).
            if d.results.len() != 1 || f.values[d.results[0]].ty != cx.results[0] {
                return Err(format!(
                    "the anchor {} must produce exactly the fused kernel's result type {}",
                    d.kind.name(),
                    cx.results[0]
                )
                .into());
            }
            let map: Vec<usize> = d
                .operands
                .iter()
                .map(|v| arg_index.get(v).copied().ok_or("the anchor's operands must be region arguments"))
                .collect::<Result<_, _>>()?;
            let mut inner = OpCx {
                kind: d.kind,
                attrs: &d.attrs,
                operands: map.iter().map(|&i| cx.operands[i].clone()).collect(),
                results: vec![f.values[d.results[0]].ty.clone()],
                consts: map.iter().map(|&i| cx.consts[i]).collect(),
                tables: Vec::new(),
                kernels: cx.kernels,
                nbits_block_bytes: cx.nbits_block_bytes,
                panels: map.iter().map(|&i| cx.panels[i]).collect(),
                region: None,
                shared: map.iter().map(|&i| cx.shared.get(i).copied().unwrap_or(false)).collect(),
                packed: map.iter().map(|&i| cx.packed.get(i).copied().unwrap_or(false)).collect(),
            };
            let Lowered::Calls(inner_calls) = lower_op(&mut inner)? else {
                return Err(format!("{} lowered to a view", d.kind.name()).into());
            };
            let base = cx.tables.len();
            cx.tables.append(&mut inner.tables);
            calls = inner_calls
                .into_iter()
                .map(|(k, b)| {
                    let b = b
                        .into_iter()
                        .map(|b| match b {
                            Bind::Operand(i) => Bind::Operand(map[i]),
                            Bind::Table(t) => Bind::Table(base + t),
                            other => other,
                        })
                        .collect::<Vec<_>>();
                    (k, b)
                })
                .collect();
            match calls.pop() {
                Some((k, b)) if b.iter().any(|b| matches!(b, Bind::Result(0))) => {
                    let out = b.iter().position(|b| matches!(b, Bind::Result(0))).unwrap();
                    (k, b, out)
                }
                last => {
                    calls.extend(last);
                    let mut k = Kernel::new("epilogue");
                    let out = k.param(out_ty, n_out, Access::Write);
                    (k, vec![Bind::Result(0)], out)
                }
            }
        }
        None => {
            let mut k = Kernel::new("fused");
            let out = k.param(out_ty, n_out, Access::Write);
            (k, vec![Bind::Result(0)], out)
        }
    };
    let anchor_value = anchor.map(|a| f.ops[a].results[0]);

    // A parameter for every region argument the epilogue reads from memory.
    let scalar_const = |i: usize| cx.consts[i].filter(|t| t.len() == 1).map(|t| t.to_f64_vec()[0]);
    let mut arg_param: HashMap<usize, BufId> = HashMap::new();
    // Clip's bounds are optional: a zero-element operand there means "absent" (elsewhere a
    // zero-element operand is real, and only read when the result is empty too).
    let absent = |op: edgec_ir::Op, pos: usize, i: usize| {
        f.ops[op].kind == OpKind::Clip && pos > 0 && cx.operands[i].num_elements() == Some(0)
    };
    for &o in epilogue {
        for (pos, &v) in f.ops[o].operands.iter().enumerate() {
            if let Some(&i) = arg_index.get(&v) {
                let n = cx.operands[i].num_elements().unwrap_or(0);
                if absent(o, pos, i) || scalar_const(i).is_some() || arg_param.contains_key(&i) {
                    continue;
                }
                let p = k.param(kty(cx.operands[i].scalar())?, n, Access::Read);
                binds.push(Bind::Operand(i));
                arg_param.insert(i, p);
            }
        }
    }

    let operand_info: Vec<(Vec<usize>, Ty, Option<f64>)> = (0..cx.operands.len())
        .map(|i| Ok((cx.shape(i), cx.ty(i)?, scalar_const(i))))
        .collect::<Result<_, OpError>>()?;
    let body = k.try_nest(&out_shape, |k, ix| {
        let lin = linear(ix, &strides(&out_shape));
        let mut env: HashMap<Value, Expr> = HashMap::new();
        if let Some(v) = anchor_value {
            env.insert(v, load(out_buf, lin.clone()));
        }
        let mut stmts = Vec::new();
        for &o in epilogue {
            let d = &f.ops[o];
            let mut in_tys = Vec::new();
            let mut operands = Vec::new();
            for (pos, &v) in d.operands.iter().enumerate() {
                in_tys.push(kty(f.values[v].ty.scalar())?);
                operands.push(match (env.get(&v), arg_index.get(&v)) {
                    (Some(e), _) => Some(e.clone()),
                    (None, Some(&i)) => {
                        let (shape, ty, c) = &operand_info[i];
                        match (c, arg_param.get(&i)) {
                            _ if absent(o, pos, i) => None,
                            (Some(c), _) => Some(cnst(*c, *ty)),
                            (None, Some(&p)) => {
                                Some(load(p, linear(ix, &broadcast_strides(shape, &out_shape))))
                            }
                            (None, None) => return Err("region argument without a parameter".into()),
                        }
                    }
                    (None, None) => match f.values[v].def {
                        ValueDef::Result { op, .. } => {
                            return Err(format!(
                                "operand from {} is not in the region",
                                f.ops[op].kind.name()
                            )
                            .into())
                        }
                        ValueDef::Arg { .. } => return Err("operand is not a region argument".into()),
                    },
                });
            }
            let rt = kty(f.values[d.results[0]].ty.scalar())?;
            let e = elementwise::scalar(d.kind, &d.attrs, operands, &in_tys, rt, k);
            let var = k.var(rt);
            stmts.push(Stmt::Let { var, value: e });
            env.insert(d.results[0], Expr::Var(var));
        }
        let value = env.get(&root).cloned().ok_or("the region yields a value it does not compute")?;
        stmts.push(Stmt::Store { buf: out_buf, index: lin, value });
        Ok::<_, OpError>(stmts)
    })?;
    k.body.extend(body);
    if anchor.is_none() {
        // As for a single elementwise op: an operand read at the output's own index, with its
        // type, may be overwritten (with an anchor the output is written before the epilogue
        // reads the operands, so never).
        let mut pairs: Vec<(BufId, BufId)> = arg_param
            .iter()
            .filter(|(&i, _)| operand_info[i].0 == out_shape && operand_info[i].1 == out_ty)
            .map(|(_, &p)| (p, out_buf))
            .collect();
        pairs.sort();
        k.inplace.extend(pairs);
    }
    let pattern = cx.attrs.str("pattern").unwrap_or("fused");
    k.name = kernel_name(pattern);
    calls.push((k, binds));
    Ok(Lowered::Calls(calls))
}

/// A symbol-safe kernel name from the fused pattern (`conv+add+relu` -> `fused_conv_add_relu`),
/// shortened for long chains.
fn kernel_name(pattern: &str) -> String {
    let parts: Vec<&str> = pattern.split('+').collect();
    let shown = if parts.len() > 4 {
        format!("{}_{}_and_{}_more", parts[0], parts[1], parts.len() - 2)
    } else {
        parts.join("_")
    };
    format!("fused_{}", shown.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_"))
}
