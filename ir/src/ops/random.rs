//! Ops whose results depend on a random stream: training-mode dropout.
//!
//! ONNX leaves the random numbers of `Dropout` unspecified (only `seed` is an attribute). edgec
//! fixes them so that results are reproducible and agree with ONNX's reference implementation:
//! the mask is drawn from a Mersenne Twister (MT19937) seeded with `seed` (0 when absent) the way
//! numpy's legacy `RandomState(seed)` seeds it, one uniform double in [0, 1) per element in
//! row-major order (53 bits from two 32-bit draws), and an element is kept when its draw is
//! `>= ratio`. Inference-mode dropout never reaches the IR: the frontend resolves it to the
//! identity.

use super::util::{input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::tensor::Tensor;
use crate::types::{ScalarType, TensorType};
use ndarray::{ArrayD, Zip};

pub static DROPOUT: OpDef = OpDef {
    name: "nn.dropout",
    summary: "Training-mode dropout: zeroes elements with probability `ratio` (MT19937 stream seeded by \
              `seed`, as ONNX's reference) and scales the rest by 1/(1-ratio); identity when \
              `training_mode` is false or `ratio` is 0.",
    operands: &["data", "ratio?", "training_mode?"],
    results: &["output", "mask?"],
    attrs: &[AttrDef::opt("seed", AttrKind::Int, "0")],
    // Not PURE in the optimizer's sense would forbid CSE of two dropouts with equal seeds, which
    // is correct anyway: the same seed gives the same mask.
    traits: Traits::PURE,
    infer: infer_dropout,
    eval: eval_dropout,
};

fn infer_dropout(ctx: &InferCtx) -> OpResult<Vec<TensorType>> {
    let data = operand(ctx, 0)?;
    if !data.scalar().is_float() {
        return Err(format!("data must be a float tensor, found {}", data.elem));
    }
    if ctx.has_operand(1) {
        let r = operand(ctx, 1)?;
        if !r.scalar().is_float() || r.rank() != 0 {
            return Err(format!("ratio must be a float scalar, found {r}"));
        }
    }
    if ctx.has_operand(2) {
        let t = operand(ctx, 2)?;
        if t.scalar() != ScalarType::Bool || t.rank() != 0 {
            return Err(format!("training_mode must be a bool scalar, found {t}"));
        }
    }
    let mut out = vec![data.clone()];
    if ctx.num_results > 1 {
        out.push(TensorType::new(data.dims.clone(), ScalarType::Bool));
    }
    Ok(out)
}

fn eval_dropout(ctx: &EvalCtx) -> OpResult<Vec<Tensor>> {
    let data = input(ctx, 0)?;
    let ratio = match ctx.opt_input(1) {
        Some(r) => *r.to_f64_vec().first().ok_or("ratio is empty")?,
        None => 0.5,
    };
    let training = match ctx.opt_input(2) {
        Some(Tensor::Bool(t)) => *t.iter().next().ok_or("training_mode is empty")?,
        Some(other) => return Err(format!("training_mode must be bool, found {}", other.scalar_type())),
        None => false,
    };
    if !(0.0..1.0).contains(&ratio) {
        return Err(format!("ratio must be in [0, 1), found {ratio}"));
    }
    let shape = data.shape().to_vec();
    let mask: ArrayD<bool> = if !training || ratio == 0.0 {
        ArrayD::from_elem(shape.as_slice(), true)
    } else {
        let seed = ctx.attrs.int("seed").unwrap_or(0);
        let seed = u32::try_from(seed).map_err(|_| format!("seed {seed} is outside [0, 2^32)"))?;
        let mut rng = Mt19937::new(seed);
        let draws: Vec<bool> = (0..data.len()).map(|_| rng.next_f64() >= ratio).collect();
        ArrayD::from_shape_vec(shape.as_slice(), draws).map_err(|e| e.to_string())?
    };
    let scale = if training { 1.0 / (1.0 - ratio) } else { 1.0 };
    let output = match data {
        Tensor::F32(a) => {
            Tensor::F32(scaled(a, &mask, |x, keep| if keep { (x as f64 * scale) as f32 } else { 0.0 }))
        }
        Tensor::F64(a) => Tensor::F64(scaled(a, &mask, |x, keep| if keep { x * scale } else { 0.0 })),
        Tensor::F16(a) => Tensor::F16(scaled(a, &mask, |x, keep| {
            half::f16::from_f64(if keep { x.to_f64() * scale } else { 0.0 })
        })),
        Tensor::BF16(a) => Tensor::BF16(scaled(a, &mask, |x, keep| {
            half::bf16::from_f64(if keep { x.to_f64() * scale } else { 0.0 })
        })),
        other => return Err(format!("data must be a float tensor, found {}", other.scalar_type())),
    };
    let mut out = vec![output];
    if ctx.result_types.len() > 1 {
        out.push(Tensor::Bool(mask));
    }
    Ok(out)
}

fn scaled<T: Copy>(a: &ArrayD<T>, mask: &ArrayD<bool>, f: impl Fn(T, bool) -> T) -> ArrayD<T> {
    let mut out = a.clone();
    Zip::from(&mut out).and(mask).for_each(|o, &m| *o = f(*o, m));
    out
}

/// The `n` uniform draws in [0, 1) that `nn.dropout` with this `seed` compares with its ratio (an
/// element is kept when its draw is at least the ratio). Code generators store them as a table.
pub fn dropout_draws(seed: u32, n: usize) -> Vec<f64> {
    let mut rng = Mt19937::new(seed);
    (0..n).map(|_| rng.next_f64()).collect()
}

/// The 32-bit Mersenne Twister (Matsumoto & Nishimura, 1998), seeded like numpy's legacy
/// `RandomState(int)`, with numpy's 53-bit double construction.
struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Mt19937 {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn regenerate(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            self.state[i] = v;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.regenerate();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// A double in [0, 1) from 27 + 26 random bits.
    fn next_f64(&mut self) -> f64 {
        let a = (self.next_u32() >> 5) as f64;
        let b = (self.next_u32() >> 6) as f64;
        (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mt19937_matches_the_reference_sequence() {
        // First outputs of MT19937 seeded with 5489 (the generator's published default).
        let mut r = Mt19937::new(5489);
        assert_eq!(r.next_u32(), 3_499_211_612);
        assert_eq!(r.next_u32(), 581_869_302);
        // numpy: np.random.RandomState(0).uniform(0, 1, 2) -> [0.5488135039273248, 0.7151893663724195]
        let mut r = Mt19937::new(0);
        assert_eq!(r.next_f64(), 0.548_813_503_927_324_8);
        assert_eq!(r.next_f64(), 0.715_189_366_372_419_5);
    }
}
