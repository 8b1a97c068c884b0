//! Range observers: what part of a tensor's calibrated values the int8 grid covers.
//!
//! Every observer sees the exact minimum and maximum and a deterministic subsample of the
//! values (every `stride`-th element, capped per tensor), and picks a range `[lo, hi]` that
//! always contains 0 (so that zero, and the padding of convolutions, is exact):
//! - `minmax`: the whole observed range;
//! - `percentile(p)`: the `(100 − p)`-th and `p`-th percentiles of the subsample;
//! - `mse`: the range, shrunk symmetrically around its ends, that minimizes the mean squared
//!   quantize-dequantize error over the subsample (a grid search, like TensorRT's and ORT's
//!   entropy/MSE calibrators in spirit).

use std::fmt;

/// How the range of an activation tensor is chosen from calibration data.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Observer {
    #[default]
    MinMax,
    /// Percentile of |values| kept, e.g. 99.99.
    Percentile(f64),
    Mse,
}

impl fmt::Display for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observer::MinMax => f.write_str("minmax"),
            Observer::Percentile(p) => write!(f, "percentile:{p}"),
            Observer::Mse => f.write_str("mse"),
        }
    }
}

impl std::str::FromStr for Observer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "minmax" => Ok(Observer::MinMax),
            "mse" => Ok(Observer::Mse),
            "percentile" => Ok(Observer::Percentile(99.99)),
            _ => match s.strip_prefix("percentile:").map(str::parse::<f64>) {
                Some(Ok(p)) if p > 50.0 && p <= 100.0 => Ok(Observer::Percentile(p)),
                _ => Err(format!(
                    "unknown observer `{s}` (expected minmax, percentile[:P] with 50 < P <= 100, or mse)"
                )),
            },
        }
    }
}

/// Values kept per tensor for the percentile and MSE observers.
const MAX_SAMPLES: usize = 1 << 16;

/// Running statistics of one tensor over the calibration samples.
#[derive(Clone, Debug)]
pub struct Stats {
    pub min: f32,
    pub max: f32,
    samples: Vec<f32>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats { min: f32::INFINITY, max: f32::NEG_INFINITY, samples: Vec::new() }
    }
}

impl Stats {
    /// Adds one observed tensor's values (NaNs are ignored).
    pub fn add(&mut self, values: &[f32], keep_samples: bool) {
        for &v in values {
            if v < self.min {
                self.min = v;
            }
            if v > self.max {
                self.max = v;
            }
        }
        if keep_samples && self.samples.len() < MAX_SAMPLES {
            let room = MAX_SAMPLES - self.samples.len();
            let stride = values.len().div_ceil(room).max(1);
            self.samples.extend(values.iter().step_by(stride).filter(|v| !v.is_nan()));
        }
    }

    /// The range the observer picks, always containing 0.
    pub fn range(&self, observer: Observer) -> (f32, f32) {
        // Nothing observed (min = +inf, max = -inf) or only NaNs.
        if self.min.is_nan() || self.max.is_nan() || self.min > self.max {
            return (0.0, 0.0);
        }
        let (lo, hi) = (self.min.min(0.0), self.max.max(0.0));
        match observer {
            Observer::MinMax => (lo, hi),
            Observer::Percentile(p) => {
                if self.samples.is_empty() {
                    return (lo, hi);
                }
                let mut s = self.samples.clone();
                s.sort_by(f32::total_cmp);
                let at = |q: f64| s[((q / 100.0) * (s.len() - 1) as f64).round() as usize];
                (at(100.0 - p).min(0.0), at(p).max(0.0))
            }
            Observer::Mse => {
                if self.samples.is_empty() {
                    return (lo, hi);
                }
                let mut best = (f64::INFINITY, (lo, hi));
                for step in 0..=40 {
                    let a = 1.0 - step as f32 * 0.02;
                    let (l, h) = (lo * a, hi * a);
                    let err = quantization_mse(&self.samples, l, h);
                    if err < best.0 {
                        best = (err, (l, h));
                    }
                }
                best.1
            }
        }
    }
}

/// Mean squared quantize-dequantize error of `values` on the int8 grid of `[lo, hi]`.
fn quantization_mse(values: &[f32], lo: f32, hi: f32) -> f64 {
    let (scale, zp) = super::int8::activation_params(lo, hi);
    let mut sum = 0.0;
    for &v in values {
        let q = edgec_ir::ops::qint8::quantize_value(v, scale, zp, -128, 127);
        let d = edgec_ir::ops::qint8::dequantize_value(q, scale as f64, zp);
        sum += ((d - v) as f64).powi(2);
    }
    sum / values.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observers_pick_ranges_containing_zero() {
        let mut s = Stats::default();
        let mut v: Vec<f32> = (0..1000).map(|i| i as f32 / 1000.0 + 1.0).collect();
        v.push(100.0); // one outlier
        s.add(&v, true);
        assert_eq!(s.range(Observer::MinMax), (0.0, 100.0));
        let (lo, hi) = s.range(Observer::Percentile(99.0));
        assert_eq!(lo, 0.0);
        assert!(hi < 2.0, "{hi}");
        // MSE never does worse than the full range on the values it saw.
        let (l, h) = s.range(Observer::Mse);
        assert!(h <= 100.0 && l == 0.0);
        assert!(quantization_mse(&s.samples, l, h) <= quantization_mse(&s.samples, 0.0, 100.0));
        // A heavy tail (many large values) makes MSE clip.
        let mut t = Stats::default();
        let v: Vec<f32> = (1..20000).map(|i| (20000.0 / i as f32).ln().powi(3)).collect();
        t.add(&v, true);
        let (_, h) = t.range(Observer::Mse);
        assert!(h < t.max, "{h} vs {}", t.max);
        assert_eq!("percentile:99.9".parse::<Observer>().unwrap(), Observer::Percentile(99.9));
        assert!("p".parse::<Observer>().is_err());
    }
}
