//! `nn.einsum`: Einstein summation over any number of operands.
//!
//! The equation is parsed into one list of labels per operand and one for the output; each
//! dim covered by an ellipsis gets its own synthetic label (right-aligned, so operands with
//! fewer ellipsis dims broadcast like numpy). Evaluation first takes diagonals for labels
//! repeated within an operand, then contracts the operands left to right: a label shared by
//! the pair that is still needed later (by the output or a later operand) is a batch dim, one
//! that is not is summed by the matrix product, and labels present in only one side are kept
//! as rows or columns. Every pairwise step is one batched GEMM.

use super::linalg::{batched_gemm, dispatch, numeric_scalar, reshape_owned, same_elem, Kernel, Scalar};
use super::util::{broadcast_dims, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::tensor::Tensor;
use crate::types::{Dim, TensorType};
use ndarray::{ArrayD, ArrayViewD, Axis, CowArray, Ix3, IxDyn};

pub static EINSUM: OpDef = OpDef {
    name: "nn.einsum",
    summary: "Einstein summation: `equation` names each operand's dims; labels missing from the \
              output (explicit after `->`, else those used once, sorted) are summed (ONNX Einsum).",
    operands: &["Inputs+"],
    results: &["Output"],
    attrs: &[AttrDef::req("equation", AttrKind::Str)],
    traits: Traits::PURE,
    infer: infer_einsum,
    eval: eval_einsum,
};

/// A dim label: an ASCII letter, or `ELLIPSIS + i` for the i-th (left to right) ellipsis dim.
type Label = u32;
const ELLIPSIS: Label = 256;

/// A parsed equation, with ellipses expanded for the operands' ranks.
#[derive(Debug, Clone, PartialEq)]
struct Equation {
    inputs: Vec<Vec<Label>>,
    output: Vec<Label>,
}

/// One term of the equation: its letters, with the position of the ellipsis if any.
struct Term {
    letters: Vec<Label>,
    ellipsis_at: Option<usize>,
}

fn parse_term(t: &str) -> OpResult<Term> {
    let mut letters = Vec::new();
    let mut ellipsis_at = None;
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_alphabetic() {
            letters.push(c as Label);
            i += 1;
        } else if t[i..].starts_with("...") {
            if ellipsis_at.is_some() {
                return Err(format!("einsum term {t:?} has more than one ellipsis"));
            }
            ellipsis_at = Some(letters.len());
            i += 3;
        } else {
            return Err(format!("einsum term {t:?} contains invalid character {:?}", c as char));
        }
    }
    Ok(Term { letters, ellipsis_at })
}

