//! JIT-compiles the int8 GEMM (default 512×512×512) for the host and reports its GOP/s next to the
//! f32 GEMM's GFLOP/s for the same shape (one thread).
//!
//! `cargo run --release -p edgec-backends --features llvm --example qgemm_bench [-- M N K]`
use edgec_backends::llvm::gemm_bench::{bench_qgemm_host, bench_sgemm_host, qgemm_conv_desc, qgemm_fc_desc};

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("M N K")).collect();
    let (m, n, k) = match args.as_slice() {
        [m, n, k] => (*m, *n, *k),
        _ => (512, 512, 512),
    };
    let f32 = bench_sgemm_host(m, n, k, 2.0).expect("f32 GEMM");
    println!(
        "f32  {m}x{n}x{k}: median {:.1} GFLOP/s (best {:.1}), tile {}x{}",
        f32.median_gflops, f32.best_gflops, f32.mr, f32.nr
    );
    for prepacked in [true, false] {
        let q = bench_qgemm_host(&qgemm_fc_desc(m, n, k, prepacked), 2.0).expect("int8 GEMM");
        println!(
            "int8 {m}x{n}x{k} ({}): median {:.1} GOP/s (best {:.1}) = {:.2}x f32, {:?} tile {}x{}",
            if prepacked { "weights prepacked" } else { "weights packed at run time" },
            q.median_gops,
            q.best_gops,
            q.median_gops / f32.median_gflops,
            q.tile.kernel,
            q.mr,
            q.nr
        );
    }
    // A 3×3 convolution, 64 → 64 channels on 56×56 (K = 576), lowered as W · im2col.
    let (cout, hw, k) = (64, 56 * 56, 576);
    let f = bench_sgemm_host(cout, hw, k, 2.0).expect("f32 GEMM");
    let q = bench_qgemm_host(&qgemm_conv_desc(cout, hw, k), 2.0).expect("int8 GEMM");
    println!(
        "conv {cout}x{hw}x{k} (W prepacked, per-row channels): int8 median {:.1} GOP/s, f32 {:.1} GFLOP/s = {:.2}x",
        q.median_gops,
        f.median_gflops,
        q.median_gops / f.median_gflops
    );
}
