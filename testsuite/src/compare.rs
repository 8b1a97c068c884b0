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
