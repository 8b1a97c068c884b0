//! TFLite-exact integer arithmetic (docs/int8-arithmetic.md) and the int8 GEMM's description and
//! plain-Rust reference. Pure Rust, no LLVM: the lowering, the tests and the code generator
//! (`llvm::qgemm`, which re-exports this module) all use the same definitions.
//!
//! The quantized product is
//!
//! ```text
//! C[i][j] = clamp(requantize(Σ_k (A[i][k] − a_zp)·(B[k][j] − b_zp) + bias[ch], mult[ch], shift[ch])
//!                 + c_zp, act_min, act_max)
//! ```
//!
//! with `ch = i` ([`QChannel::PerRow`]) or `ch = j` ([`QChannel::PerCol`]). The int32 accumulator
//! wraps on overflow (two's complement), as TFLite's kernels do in practice and as the generated
//! code does.

/// Which index of C selects the per-channel bias, multiplier and shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QChannel {
    /// `ch = i`: one value per row of C (len m). Convolution lowered as `W[Cout×K] · col[K×HW]`.
    PerRow,
    /// `ch = j`: one value per column of C (len n). Fully-connected / matmul `X[M×K] · Wᵀ`.
    PerCol,
}

/// Which operand holds the weights (signed, usually symmetric). The generated code keeps this
/// operand signed and, where the instruction needs one unsigned operand (x86 `vpdpbusd`), makes
/// the other one unsigned. Only the weight operand can be prepacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QWeights {
    A,
    B,
}

/// What the product stores in C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QOut {
    /// int8: requantized, plus `c_zp`, clamped to `act_min..=act_max` (row-major, `ldc`).
    I8,
    /// int32: the raw accumulator `Σ_k (A − a_zp)(B − b_zp) (+ bias[ch])`, wrapping; `mult`,
    /// `shift`, `c_zp` and the activation range are not used. For products whose sums are
    /// combined further (transposed convolution's col2im) before requantization.
    I32,
    /// f32: the int8 value of [`QOut::I8`], dequantized as `(y − c_zp) · scale` in f32 with
    /// `scale = f32::from_bits(scale_bits)`. That f32 product of an f32 scale and a small integer
    /// equals TFLite's f64 product rounded to f32, so it is exactly `q.dequantize` of the int8
    /// result; C is f32.
    F32 { scale_bits: u32 },
    /// f32 without output quantization: `f32(acc) · scale[ch]`, the accumulator of [`QOut::I32`]
    /// converted to f32 and multiplied by the channel's f32 scale, which the routine reads from
    /// its `mult` argument (f32 values in place of the int32 multipliers; `shift`, `c_zp` and the
    /// activation range are not used). C is f32.
    Scaled,
}

/// Where [`crate::llvm::qgemm::pack_weights`] puts each weight of a packed operand (see
/// `qgemm::packed_layout`): element (`idx`, `k`), `idx` the row of A or the column of B, is at
/// byte `(idx / width) · panel_bytes + ((k / kg) · width + idx % width) · kg + k % kg`. Other ops
/// that read a packed constant (a tied embedding's lookup) use it so that one copy serves both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QPackedLayout {
    /// Rows (A) or columns (B) per panel.
    pub width: usize,
    /// Consecutive k stored together.
    pub kg: usize,
    pub panel_bytes: usize,
}

impl QPackedLayout {
    /// Byte offset of element (`idx`, `k`).
    pub fn offset(&self, idx: usize, k: usize) -> usize {
        (idx / self.width) * self.panel_bytes
            + ((k / self.kg) * self.width + idx % self.width) * self.kg
            + k % self.kg
    }
}

/// An int8 GEMM with static sizes and compile-time zero points / activation range. A, B and C are
/// row-major with leading dimensions `lda`, `ldb`, `ldc` (in elements).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QGemmDesc {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A stored K×M instead of M×K.
    pub a_trans: bool,
    /// B stored N×K instead of K×N.
    pub b_trans: bool,
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
    pub a_zp: i32,
    pub b_zp: i32,
    pub c_zp: i32,
    /// Clamp of the output (within −128..=127).
    pub act_min: i32,
    pub act_max: i32,
    pub channel: QChannel,
    /// An int32 bias per channel is added to the accumulator.
    pub bias: bool,
    pub weights: QWeights,
    /// The weight operand is a constant already in the layout of `llvm::qgemm::pack_weights`
    /// (panels plus its row/column sums); its `*_trans`/`ld*` describe the original matrix.
    pub prepacked: bool,
    /// int8 (requantized) or int32 (raw accumulator) elements in C.
    pub out: QOut,
}

impl QGemmDesc {
    /// Dense `C = A·B` (row-major, tight leading dimensions), weights in B, per-column channels,
    /// zero points 0, no clamp beyond int8.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        QGemmDesc {
            m,
            n,
            k,
            a_trans: false,
            b_trans: false,
            lda: k,
            ldb: n,
            ldc: n,
            a_zp: 0,
            b_zp: 0,
            c_zp: 0,
            act_min: -128,
            act_max: 127,
            channel: QChannel::PerCol,
            bias: false,
            weights: QWeights::B,
            prepacked: false,
            out: QOut::I8,
        }
    }

    /// Sets `a_trans`/`b_trans` and the tight leading dimensions that go with them.
    pub fn with_trans(mut self, a_trans: bool, b_trans: bool) -> Self {
        self.a_trans = a_trans;
        self.b_trans = b_trans;
        self.lda = if a_trans { self.m } else { self.k };
        self.ldb = if b_trans { self.k } else { self.n };
        self
    }

    /// Number of channels (length of bias / mult / shift).
    pub fn channels(&self) -> usize {
        match self.channel {
            QChannel::PerRow => self.m,
            QChannel::PerCol => self.n,
        }
    }

    /// A[i][k] in the stored layout.
    pub fn a_at(&self, a: &[i8], i: usize, k: usize) -> i8 {
        if self.a_trans {
            a[k * self.lda + i]
        } else {
            a[i * self.lda + k]
        }
    }

    /// B[k][j] in the stored layout.
    pub fn b_at(&self, b: &[i8], k: usize, j: usize) -> i8 {
        if self.b_trans {
            b[j * self.ldb + k]
        } else {
            b[k * self.ldb + j]
        }
    }
}