impl Equation {
    fn parse(eq: &str, ranks: &[usize]) -> OpResult<Equation> {
        let eq: String = eq.chars().filter(|c| *c != ' ').collect();
        let (lhs, rhs) = match eq.split_once("->") {
            Some((l, r)) => (l, Some(r)),
            None => (&eq[..], None),
        };
        let terms: Vec<Term> = lhs.split(',').map(parse_term).collect::<OpResult<_>>()?;
        if terms.len() != ranks.len() {
            return Err(format!(
                "equation {eq:?} has {} input terms but there are {} operands",
                terms.len(),
                ranks.len()
            ));
        }
        // Ellipsis ranks, right-aligned against the widest.
        let mut ell = Vec::with_capacity(terms.len());
        for (i, (t, &r)) in terms.iter().zip(ranks).enumerate() {
            let n = t.letters.len();
            match t.ellipsis_at {
                None if n != r => {
                    return Err(format!("einsum term {i} names {n} dims but operand {i} has rank {r}"));
                }
                Some(_) if n > r => {
                    return Err(format!("einsum term {i} names {n} dims but operand {i} has rank {r}"));
                }
                _ => ell.push(r - n),
            }
        }
        let max_ell = ell.iter().copied().max().unwrap_or(0);
        let expand = |t: &Term, e: usize| -> Vec<Label> {
            let mut v = Vec::with_capacity(t.letters.len() + e);
            let at = t.ellipsis_at.unwrap_or(t.letters.len());
            v.extend(&t.letters[..at]);
            v.extend((max_ell - e..max_ell).map(|i| ELLIPSIS + i as Label));
            v.extend(&t.letters[at..]);
            v
        };
        let inputs: Vec<Vec<Label>> = terms.iter().zip(&ell).map(|(t, &e)| expand(t, e)).collect();
        let output = match rhs {
            Some(r) => {
                if r.contains(',') || r.contains("->") {
                    return Err(format!("equation {eq:?} has a malformed right-hand side"));
                }
                let t = parse_term(r)?;
                let mut seen = std::collections::HashSet::new();
                for &l in &t.letters {
                    if !seen.insert(l) {
                        return Err(format!("output label {:?} appears twice", l as u8 as char));
                    }
                    if !inputs.iter().any(|i| i.contains(&l)) {
                        return Err(format!(
                            "output label {:?} does not appear in any input",
                            l as u8 as char
                        ));
                    }
                }
                expand(&t, if t.ellipsis_at.is_some() { max_ell } else { 0 })
            }
            None => {
                let mut out: Vec<Label> = (0..max_ell).map(|i| ELLIPSIS + i as Label).collect();
                let mut letters: Vec<Label> = terms.iter().flat_map(|t| t.letters.iter().copied()).collect();
                letters.sort_unstable();
                for (i, &l) in letters.iter().enumerate() {
                    let count = letters.iter().filter(|&&x| x == l).count();
                    if count == 1 && (i == 0 || letters[i - 1] != l) {
                        out.push(l);
                    }
                }
                out
            }
        };
        Ok(Equation { inputs, output })
    }
}

fn equation_attr(attrs: &crate::attr::Attrs) -> OpResult<&str> {
    attrs.str("equation").ok_or_else(|| "missing attribute `equation`".to_string())
}

fn infer_einsum(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    if ctx.operands.is_empty() {
        return Err("Einsum takes at least one operand".into());
    }
    let first = operand(ctx, 0)?;
    numeric_scalar(first, "Inputs")?;
    for t in &ctx.operands[1..] {
        same_elem(first, t, "Einsum operands")?;
    }
    let ranks: Vec<usize> = ctx.operands.iter().map(|t| t.rank()).collect();
    let eq = Equation::parse(equation_attr(ctx.attrs)?, &ranks)?;
    let mut sizes: std::collections::HashMap<Label, Dim> = std::collections::HashMap::new();
    for (labels, t) in eq.inputs.iter().zip(ctx.operands) {
        for (l, d) in labels.iter().zip(&t.dims) {
            let merged = match sizes.get(l) {
                None => d.clone(),
                Some(prev) => broadcast_dims(std::slice::from_ref(prev), std::slice::from_ref(d))
                    .map_err(|e| format!("einsum label {}: {e}", label_name(*l)))?
                    .remove(0),
            };
            sizes.insert(*l, merged);
        }
    }
    let dims = eq.output.iter().map(|l| sizes.get(l).cloned().unwrap_or(Dim::Unknown)).collect();
    Ok(vec![TensorType::new(dims, first.elem.clone())])
}

fn label_name(l: Label) -> String {
    if l >= ELLIPSIS {
        format!("...[{}]", l - ELLIPSIS)
    } else {
        format!("{:?}", l as u8 as char)
    }
}

fn eval_einsum(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let ranks: Vec<usize> = ctx.inputs.iter().map(|t| t.shape().len()).collect();
    let eq = Equation::parse(equation_attr(ctx.attrs)?, &ranks)?;
    let ins: Vec<Option<&Tensor>> = ctx.inputs.iter().map(Some).collect();
    Ok(vec![dispatch(&eq, &ins, false)?])
}

impl Kernel for Equation {
    fn run<T: Scalar>(&self, ins: &[Option<ArrayViewD<T>>]) -> OpResult<ArrayD<T>> {
        let views: Vec<&ArrayViewD<T>> = ins
            .iter()
            .map(|v| v.as_ref().ok_or_else(|| "missing operand".to_string()))
            .collect::<OpResult<_>>()?;
        einsum(self, &views)
    }
}

