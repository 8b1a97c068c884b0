//! JIT-compiles an f32 GEMM (default 512×512×512) for the host ISA and reports the median GFLOP/s.
//!
//! `cargo run --release -p edgec-backends --features llvm --example gemm_bench [-- M N K]`
//!
//! Environment: `EDGEC_GEMM_TILE=mr,nv,kc,mc,nc,ku` overrides the tile/blocking;
//! `EDGEC_GEMM_PREPACKED=1` benchmarks with a compile-time packed B; `EDGEC_GEMM_ASM=path` writes
//! the host assembly; `EDGEC_GEMM_PEAK=1` also measures the FMA peak with a 12-chain zmm loop.
use std::time::Instant;

use edgec_backends::llvm::gemm::*;
use inkwell::context::Context;
use inkwell::module::Linkage;
use inkwell::targets::FileType;
use inkwell::OptimizationLevel;

type GemmFn = unsafe extern "C" fn(*const f32, *const f32, *mut f32, *const f32, *mut u8);
type PeakFn = unsafe extern "C" fn(u64) -> f32;

const REFERENCE_PEAK: f64 = 105.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Peak fp32 FMA throughput: `chains` independent `<lanes x float>` FMA chains, `iters` steps.
fn measure_peak(isa: VectorIsa) -> f64 {
    let tm = host_target_machine();
    let ctx = Context::create();
    let module = ctx.create_module("peak");
    let lanes = isa.lanes() as u32;
    let chains = 12usize;
    let f32t = ctx.f32_type();
    let vt = f32t.vec_type(lanes);
    let i64t = ctx.i64_type();
    let f = module.add_function("peak", f32t.fn_type(&[i64t.into()], false), None);
    let b = ctx.create_builder();
    let entry = ctx.append_basic_block(f, "entry");
    let body = ctx.append_basic_block(f, "body");
    let exit = ctx.append_basic_block(f, "exit");
    b.position_at_end(entry);
    b.build_unconditional_branch(body).unwrap();
    b.position_at_end(body);
    let fma = inkwell::intrinsics::Intrinsic::find("llvm.fma")
        .unwrap()
        .get_declaration(&module, &[vt.into()])
        .unwrap();
    let i = b.build_phi(i64t, "i").unwrap();
    let accs: Vec<_> = (0..chains).map(|_| b.build_phi(vt, "a").unwrap()).collect();
    let x = inkwell::types::VectorType::const_vector(&vec![f32t.const_float(0.999_999); lanes as usize]);
    let y = inkwell::types::VectorType::const_vector(&vec![f32t.const_float(1e-7); lanes as usize]);
    let mut next = Vec::new();
    for (c, a) in accs.iter().enumerate() {
        let init =
            inkwell::types::VectorType::const_vector(&vec![f32t.const_float(c as f64); lanes as usize]);
        a.add_incoming(&[(&init, entry)]);
        let v = b.build_call(fma, &[a.as_basic_value().into(), x.into(), y.into()], "").unwrap();
        next.push(v.try_as_basic_value().basic().unwrap());
    }
    let inext = b.build_int_add(i.as_basic_value().into_int_value(), i64t.const_int(1, false), "").unwrap();
    i.add_incoming(&[(&i64t.const_zero(), entry), (&inext, body)]);
    for (a, v) in accs.iter().zip(&next) {
        a.add_incoming(&[(v, body)]);
    }
    let cond = b
        .build_int_compare(
            inkwell::IntPredicate::ULT,
            inext,
            f.get_nth_param(0).unwrap().into_int_value(),
            "",
        )
        .unwrap();
    b.build_conditional_branch(cond, body, exit).unwrap();
    b.position_at_end(exit);
    let mut s = next[0];
    for v in &next[1..] {
        s = b.build_float_add(s.into_vector_value(), v.into_vector_value(), "").unwrap().into();
    }
    let r = b.build_extract_element(s.into_vector_value(), i64t.const_zero(), "").unwrap();
    b.build_return(Some(&r)).unwrap();
    prepare_module_for(&module, &tm).unwrap();
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).unwrap();
    let func = unsafe { ee.get_function::<PeakFn>("peak").unwrap() };
    let iters = 50_000_000u64;
    let mut rates = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let r = unsafe { func.call(iters) };
        let dt = t.elapsed().as_secs_f64();
        std::hint::black_box(r);
        rates.push(iters as f64 * chains as f64 * lanes as f64 * 2.0 / dt / 1e9);
    }
    median(rates)
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("M N K")).collect();
    let (m, n, k) = match args.as_slice() {
        [m, n, k] => (*m, *n, *k),
        _ => (512, 512, 512),
    };
    let tm = host_target_machine();
    let isa = VectorIsa::from_target_machine(&tm);
    let mut tile = GemmTile::for_isa(isa);
    if let Ok(s) = std::env::var("EDGEC_GEMM_TILE") {
        let v: Vec<usize> = s.split(',').map(|x| x.trim().parse().expect("EDGEC_GEMM_TILE")).collect();
        tile.mr = v[0];
        tile.nv = v[1];
        if v.len() > 2 {
            tile.kc = v[2];
        }
        if v.len() > 3 {
            tile.mc = v[3];
        }
        if v.len() > 4 {
            tile.nc = v[4];
        }
        if v.len() > 5 {
            tile.ku = v[5];
        }
    }
    let mut desc = GemmDesc::new(m, n, k);
    desc.b_prepacked = std::env::var("EDGEC_GEMM_PREPACKED").is_ok_and(|v| v == "1");
    let plan = plan_with_tile(&desc, tile);
    println!(
        "host {} ({}), {isa:?}\n{m}x{n}x{k}, prepacked B: {}, tile {}x{} (mr x nr), kc {}, mc {}, nc {}, k-unroll {}",
        tm.get_cpu(),
        tm.get_triple(),
        desc.b_prepacked,
        plan.mr,
        plan.nr,
        plan.kc,
        plan.mc,
        plan.nc,
        plan.ku
    );

    let ctx = Context::create();
    let module = ctx.create_module("gemm_bench");
    let f = emit_sgemm_with_tile(&ctx, &module, tile, isa, "gemm", &desc);
    f.set_linkage(Linkage::External);
    prepare_module_for(&module, &tm).unwrap();
    if let Ok(path) = std::env::var("EDGEC_GEMM_ASM") {
        tm.write_to_file(&module, FileType::Assembly, std::path::Path::new(&path)).unwrap();
    }
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).unwrap();
    let func = unsafe { ee.get_function::<GemmFn>("gemm").unwrap() };

    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0).collect();
    let b_arg = if desc.b_prepacked { pack_b_with_tile(&desc, tile, &b) } else { b.clone() };
    let mut c = vec![0.0f32; m * n];
    let mut scratch = vec![0u8; gemm_scratch_bytes_with_tile(&desc, tile) + 64];
    let off = scratch.as_ptr().align_offset(64);
    let sp = unsafe { scratch.as_mut_ptr().add(off) };
    let run = |c: &mut [f32]| unsafe {
        func.call(a.as_ptr(), b_arg.as_ptr(), c.as_mut_ptr(), std::ptr::null(), sp)
    };

    // Spot-check a few entries.
    run(&mut c);
    for &(i, j) in &[(0, 0), (m - 1, n - 1), (m / 2, n / 3)] {
        let want: f64 = (0..k).map(|p| a[i * k + p] as f64 * b[p * n + j] as f64).sum();
        assert!((c[i * n + j] as f64 - want).abs() <= 1e-3 * (1.0 + want.abs()), "C[{i}][{j}]");
    }

    let flops = 2.0 * m as f64 * n as f64 * k as f64;
    let reps = ((2e9 / flops) as usize).clamp(1, 1000);
    let mut rates = Vec::new();
    let t_all = Instant::now();
    while rates.len() < 15 || (t_all.elapsed().as_secs_f64() < 2.0 && rates.len() < 200) {
        let t = Instant::now();
        for _ in 0..reps {
            run(&mut c);
        }
        rates.push(flops * reps as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    let best = rates.iter().cloned().fold(0.0, f64::max);
    let med = median(rates.clone());
    println!(
        "median {med:.1} GFLOP/s (best {best:.1}) over {} samples of {reps} runs = {:.1}% of {REFERENCE_PEAK} GFLOP/s",
        rates.len(),
        100.0 * med / REFERENCE_PEAK
    );
    if std::env::var("EDGEC_GEMM_PEAK").is_ok_and(|v| v == "1") {
        let peak = measure_peak(isa);
        println!("measured FMA peak {peak:.1} GFLOP/s; GEMM median = {:.1}% of it", 100.0 * med / peak);
    }
}
