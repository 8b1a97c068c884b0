//! Measures the f32 GEMM micro-kernel on the host: JIT-compiles [`emit_sgemm`] for the host ISA and
//! times it. Used by `examples/gemm_bench.rs`-style tools and the testsuite's zoo benchmark.

use std::time::Instant;

use inkwell::context::Context;
use inkwell::module::Linkage;
use inkwell::OptimizationLevel;

use super::gemm::*;

type GemmFn = unsafe extern "C" fn(*const f32, *const f32, *mut f32, *const f32, *mut u8);

/// The result of [`bench_sgemm_host`].
#[derive(Clone, Debug)]
pub struct SgemmBench {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Median over the samples, GFLOP/s (2·m·n·k flops per call).
    pub median_gflops: f64,
    /// Best sample, GFLOP/s.
    pub best_gflops: f64,
    pub samples: usize,
    /// Micro-kernel tile `mr × nr`.
    pub mr: usize,
    pub nr: usize,
}

/// JIT-compiles `C = A·B` (row-major, `m×k` · `k×n`, B packed at run time) for the host and times
/// it for at least `min_secs` seconds (and at least 15 samples); spot-checks a few entries.
pub fn bench_sgemm_host(m: usize, n: usize, k: usize, min_secs: f64) -> Result<SgemmBench, String> {
    let tm = host_target_machine();
    let isa = VectorIsa::from_target_machine(&tm);
    let tile = GemmTile::for_isa(isa);
    let desc = GemmDesc::new(m, n, k);
    let plan = plan_with_tile(&desc, tile);
    let ctx = Context::create();
    let module = ctx.create_module("sgemm_bench");
    let f = emit_sgemm_with_tile(&ctx, &module, tile, isa, "sgemm_bench", &desc);
    f.set_linkage(Linkage::External);
    prepare_module_for(&module, &tm)?;
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).map_err(|e| e.to_string())?;
    // SAFETY: the function was just emitted with this signature.
    let func = unsafe { ee.get_function::<GemmFn>("sgemm_bench") }.map_err(|e| e.to_string())?;

    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0).collect();
    let mut c = vec![0.0f32; m * n];
    let mut scratch = vec![0u8; gemm_scratch_bytes_with_tile(&desc, tile) + 64];
    let off = scratch.as_ptr().align_offset(64);
    // SAFETY: `off < 64` and the buffer has 64 spare bytes.
    let sp = unsafe { scratch.as_mut_ptr().add(off) };
    // SAFETY: a, b, c and the scratch are as large as the emitted function expects.
    let run =
        |c: &mut [f32]| unsafe { func.call(a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), std::ptr::null(), sp) };
    run(&mut c);
    for &(i, j) in &[(0, 0), (m - 1, n - 1), (m / 2, n / 3)] {
        let want: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
        if (c[i * n + j] as f64 - want).abs() > 1e-3 * (1.0 + want.abs()) {
            return Err(format!("sgemm {m}x{n}x{k}: C[{i}][{j}] = {}, want {want}", c[i * n + j]));
        }
    }
    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let reps = ((2e8 / flops) as usize).clamp(1, 1000);
    let mut rates = Vec::new();
    let start = Instant::now();
    while rates.len() < 15 || (start.elapsed().as_secs_f64() < min_secs && rates.len() < 500) {
        let t = Instant::now();
        for _ in 0..reps {
            run(&mut c);
        }
        rates.push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    let best = rates.iter().cloned().fold(0.0, f64::max);
    rates.sort_by(|x, y| x.total_cmp(y));
    Ok(SgemmBench {
        m,
        n,
        k,
        median_gflops: rates[rates.len() / 2],
        best_gflops: best,
        samples: rates.len(),
        mr: plan.mr,
        nr: plan.nr,
    })
}

/// The result of [`bench_qgemm_host`].
#[derive(Clone, Debug)]
pub struct QgemmBench {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// Median over the samples, GOP/s (2·m·n·k operations per call: multiply and add).
    pub median_gops: f64,
    /// Best sample, GOP/s.
    pub best_gops: f64,
    pub samples: usize,
    pub tile: super::qgemm::QTile,
    pub mr: usize,
    pub nr: usize,
}

type QgemmFn =
    unsafe extern "C" fn(*const i8, *const i8, *mut i8, *const i32, *const i32, *const i32, *mut u8);

