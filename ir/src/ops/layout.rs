//! `layout.*`: data layouts chosen for a target and made explicit in the IR.
//!
//! A layout op states how a value is stored and means the value in its plain (row-major)
//! layout, so the interpreter, the verifier and every pass that does not care see an ordinary
//! value, while a backend that wants the stored form reads the operand as it is. The
//! `choose-layout` pass writes them (see `docs/optimization.md`).

use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::map_tensor;
use crate::tensor::Tensor;
use crate::types::{Dim, TensorType};
use ndarray::{ArrayD, IxDyn};

pub static FROM_PANELS: OpDef = OpDef {
    name: "layout.from_panels",
    summary: "A `[K, N]` matrix stored as column panels: `panels` is `[P, K, NR]` with \
              P = ceil(N / NR), panel p holding columns p*NR .. p*NR+NR-1 row by row (zero past \
              column N = `cols`), so result[k][j] = panels[j / NR][k][j % NR]. This is the layout \
              of the backend GEMM micro-kernel's B panels; `choose-layout` stores constant \
              weights this way so that the backend uses them without packing.",
    operands: &["panels"],
    results: &["matrix"],
    attrs: &[AttrDef::req("cols", AttrKind::Int)],
    traits: Traits::PURE.union(Traits::DATA_MOVEMENT),
    infer: infer_from_panels,
    eval: eval_from_panels,
};

/// `(panels, k, nr, cols)` of a well-formed `from_panels`.
fn geometry(t: &TensorType, cols: Option<i64>) -> OpResult<(u64, u64, u64, u64)> {
    let cols = cols.ok_or("missing attribute `cols`")?;
    let dims: Vec<u64> = t
        .dims
        .iter()
        .map(Dim::as_static)
        .collect::<Option<_>>()
        .ok_or_else(|| format!("panels must have a static shape, got {t}"))?;
    let [p, k, nr] = dims[..] else { return Err(format!("panels must be [P, K, NR], got {t}")) };
    if cols < 1 || nr == 0 || p != (cols as u64).div_ceil(nr) {
        return Err(format!(
            "{p} panels of width {nr} cannot hold {cols} columns (need ceil({cols} / {nr}))"
        ));
    }
    Ok((p, k, nr, cols as u64))
}

fn infer_from_panels(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let t = operand(ctx, 0)?;
    let (_, k, _, cols) = geometry(t, ctx.attrs.int("cols"))?;
    Ok(vec![TensorType { dims: vec![Dim::Static(k), Dim::Static(cols)], elem: t.elem.clone() }])
}

fn unpack<T: Clone>(a: &ArrayD<T>, cols: usize) -> ArrayD<T> {
    let (k, nr) = (a.shape()[1], a.shape()[2]);
    let a = a.as_standard_layout();
    let src = a.as_slice().expect("standard layout");
    let mut out = Vec::with_capacity(k * cols);
    for r in 0..k {
        // Row r: the valid columns of each panel's row r, panel after panel.
        for j0 in (0..cols).step_by(nr.max(1)) {
            let at = (j0 / nr) * k * nr + r * nr;
            out.extend_from_slice(&src[at..at + nr.min(cols - j0)]);
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[k, cols]), out).expect("matrix shape")
}

fn eval_from_panels(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let (_, _, _, cols) = geometry(&ctx.operand_types[0], ctx.attrs.int("cols"))?;
    Ok(vec![map_tensor!(data, a => unpack(a, cols as usize))])
}

/// Packs a row-major `[K, N]` matrix into `[ceil(N / nr), K, nr]` panels (zero-padded): the
/// operand `layout.from_panels` reads back as `m`.
pub fn to_panels<T: Clone + Default>(m: &ArrayD<T>, nr: usize) -> ArrayD<T> {
    let (k, n) = (m.shape()[0], m.shape()[1]);
    let panels = n.div_ceil(nr);
    // Row slices, not per-element dynamic indexing: a 45M-parameter model packs in well under a
    // second this way.
    let m = m.as_standard_layout();
    let src = m.as_slice().expect("standard layout");
    let mut out = vec![T::default(); panels * k * nr];
    if k == 0 || nr == 0 {
        return ArrayD::from_shape_vec(IxDyn(&[panels, k, nr]), out).expect("panel shape");
    }
    for (p, panel) in out.chunks_mut(k * nr.max(1)).enumerate() {
        let (j0, w) = (p * nr, nr.min(n - p * nr));
        for (r, row) in panel.chunks_mut(nr).enumerate() {
            row[..w].clone_from_slice(&src[r * n + j0..r * n + j0 + w]);
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[panels, k, nr]), out).expect("panel shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_round_trip() {
        let m = ArrayD::from_shape_vec(IxDyn(&[3, 5]), (0..15).map(|v| v as f32).collect()).unwrap();
        let p = to_panels(&m, 4);
        assert_eq!(p.shape(), &[2, 3, 4]);
        // Panel 1 holds column 4 and three zero columns.
        assert_eq!(p[IxDyn(&[1, 2, 0])], 14.0);
        assert_eq!(p[IxDyn(&[1, 2, 1])], 0.0);
        assert_eq!(unpack(&p, 5), m);
        let ty = TensorType::of(&[2, 3, 4], crate::types::ScalarType::F32);
        assert!(geometry(&ty, Some(5)).is_ok());
        assert!(geometry(&ty, Some(9)).unwrap_err().contains("cannot hold 9 columns"));
    }
}
