//! Numerical comparison of interpreter/backend outputs with references.

use edgec_ir::Tensor;

/// ONNX's backend-test tolerance: `|actual - expected| <= atol + rtol * |expected|`
/// elementwise; NaNs must coincide; integers and booleans must be equal.
pub fn allclose(expected: &Tensor, actual: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if expected.scalar_type() != actual.scalar_type() {
        return Err(format!("element type {} but expected {}", actual.scalar_type(), expected.scalar_type()));
    }
    if expected.shape() != actual.shape() {
        return Err(format!("shape {:?} but expected {:?}", actual.shape(), expected.shape()));
    }
    let e = expected.to_f64_vec();
    let a = actual.to_f64_vec();
    let float = expected.scalar_type().is_float();
    let mut worst: Option<(usize, f64)> = None;
    let mut bad = 0usize;
    for (i, (&x, &y)) in e.iter().zip(&a).enumerate() {
        let ok = if float {
            if x.is_nan() || y.is_nan() {
                x.is_nan() && y.is_nan()
            } else if x.is_infinite() || y.is_infinite() {
                x == y
            } else {
                (y - x).abs() <= atol + rtol * x.abs()
            }
        } else {
            x == y
        };
        if !ok {
            bad += 1;
            let d = if x.is_nan() || y.is_nan() { f64::INFINITY } else { (y - x).abs() };
            if worst.is_none_or(|(_, w)| d > w) {
                worst = Some((i, d));
            }
        }
    }
    match worst {
        None => Ok(()),
        Some((i, d)) => Err(format!(
            "{bad} of {} elements differ; worst at flat index {i}: got {}, expected {} (|diff| {d:.3e})",
            e.len(),
            a[i],
            e[i]
        )),
    }
}

/// Max absolute error relative to the reference's largest magnitude:
/// `max|a - e| / max|e|` (the zoo's acceptance measure). Types and shapes must agree.
pub fn max_rel_error(expected: &Tensor, actual: &Tensor) -> Result<f64, String> {
    if expected.shape() != actual.shape() {
        return Err(format!("shape {:?} but expected {:?}", actual.shape(), expected.shape()));
    }
    let e = expected.to_f64_vec();
    let a = actual.to_f64_vec();
    let max_ref = e.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let max_err =
        e.iter()
            .zip(&a)
            .fold(0.0f64, |m, (x, y)| if (x - y).is_nan() { f64::INFINITY } else { m.max((x - y).abs()) });
    Ok(if max_ref == 0.0 { max_err } else { max_err / max_ref })
}

/// Deterministic inputs for `f` in [-2, 2) (integers in [0, 4), booleans alternating), or `None`
/// when a parameter's type is not static. Used by differential tests that have no data of their
/// own (filetests, pipeline checks).
pub fn pseudo_random_inputs(f: &edgec_ir::Function, seed: u64) -> Option<Vec<Tensor>> {
    use edgec_ir::ScalarType;
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64*: enough spread for test data, and the same numbers on every machine.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut out = Vec::new();
    for &p in f.params() {
        let ty = f.value_type(p);
        let shape = ty.static_shape()?;
        let n: usize = shape.iter().product();
        let s = ty.scalar();
        let values: Vec<f64> = (0..n)
            .map(|i| match s {
                ScalarType::Bool => (i % 2) as f64,
                _ if s.is_float() => next() * 4.0 - 2.0,
                _ => (next() * 4.0).floor(),
            })
            .collect();
        out.push(Tensor::from_f64(s, &shape, &values).ok()?);
    }
    Some(out)
}

/// Whether two output lists agree to `rtol` relative to each output's largest magnitude
/// (integers exactly).
pub fn same_outputs(want: &[Tensor], have: &[Tensor], rtol: f64) -> Result<(), String> {
    if want.len() != have.len() {
        return Err(format!("{} outputs but expected {}", have.len(), want.len()));
    }
    for (i, (w, h)) in want.iter().zip(have).enumerate() {
        if w.scalar_type() != h.scalar_type() {
            return Err(format!(
                "output #{i}: element type {} but expected {}",
                h.scalar_type(),
                w.scalar_type()
            ));
        }
        if w.scalar_type().is_float() {
            let e = max_rel_error(w, h).map_err(|m| format!("output #{i}: {m}"))?;
            if e.is_nan() || e > rtol {
                return Err(format!("output #{i}: max error / max |reference| = {e:.3e} > {rtol:e}"));
            }
        } else {
            allclose(w, h, 0.0, 0.0).map_err(|m| format!("output #{i}: {m}"))?;
        }
    }
    Ok(())
}