/// JIT-compiles an int8 product for the host and times it like [`bench_sgemm_host`], after
/// checking the whole result against `qgemm_reference`. [`qgemm_fc_desc`] and
/// [`qgemm_conv_desc`] are the two usual shapes; the weight operand is packed at compile time
/// when `desc.prepacked`.
pub fn bench_qgemm_host(desc: &super::qgemm::QGemmDesc, min_secs: f64) -> Result<QgemmBench, String> {
    use super::qgemm::*;
    let tm = host_target_machine();
    let tile = QTile::for_target_machine(&tm);
    let desc = desc.clone();
    let (m, n, k) = (desc.m, desc.n, desc.k);
    let plan = qplan(&desc, tile);
    let ctx = Context::create();
    let module = ctx.create_module("qgemm_bench");
    let f = emit_qgemm(&ctx, &module, tile, "qgemm_bench", &desc);
    f.set_linkage(Linkage::External);
    prepare_module_for(&module, &tm)?;
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).map_err(|e| e.to_string())?;
    // SAFETY: the function was just emitted with this signature.
    let func = unsafe { ee.get_function::<QgemmFn>("qgemm_bench") }.map_err(|e| e.to_string())?;

    let a_len = if desc.a_trans { k * desc.lda } else { m * desc.lda };
    let b_len = if desc.b_trans { n * desc.ldb } else { k * desc.ldb };
    let a: Vec<i8> = (0..a_len).map(|i| ((i * 7 % 251) as i32 - 125) as i8).collect();
    let b: Vec<i8> = (0..b_len).map(|i| ((i * 5 % 253) as i32 - 126) as i8).collect();
    let ch = desc.channels();
    let bias: Vec<i32> = (0..ch).map(|j| (j as i32 * 37) % 5000 - 2500).collect();
    let (mult, shift): (Vec<i32>, Vec<i32>) = (0..ch)
        .map(|j| quantize_multiplier(1.0 / (3000.0 * (k as f64).sqrt()) * (1.0 + j as f64 / ch as f64)))
        .unzip();
    let (a_arg, b_arg) = match (desc.prepacked, desc.weights) {
        (true, QWeights::A) => (pack_weights(&desc, tile, &a), b.clone()),
        (true, QWeights::B) => (a.clone(), pack_weights(&desc, tile, &b)),
        _ => (a.clone(), b.clone()),
    };
    let mut c = vec![0i8; m * n];
    let mut scratch = vec![0u8; qgemm_scratch_bytes(&desc, tile) + 64];
    let off = scratch.as_ptr().align_offset(64);
    // SAFETY: `off < 64` and the buffer has 64 spare bytes.
    let sp = unsafe { scratch.as_mut_ptr().add(off) };
    // SAFETY: every buffer is as large as the emitted function expects.
    let run = |c: &mut [i8]| unsafe {
        func.call(
            a_arg.as_ptr(),
            b_arg.as_ptr(),
            c.as_mut_ptr(),
            bias.as_ptr(),
            mult.as_ptr(),
            shift.as_ptr(),
            sp,
        )
    };
    run(&mut c);
    let want = qgemm_reference(&desc, &a, &b, desc.bias.then_some(&bias[..]), &mult, &shift);
    if let Some(idx) = (0..m * n).find(|&i| c[i] != want[i]) {
        return Err(format!(
            "qgemm {m}x{n}x{k}: C[{}][{}] = {}, want {}",
            idx / n,
            idx % n,
            c[idx],
            want[idx]
        ));
    }
    let ops = 2.0 * m as f64 * n as f64 * k as f64;
    let reps = ((4e8 / ops) as usize).clamp(1, 1000);
    let mut rates = Vec::new();
    let start = Instant::now();
    while rates.len() < 15 || (start.elapsed().as_secs_f64() < min_secs && rates.len() < 500) {
        let t = Instant::now();
        for _ in 0..reps {
            run(&mut c);
        }
        rates.push(ops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    let best = rates.iter().cloned().fold(0.0, f64::max);
    rates.sort_by(|x, y| x.total_cmp(y));
    Ok(QgemmBench {
        m,
        n,
        k,
        median_gops: rates[rates.len() / 2],
        best_gops: best,
        samples: rates.len(),
        tile,
        mr: plan.mr,
        nr: plan.nr,
    })
}

/// A fully-connected layer `X[m×k] · Wᵀ` (W stored N×K, per-column channels, activation zero
/// point −3, bias), W prepacked or not.
pub fn qgemm_fc_desc(m: usize, n: usize, k: usize, prepacked: bool) -> super::qgemm::QGemmDesc {
    let mut d = super::qgemm::QGemmDesc::new(m, n, k).with_trans(false, true);
    d.a_zp = -3;
    d.c_zp = 4;
    d.bias = true;
    d.prepacked = prepacked;
    d
}

/// A convolution lowered as `W[cout×k] · col[k×hw]` (weights in A, prepacked, per-row
/// channels, activation zero point 5, bias).
pub fn qgemm_conv_desc(cout: usize, hw: usize, k: usize) -> super::qgemm::QGemmDesc {
    let mut d = super::qgemm::QGemmDesc::new(cout, hw, k);
    d.weights = super::qgemm::QWeights::A;
    d.channel = super::qgemm::QChannel::PerRow;
    d.b_zp = 5;
    d.c_zp = -2;
    d.bias = true;
    d.prepacked = true;
    d
}