/// An intermediate operand: an array and the label of each of its axes (all distinct).
struct Labeled<T> {
    a: ArrayD<T>,
    labels: Vec<Label>,
}

/// Takes the diagonal over labels repeated within one operand.
fn unique_labels<T: Scalar>(a: &ArrayViewD<T>, labels: &[Label]) -> OpResult<Labeled<T>> {
    let mut uniq: Vec<Label> = Vec::new();
    for &l in labels {
        if !uniq.contains(&l) {
            uniq.push(l);
        }
    }
    if uniq.len() == labels.len() {
        return Ok(Labeled { a: a.to_owned(), labels: uniq });
    }
    let mut shape = vec![0usize; uniq.len()];
    // Source stride (in elements of the standard-layout copy) contributed by each unique label.
    let src = a.as_standard_layout();
    let src_shape = src.shape();
    let mut src_strides = vec![1usize; src_shape.len()];
    for d in (0..src_shape.len().saturating_sub(1)).rev() {
        src_strides[d] = src_strides[d + 1] * src_shape[d + 1];
    }
    let mut ustride = vec![0usize; uniq.len()];
    for (d, &l) in labels.iter().enumerate() {
        let u = uniq.iter().position(|&x| x == l).expect("label collected above");
        if shape[u] != 0 && shape[u] != src_shape[d] {
            return Err(format!(
                "einsum label {} is repeated with different sizes {} and {}",
                label_name(l),
                shape[u],
                src_shape[d]
            ));
        }
        shape[u] = src_shape[d];
        ustride[u] += src_strides[d];
    }
    let data = src.as_slice().ok_or("internal: layout")?;
    let mut out = Vec::with_capacity(shape.iter().product());
    super::linalg_conv::for_each_index(&shape, |idx| {
        let off: usize = idx.iter().zip(&ustride).map(|(i, s)| i * s).sum();
        out.push(data[off]);
    });
    let a = ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?;
    Ok(Labeled { a, labels: uniq })
}

/// Sums out every axis whose label is not in `keep`.
fn sum_out<T: Scalar>(mut x: Labeled<T>, keep: &dyn Fn(Label) -> bool) -> Labeled<T> {
    for d in (0..x.labels.len()).rev() {
        if !keep(x.labels[d]) {
            x.a = x.a.fold_axis(Axis(d), T::ZERO, |&acc, &v| acc.add(v));
            x.labels.remove(d);
        }
    }
    x
}

/// Contracts two operands, keeping the labels for which `keep` holds.
fn contract<T: Scalar>(x: Labeled<T>, y: Labeled<T>, keep: &dyn Fn(Label) -> bool) -> OpResult<Labeled<T>> {
    let size_of = |z: &Labeled<T>, l: Label| z.labels.iter().position(|&m| m == l).map(|d| z.a.shape()[d]);
    let mut batch = Vec::new();
    let mut summed = Vec::new();
    let mut left = Vec::new();
    for &l in &x.labels {
        if y.labels.contains(&l) {
            if keep(l) {
                batch.push(l);
            } else {
                summed.push(l);
            }
        } else {
            left.push(l);
        }
    }
    let right: Vec<Label> = y.labels.iter().copied().filter(|l| !x.labels.contains(l)).collect();
    // Shared labels broadcast a size of 1 against the other side's size.
    let size = |l: Label| -> OpResult<usize> {
        let (a, b) = (size_of(&x, l), size_of(&y, l));
        match (a, b) {
            (Some(a), Some(b)) if a != b && a != 1 && b != 1 => {
                Err(format!("einsum label {} has sizes {a} and {b}", label_name(l)))
            }
            (Some(a), Some(b)) => Ok(if a == 1 { b } else { a }),
            (Some(a), None) | (None, Some(a)) => Ok(a),
            (None, None) => Err("internal: unknown label".into()),
        }
    };
    let prod = |ls: &[Label]| -> OpResult<usize> { ls.iter().map(|&l| size(l)).product() };
    let (nb, m, k, n) = (prod(&batch)?, prod(&left)?, prod(&summed)?, prod(&right)?);
    let xa = matrices(&x, &batch, &left, &summed, &size)?;
    let ya = matrices(&y, &batch, &summed, &right, &size)?;
    let z = batched_gemm(&xa.view().into_dyn(), &ya.view().into_dyn(), &[nb], m, k, n)?;
    let labels: Vec<Label> = batch.iter().chain(&left).chain(&right).copied().collect();
    let shape: Vec<usize> = labels.iter().map(|&l| size(l)).collect::<OpResult<_>>()?;
    Ok(Labeled { a: reshape_owned(z, &shape)?, labels })
}

