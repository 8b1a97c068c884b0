//! Per-kernel profiles: what one kernel call computes and moves ([`work`], counted from its
//! kernel IR), and what a profiled run measured per call ([`KernelTimes`], from the runtime's
//! per-kernel hook; see [`crate::Backend::profile`]).
//!
//! The counts are static: loops have constant trip counts, so the arithmetic of a call is the
//! product of its loop extents and the operations inside. They are what `edgec bench --profile`
//! divides by the measured time to state FLOP/s and bytes/s against the machine's peak.

use crate::kir::{Access, Expr, Kernel, Stmt, Ty};

/// What one call of a kernel does, counted from its kernel IR.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    /// Floating-point operations: one per float add, multiply, compare-free unary op or math
    /// function per element, and 2·m·n·k (+ m·n for a bias) per f32 GEMM.
    pub flops: f64,
    /// Integer multiply-accumulate work of int8 GEMMs, 2·m·n·k per product.
    pub int_ops: f64,
    /// Bytes of the call's operands and results (each parameter once, scratch excluded): the
    /// least traffic the call can cause.
    pub bytes: f64,
}

/// How a profiled run measured time.
#[derive(Clone, Debug, PartialEq)]
pub enum TimeUnit {
    /// Nanoseconds of a real clock (host, or the host clock around an emulated run).
    Nanoseconds,
    /// Instructions executed, counted by the emulator (`qemu-system-arm -icount shift=0`, read
    /// through the board's timer; resolution `granularity` instructions).
    Instructions { granularity: u64 },
}

/// Per-call measurements of profiled runs of a compiled model after one warm-up run: per call
/// and for the whole run, the median over `runs` runs where the backend keeps each run (in
/// process on the host), the mean otherwise (the harness sums; under `-icount` runs are
/// deterministic anyway).
#[derive(Clone, Debug)]
pub struct KernelTimes {
    pub unit: TimeUnit,
    /// Where the numbers come from, for the reader ("CLOCK_MONOTONIC, natively", ...).
    pub clock: String,
    pub runs: usize,
    /// Per kernel call of the program, in schedule order, per run.
    pub calls: Vec<f64>,
    /// The whole model (one `edgec_run`) of the same instrumented build, same unit, per run.
    pub whole: f64,
}

/// The median of `v` (the mean of the middle two for an even count; NaN for none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The static work of one call of `k`.
pub fn work(k: &Kernel) -> Work {
    let mut w = Work::default();
    stmts(k, &k.body, 1.0, &mut w);
    w.bytes = k
        .params
        .iter()
        .filter(|p| p.access != Access::Scratch)
        .map(|p| (p.len * p.ty.bytes() as u64) as f64)
        .sum();
    w
}

fn stmts(k: &Kernel, body: &[Stmt], times: f64, w: &mut Work) {
    for s in body {
        match s {
            Stmt::For { extent, body, .. } => stmts(k, body, times * *extent as f64, w),
            Stmt::Store { value, .. } | Stmt::Let { value, .. } | Stmt::Assign { value, .. } => {
                w.flops += times * expr_flops(k, value)
            }
            Stmt::If { cond, then, els } => {
                w.flops += times * expr_flops(k, cond);
                // The larger branch: an upper bound, as either may run.
                let (mut a, mut b) = (Work::default(), Work::default());
                stmts(k, then, times, &mut a);
                stmts(k, els, times, &mut b);
                let big = if a.flops + a.int_ops >= b.flops + b.int_ops { a } else { b };
                w.flops += big.flops;
                w.int_ops += big.int_ops;
            }
            Stmt::Gemm { spec, bias, .. } => {
                let s = &spec.shape;
                let mn = (s.m * s.n) as f64;
                w.flops += times * (2.0 * mn * s.k as f64 + if bias.is_some() { mn } else { 0.0 });
            }
            Stmt::QGemm { spec, .. } => {
                let s = &spec.shape;
                w.int_ops += times * 2.0 * (s.m * s.n * s.k) as f64;
            }
            Stmt::Copy { .. } | Stmt::Lookup { .. } => {}
        }
    }
}

/// Float operations of one evaluation of `e` (integer index arithmetic is not counted).
fn expr_flops(k: &Kernel, e: &Expr) -> f64 {
    match e {
        Expr::FConst(..) | Expr::IConst(..) | Expr::Var(_) => 0.0,
        Expr::Load(_, i) => expr_flops(k, i),
        Expr::Un(_, a) => expr_flops(k, a) + float(ty(k, a)),
        Expr::Bin(_, a, b) => expr_flops(k, a) + expr_flops(k, b) + float(ty(k, a)),
        Expr::Cmp(_, a, b) => expr_flops(k, a) + expr_flops(k, b),
        Expr::Select(c, a, b) => expr_flops(k, c) + expr_flops(k, a).max(expr_flops(k, b)),
        Expr::Cast(_, a) => expr_flops(k, a),
        Expr::Math(_, args) => 1.0 + args.iter().map(|a| expr_flops(k, a)).sum::<f64>(),
    }
}

fn float(t: Option<Ty>) -> f64 {
    if t.is_some_and(|t| t.is_float()) {
        1.0
    } else {
        0.0
    }
}

/// The type of an expression, where it can be read off without a full type check.
fn ty(k: &Kernel, e: &Expr) -> Option<Ty> {
    match e {
        Expr::FConst(_, t) | Expr::IConst(_, t) | Expr::Cast(t, _) => Some(*t),
        Expr::Var(v) => k.vars.get(*v).copied(),
        Expr::Load(b, _) => k.params.get(*b).map(|p| p.ty),
        Expr::Un(_, a) | Expr::Bin(_, a, _) | Expr::Select(_, a, _) => ty(k, a),
        Expr::Cmp(..) => Some(Ty::Bool),
        Expr::Math(..) => Some(Ty::F32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::{lower, LowerOptions};

    fn program(src: &str) -> crate::lower::Program {
        let m = edgec_ir::parser::parse_module(src).unwrap();
        lower(m.main().unwrap(), &LowerOptions::default()).unwrap()
    }

    #[test]
    fn counts_elementwise_and_gemm_work() {
        let add = program(
            "func @f(%a: tensor<4x8xf32>, %b: tensor<4x8xf32>) -> (\"y\": tensor<4x8xf32>) {\n  %0 = math.add %a, %b : tensor<4x8xf32> loc(\"add\")\n  func.return %0 loc(unknown)\n}\n",
        );
        let w = work(&add.kernels[add.calls[0].kernel.index()]);
        assert_eq!(w.flops, 32.0);
        assert_eq!(w.bytes, 3.0 * 32.0 * 4.0);
        let mm = program(
            "func @f(%a: tensor<3x5xf32>, %b: tensor<5x7xf32>) -> (\"y\": tensor<3x7xf32>) {\n  %0 = nn.matmul %a, %b : tensor<3x7xf32> loc(\"mm\")\n  func.return %0 loc(unknown)\n}\n",
        );
        let total: f64 = mm.calls.iter().map(|c| work(&mm.kernels[c.kernel.index()]).flops).sum();
        assert_eq!(total, 2.0 * 3.0 * 5.0 * 7.0);
    }
}
