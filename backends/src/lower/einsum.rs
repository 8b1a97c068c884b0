//! `nn.einsum` as plain loops: a nest over the output labels, an inner nest over the summed
//! labels, and the product of the operands' elements accumulated (half types in f32). Repeated
//! labels in one term (diagonals) and broadcast ellipsis dims fall out of the indexing.

use super::{io_kernel, Lowered, OpCx, OpError};
use crate::kir::*;

/// Labels: ASCII letters, or `ELLIPSIS + i` for the i-th ellipsis dim.
const ELLIPSIS: u32 = 256;

/// Letters of a term and where its ellipsis is.
fn term(t: &str) -> Result<(Vec<u32>, Option<usize>), String> {
    let mut letters = Vec::new();
    let mut ell = None;
    let mut rest = t;
    while let Some(c) = rest.chars().next() {
        if c.is_ascii_alphabetic() {
            letters.push(c as u32);
            rest = &rest[1..];
        } else if let Some(r) = rest.strip_prefix("...") {
            if ell.replace(letters.len()).is_some() {
                return Err(format!("einsum term {t:?} has two ellipses").into());
            }
            rest = r;
        } else {
            return Err(format!("einsum term {t:?} has an invalid character {c:?}").into());
        }
    }
    Ok((letters, ell))
}

fn expand(letters: &[u32], ell: Option<usize>, n: usize, max_ell: usize) -> Vec<u32> {
    let at = ell.unwrap_or(letters.len());
    let mut v = letters[..at].to_vec();
    v.extend((max_ell - n..max_ell).map(|i| ELLIPSIS + i as u32));
    v.extend(&letters[at..]);
    v
}

pub(super) fn lower(cx: &mut OpCx) -> Result<Lowered, OpError> {
    let eq: String =
        cx.attrs.str("equation").ok_or("missing equation")?.chars().filter(|c| *c != ' ').collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (&eq[..], None),
    };
    let shapes: Vec<Vec<usize>> = (0..cx.operands.len()).map(|i| cx.shape(i)).collect();
    let terms: Vec<(Vec<u32>, Option<usize>)> = lhs.split(',').map(term).collect::<Result<_, _>>()?;
    if terms.len() != shapes.len() {
        return Err("einsum terms and operands differ in number".into());
    }
    let ells: Vec<usize> = terms
        .iter()
        .zip(&shapes)
        .map(|((l, e), s)| match e {
            Some(_) if s.len() >= l.len() => Ok(s.len() - l.len()),
            None if s.len() == l.len() => Ok(0),
            _ => Err(OpError::from(format!("einsum term {l:?} does not match rank {}", s.len()))),
        })
        .collect::<Result<_, _>>()?;
    let max_ell = ells.iter().copied().max().unwrap_or(0);
    let inputs: Vec<Vec<u32>> =
        terms.iter().zip(&ells).map(|((l, e), &n)| expand(l, *e, n, max_ell)).collect();
    let output: Vec<u32> = match rhs {
        Some(r) => {
            let (l, e) = term(r)?;
            expand(&l, e, if e.is_some() { max_ell } else { 0 }, max_ell)
        }
        None => {
            let mut out: Vec<u32> = (0..max_ell).map(|i| ELLIPSIS + i as u32).collect();
            let mut letters: Vec<u32> = terms.iter().flat_map(|t| t.0.iter().copied()).collect();
            letters.sort_unstable();
            for &l in &letters {
                if letters.iter().filter(|&&x| x == l).count() == 1 {
                    out.push(l);
                }
            }
            out
        }
    };
    // Size of each label: the largest dim it names (size-1 dims broadcast).
    let mut size: std::collections::HashMap<u32, usize> = Default::default();
    for (labels, s) in inputs.iter().zip(&shapes) {
        for (&l, &d) in labels.iter().zip(s) {
            let e = size.entry(l).or_insert(d);
            *e = (*e).max(d);
        }
    }
    let mut summed: Vec<u32> = Vec::new();
    for l in inputs.iter().flatten() {
        if !output.contains(l) && !summed.contains(l) {
            summed.push(*l);
        }
    }
    let oshape: Vec<usize> = output.iter().map(|l| size[l]).collect();
    let sshape: Vec<usize> = summed.iter().map(|l| size[l]).collect();
    let ty = cx.rty(0)?;
    let ct = if matches!(ty, Ty::F16 | Ty::BF16) { Ty::F32 } else { ty };
    let (mut k, binds) = io_kernel(cx, "einsum")?;
    let ob = shapes.len();
    let acc = k.var(ct);
    let body = k.nest(&oshape, |k, oix| {
        let mut s = vec![Stmt::Let { var: acc, value: cnst(0.0, ct) }];
        s.extend(k.nest(&sshape, |_, six| {
            let var_of = |l: u32| -> Expr {
                match output.iter().position(|&x| x == l) {
                    Some(p) => oix[p].clone(),
                    None => six[summed.iter().position(|&x| x == l).unwrap()].clone(),
                }
            };
            let mut prod: Option<Expr> = None;
            for (i, (labels, sh)) in inputs.iter().zip(&shapes).enumerate() {
                let st = strides(sh);
                let mut off = idx(0);
                for (d, &l) in labels.iter().enumerate() {
                    if sh[d] != 1 {
                        off = add(off, mul(var_of(l), idx(st[d] as i64)));
                    }
                }
                let v = load(i, off);
                let v = if ct != ty { cast(ct, v) } else { v };
                prod = Some(match prod {
                    None => v,
                    Some(p) => bin(BinOp::Mul, p, v),
                });
            }
            let p = prod.unwrap_or_else(|| cnst(1.0, ct));
            vec![Stmt::Assign { var: acc, value: bin(BinOp::Add, Expr::Var(acc), p) }]
        }));
        let v = if ct != ty { cast(ty, Expr::Var(acc)) } else { Expr::Var(acc) };
        s.push(Stmt::Store { buf: ob, index: linear(oix, &strides(&oshape)), value: v });
        s
    });
    k.body = body;
    Ok(Lowered::Calls(vec![(k, binds)]))
}