/// `z` as `[nb, rows, cols]` matrices for the labels `batch`, `rows`, `cols` (of sizes given
/// by `size`): borrowed when its axes already come in the order (batch, rows, cols), or
/// (batch, cols, rows) viewed transposed; copied (and broadcast) otherwise.
fn matrices<'a, T: Scalar>(
    z: &'a Labeled<T>,
    batch: &[Label],
    rows: &[Label],
    cols: &[Label],
    size: &dyn Fn(Label) -> OpResult<usize>,
) -> OpResult<CowArray<'a, T, Ix3>> {
    let prod = |ls: &[Label]| -> OpResult<usize> { ls.iter().map(|&l| size(l)).product() };
    let (nb, r, c) = (prod(batch)?, prod(rows)?, prod(cols)?);
    let straight: Vec<Label> = batch.iter().chain(rows).chain(cols).copied().collect();
    let swapped: Vec<Label> = batch.iter().chain(cols).chain(rows).copied().collect();
    // Without broadcasting, every dim already has the contraction's size.
    let mut full = true;
    for (&l, &d) in z.labels.iter().zip(z.a.shape()) {
        full &= d == size(l)?;
    }
    if z.a.is_standard_layout() && full {
        if z.labels == straight {
            let v = z.a.view().into_shape_with_order((nb, r, c)).map_err(|e| e.to_string())?;
            return Ok(v.into());
        }
        if z.labels == swapped {
            let v = z.a.view().into_shape_with_order((nb, c, r)).map_err(|e| e.to_string())?;
            return Ok(v.permuted_axes([0, 2, 1]).into());
        }
    }
    let perm: Vec<usize> = straight
        .iter()
        .map(|l| z.labels.iter().position(|m| m == l).expect("label of this operand"))
        .collect();
    let target: Vec<usize> = straight.iter().map(|&l| size(l)).collect::<OpResult<_>>()?;
    let v = z.a.view().permuted_axes(IxDyn(&perm));
    let v = v.broadcast(IxDyn(&target)).ok_or("internal: einsum broadcast")?;
    let owned = reshape_owned(v.as_standard_layout().into_owned(), &[nb, r, c])?;
    Ok(owned.into_dimensionality::<Ix3>().map_err(|e| e.to_string())?.into())
}