// TFLite's fixed-point arithmetic is defined once, next to the integer ops' reference semantics.
pub use edgec_ir::ops::qint8::{
    multiply_by_quantized_multiplier as requantize, quantize_multiplier, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
};

/// The int32 accumulator `Σ_k (A[i][k] − a_zp)·(B[k][j] − b_zp) (+ bias[ch])`, wrapping.
pub fn qgemm_accumulator(d: &QGemmDesc, a: &[i8], b: &[i8], bias: Option<&[i32]>, i: usize, j: usize) -> i32 {
    let mut acc = 0i32;
    for p in 0..d.k {
        let x = d.a_at(a, i, p) as i32 - d.a_zp;
        let y = d.b_at(b, p, j) as i32 - d.b_zp;
        acc = acc.wrapping_add(x * y);
    }
    if let Some(bias) = bias {
        let ch = if d.channel == QChannel::PerRow { i } else { j };
        acc = acc.wrapping_add(bias[ch]);
    }
    acc
}

/// The plain-Rust reference: the `m×n` result, row-major and dense (`ldc` is ignored). A and B
/// are in their stored (not packed) layouts; `bias` must be given exactly when `d.bias` is set.
pub fn qgemm_reference(
    d: &QGemmDesc,
    a: &[i8],
    b: &[i8],
    bias: Option<&[i32]>,
    mult: &[i32],
    shift: &[i32],
) -> Vec<i8> {
    assert_eq!(bias.is_some(), d.bias, "bias given iff desc.bias");
    let mut out = vec![0i8; d.m * d.n];
    for i in 0..d.m {
        for j in 0..d.n {
            let ch = if d.channel == QChannel::PerRow { i } else { j };
            let acc = qgemm_accumulator(d, a, b, bias, i, j);
            let y = requantize(acc, mult[ch], shift[ch]).wrapping_add(d.c_zp);
            out[i * d.n + j] = y.clamp(d.act_min, d.act_max) as i8;
        }
    }
    out
}

/// The plain-Rust reference of a [`QOut::I32`] product: the `m×n` accumulators
/// ([`qgemm_accumulator`]), row-major and dense.
pub fn qgemm_reference_i32(d: &QGemmDesc, a: &[i8], b: &[i8], bias: Option<&[i32]>) -> Vec<i32> {
    assert_eq!(bias.is_some(), d.bias, "bias given iff desc.bias");
    let mut out = vec![0i32; d.m * d.n];
    for i in 0..d.m {
        for j in 0..d.n {
            out[i * d.n + j] = qgemm_accumulator(d, a, b, bias, i, j);
        }
    }
    out
}

/// The plain-Rust reference of a [`QOut::Scaled`] product: `f32(acc) · scale[ch]`, row-major
/// and dense.
pub fn qgemm_reference_scaled(
    d: &QGemmDesc,
    a: &[i8],
    b: &[i8],
    bias: Option<&[i32]>,
    scale: &[f32],
) -> Vec<f32> {
    let acc = qgemm_reference_i32(d, a, b, bias);
    let ch = |idx: usize| if d.channel == QChannel::PerRow { idx / d.n } else { idx % d.n };
    acc.iter().enumerate().map(|(idx, &v)| v as f32 * scale[ch(idx)]).collect()
}

/// Sums of the weight operand along K, one per output channel of that operand (rows of A when
/// the weights are A, columns of B otherwise), in its stored layout.
pub fn weight_sums(d: &QGemmDesc, w: &[i8]) -> Vec<i32> {
    match d.weights {
        QWeights::A => (0..d.m).map(|i| (0..d.k).map(|p| d.a_at(w, i, p) as i32).sum()).collect(),
        QWeights::B => (0..d.n).map(|j| (0..d.k).map(|p| d.b_at(w, p, j) as i32).sum()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantize_multiplier_cases() {
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.25), (1 << 30, -1));
        // Rounds up to 2^31 and renormalises.
        assert_eq!(quantize_multiplier(1.0 - 1e-12), (1 << 30, 1));
        assert_eq!(quantize_multiplier(1e-12), (0, 0));
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        let (m, s) = quantize_multiplier(0.0123);
        let back = m as f64 * 2f64.powi(s - 31);
        assert!((back - 0.0123).abs() < 1e-11, "{m} {s}");
        assert!((1 << 30..=i32::MAX).contains(&m));
    }

    #[test]
    fn requantize_rounding() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(requantize(100, 1 << 30, 0), 50);
        // SRDHM's nudge sends exact halves up: −1.5 → −1, 1.5 → 2.
        assert_eq!(requantize(-3, 1 << 30, 0), -1);
        assert_eq!(requantize(3, 1 << 30, 0), 2);
        assert_eq!(requantize(1000, 1 << 30, -3), 63);
    }
}