fn einsum<T: Scalar>(eq: &Equation, ops: &[&ArrayViewD<T>]) -> OpResult<ArrayD<T>> {
    let n = ops.len();
    if n == 0 || eq.inputs.len() != n {
        return Err("einsum: operand count does not match the equation".into());
    }
    // Labels needed after operand i: the output's and those of the operands after i.
    let needed_after =
        |i: usize, l: Label| eq.output.contains(&l) || eq.inputs[i + 1..].iter().any(|t| t.contains(&l));
    let mut cur = unique_labels(ops[0], &eq.inputs[0])?;
    cur = sum_out(cur, &|l| needed_after(0, l));
    for (i, op) in ops.iter().enumerate().skip(1) {
        let mut nxt = unique_labels(op, &eq.inputs[i])?;
        let cur_labels = cur.labels.clone();
        nxt = sum_out(nxt, &|l| cur_labels.contains(&l) || needed_after(i, l));
        cur = contract(cur, nxt, &|l| needed_after(i, l))?;
    }
    cur = sum_out(cur, &|l| eq.output.contains(&l));
    let perm: Vec<usize> = eq
        .output
        .iter()
        .map(|l| {
            cur.labels.iter().position(|m| m == l).ok_or_else(|| "internal: output label lost".to_string())
        })
        .collect::<OpResult<_>>()?;
    let out = cur.a.permuted_axes(IxDyn(&perm));
    Ok(if out.is_standard_layout() { out } else { out.as_standard_layout().into_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{Attr, Attrs};
    use crate::ops::linalg::tests::run;

    fn f64t(shape: &[usize], v: Vec<f64>) -> Tensor {
        Tensor::F64(ArrayD::from_shape_vec(IxDyn(shape), v).unwrap())
    }

    fn einsum_of(eq: &str, ins: Vec<Tensor>) -> Tensor {
        run(&EINSUM, &Attrs::new().with("equation", Attr::Str(eq.into())), ins).remove(0)
    }

    #[test]
    fn parse_implicit_and_ellipsis() {
        let e = Equation::parse("ba,cb", &[2, 2]).unwrap();
        assert_eq!(e.output, vec!['a' as Label, 'c' as Label]);
        let e = Equation::parse("...ij,...jk", &[3, 2]).unwrap();
        assert_eq!(e.inputs[0], vec![ELLIPSIS, 'i' as Label, 'j' as Label]);
        assert_eq!(e.inputs[1], vec!['j' as Label, 'k' as Label]);
        assert_eq!(e.output, vec![ELLIPSIS, 'i' as Label, 'k' as Label]);
        assert!(Equation::parse("ij->k", &[2]).is_err());
        assert!(Equation::parse("ij", &[3]).is_err());
    }

    #[test]
    fn forms() {
        let x = f64t(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(einsum_of("ij->ji", vec![x.clone()]).to_f64_vec(), vec![1., 4., 2., 5., 3., 6.]);
        assert_eq!(einsum_of("ij->i", vec![x.clone()]).to_f64_vec(), vec![6., 15.]);
        assert_eq!(einsum_of("ij->", vec![x.clone()]).to_f64_vec(), vec![21.]);
        // matmul with implicit output
        let y = f64t(&[3, 1], vec![1., 0., 2.]);
        assert_eq!(einsum_of("ij,jk", vec![x.clone(), y]).to_f64_vec(), vec![7., 16.]);
        // trace, diagonal, batch diagonal
        let sq = f64t(&[2, 2], vec![1., 2., 3., 4.]);
        assert_eq!(einsum_of("ii", vec![sq.clone()]).to_f64_vec(), vec![5.]);
        assert_eq!(einsum_of("ii->i", vec![sq.clone()]).to_f64_vec(), vec![1., 4.]);
        let b = f64t(&[2, 2, 2], vec![1., 2., 3., 4., 5., 6., 7., 8.]);
        assert_eq!(einsum_of("...ii ->...i", vec![b]).to_f64_vec(), vec![1., 4., 5., 8.]);
        // outer product and three operands
        let u = f64t(&[2], vec![1., 2.]);
        let v = f64t(&[3], vec![1., 10., 100.]);
        assert_eq!(
            einsum_of("i,j->ij", vec![u.clone(), v.clone()]).to_f64_vec(),
            vec![1., 10., 100., 2., 20., 200.]
        );
        assert_eq!(einsum_of("i,ij,j->", vec![u.clone(), x.clone(), v]).to_f64_vec(), vec![321. + 2. * 654.]);
        // broadcasting ellipsis
        let w = f64t(&[1, 2], vec![1., 2.]);
        let z = f64t(&[3, 2], vec![1., 1., 2., 2., 3., 3.]);
        assert_eq!(einsum_of("...i,...i->...", vec![w, z]).to_f64_vec(), vec![3., 6., 9.]);
        // scalar
        assert_eq!(einsum_of("->", vec![f64t(&[], vec![4.])]).to_f64_vec(), vec![4.]);
    }
}
