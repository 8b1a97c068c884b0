//! JIT correctness of the emitted GEMM on the host, and object emission for the cross targets.
#![cfg(feature = "llvm")]

use edgec_backends::llvm::gemm::*;
use inkwell::context::Context;
use inkwell::module::Linkage;
use inkwell::targets::FileType;
use inkwell::OptimizationLevel;

type GemmFn = unsafe extern "C" fn(*const f32, *const f32, *mut f32, *const f32, *mut u8);

/// Deterministic pseudo-random values in [-1, 1).
fn fill(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Runs `desc` through the JIT with the given tile (None = the host ISA default) and checks it
/// against an f64 reference.
fn check(desc: &GemmDesc, tile: Option<GemmTile>) {
    let tm = host_target_machine();
    let isa = VectorIsa::from_target_machine(&tm);
    let tile = tile.unwrap_or_else(|| GemmTile::for_isa(isa));
    let (m, n, k) = (desc.m, desc.n, desc.k);
    let a_len = if desc.a_trans { k.max(1) * desc.lda } else { m * desc.lda };
    let b_len = if desc.b_trans { n * desc.ldb } else { k.max(1) * desc.ldb };
    let a = fill(a_len, 1 + (m * 31 + n * 7 + k) as u64);
    let b = fill(b_len, 2 + (m + n * 13 + k * 5) as u64);
    let bias_len = match desc.bias {
        Some(BiasKind::PerRow) => m,
        Some(BiasKind::PerCol) => n,
        None => 0,
    };
    let bias = fill(bias_len, 3);
    let c0 = fill(m * desc.ldc, 4);
    let at = |i: usize, p: usize| if desc.a_trans { a[p * desc.lda + i] } else { a[i * desc.lda + p] } as f64;
    let bt = |p: usize, j: usize| if desc.b_trans { b[j * desc.ldb + p] } else { b[p * desc.ldb + j] } as f64;

    let ctx = Context::create();
    let module = ctx.create_module("gemm_test");
    let f = emit_sgemm_with_tile(&ctx, &module, tile, isa, "gemm", desc);
    f.set_linkage(Linkage::External);
    prepare_module_for(&module, &tm).unwrap();
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).unwrap();
    let func = unsafe { ee.get_function::<GemmFn>("gemm").unwrap() };
    let b_arg = if desc.b_prepacked { pack_b_with_tile(desc, tile, &b) } else { b.clone() };
    let mut scratch = vec![0u8; gemm_scratch_bytes_with_tile(desc, tile) + 64];
    let off = scratch.as_ptr().align_offset(64);
    let mut c = c0.clone();
    let bias_ptr = if desc.bias.is_some() { bias.as_ptr() } else { std::ptr::null() };
    unsafe { func.call(a.as_ptr(), b_arg.as_ptr(), c.as_mut_ptr(), bias_ptr, scratch.as_mut_ptr().add(off)) };

    for i in 0..m {
        for j in 0..desc.ldc {
            let got = c[i * desc.ldc + j] as f64;
            if j >= n {
                assert_eq!(got, c0[i * desc.ldc + j] as f64, "{desc:?}: wrote outside C at ({i},{j})");
                continue;
            }
            let mut want = 0.0f64;
            let mut mag = 0.0f64;
            for p in 0..k {
                want += at(i, p) * bt(p, j);
                mag += (at(i, p) * bt(p, j)).abs();
            }
            if desc.accumulate {
                want += c0[i * desc.ldc + j] as f64;
                mag += (c0[i * desc.ldc + j] as f64).abs();
            }
            match desc.bias {
                Some(BiasKind::PerRow) => want += bias[i] as f64,
                Some(BiasKind::PerCol) => want += bias[j] as f64,
                None => {}
            }
            mag += 1.0;
            assert!(
                (got - want).abs() <= 1e-5 * mag,
                "{desc:?} tile {tile:?}: C[{i}][{j}] = {got}, want {want}"
            );
        }
    }
}

fn shapes() -> Vec<(usize, usize, usize)> {
    vec![
        (1, 1, 1),
        (7, 13, 5),
        (17, 33, 65),
        (1, 100, 37),
        (1, 64, 512),
        (3, 1, 9),
        (29, 47, 3),
        (64, 64, 64),
        (15, 17, 1000),
    ]
}

#[test]
fn gemm_all_transposes() {
    for (m, n, k) in shapes() {
        for at in [false, true] {
            for bt in [false, true] {
                check(&GemmDesc::new(m, n, k).with_trans(at, bt), None);
            }
        }
    }
}

#[test]
fn gemm_prepacked_accumulate_bias() {
    for (m, n, k) in shapes() {
        for bt in [false, true] {
            for prepacked in [false, true] {
                for accumulate in [false, true] {
                    for bias in [None, Some(BiasKind::PerRow), Some(BiasKind::PerCol)] {
                        let mut d = GemmDesc::new(m, n, k).with_trans(false, bt);
                        d.b_prepacked = prepacked;
                        d.accumulate = accumulate;
                        d.bias = bias;
                        check(&d, None);
                    }
                }
            }
        }
    }
}

#[test]
fn gemm_large_k_and_multiple_blocks() {
    // Several K, M and N blocks with a small tile/blocking so every block boundary is crossed.
    let small = GemmTile { lanes: 4, mr: 3, nv: 2, kc: 16, mc: 7, nc: 20, ku: 4, fma: true };
    for (m, n, k) in [(17, 33, 65), (31, 45, 50), (1, 9, 33), (40, 8, 16)] {
        for prepacked in [false, true] {
            for accumulate in [false, true] {
                let mut d = GemmDesc::new(m, n, k).with_trans(m % 2 == 0, n % 2 == 0);
                d.b_prepacked = prepacked;
                d.accumulate = accumulate;
                d.bias = Some(if k % 2 == 0 { BiasKind::PerRow } else { BiasKind::PerCol });
                check(&d, Some(small));
            }
        }
    }
    check(&GemmDesc::new(5, 40, 4099), None);
    check(&GemmDesc::new(1, 300, 2048), None);
    let mut d = GemmDesc::new(70, 130, 900);
    d.b_prepacked = true;
    d.accumulate = true;
    check(&d, None);
}

#[test]
fn gemm_other_tiles_on_host() {
    // The tiles of the other ISAs, run on the host (LLVM legalises the vector widths).
    for isa in [VectorIsa::AVX2, VectorIsa::NEON, VectorIsa::SSE, VectorIsa::SCALAR32] {
        let tile = GemmTile::for_isa(isa);
        for (m, n, k) in [(7, 13, 5), (17, 33, 65), (1, 50, 20)] {
            let mut d = GemmDesc::new(m, n, k).with_trans(true, false);
            d.bias = Some(BiasKind::PerCol);
            check(&d, Some(tile));
        }
    }
}

#[test]
fn gemm_leading_dimensions_and_degenerate() {
    let mut d = GemmDesc::new(9, 21, 11);
    d.lda = 15;
    d.ldb = 30;
    d.ldc = 25;
    check(&d, None);
    let mut d = GemmDesc::new(4, 5, 0);
    d.bias = Some(BiasKind::PerRow);
    check(&d, None);
}

#[test]
fn gemm_isa_detection() {
    assert_eq!(VectorIsa::from_parts("x86_64-unknown-linux-gnu", "znver4", ""), VectorIsa::AVX512);
    assert_eq!(VectorIsa::from_parts("x86_64-unknown-linux-gnu", "haswell", ""), VectorIsa::AVX2);
    assert_eq!(VectorIsa::from_parts("x86_64-unknown-linux-gnu", "znver4", "-avx512f").vector_bits, 256);
    assert_eq!(VectorIsa::from_parts("x86_64-unknown-linux-gnu", "x86-64", "").vector_bits, 128);
    assert_eq!(VectorIsa::from_parts("aarch64-unknown-linux-gnu", "cortex-a76", ""), VectorIsa::NEON);
    assert_eq!(VectorIsa::from_parts("riscv64gc-unknown-linux-gnu", "", "").vector_bits, 0);
    assert_eq!(VectorIsa::from_parts("riscv64-unknown-linux-gnu", "", "+v").vector_bits, 128);
    assert_eq!(VectorIsa::from_parts("thumbv7em-none-eabihf", "cortex-m7", ""), VectorIsa::SCALAR32);
}

#[test]
fn gemm_cross_targets_emit_objects() {
    for (triple, cpu, features) in [
        ("aarch64-unknown-linux-gnu", "cortex-a76", ""),
        ("riscv64gc-unknown-linux-gnu", "", ""),
        ("riscv64-unknown-linux-gnu", "generic-rv64", "+m,+a,+f,+d,+c,+v"),
        ("thumbv7em-none-eabihf", "cortex-m7", ""),
    ] {
        let tm = target_machine(triple, cpu, features);
        let isa = VectorIsa::from_target_machine(&tm);
        let ctx = Context::create();
        let module = ctx.create_module("gemm_cross");
        for (idx, (m, n, k, prepacked)) in
            [(1, 1, 1, false), (17, 33, 65, false), (64, 64, 64, true), (1, 128, 256, true)]
                .into_iter()
                .enumerate()
        {
            let mut d = GemmDesc::new(m, n, k);
            d.b_prepacked = prepacked;
            d.bias = Some(BiasKind::PerCol);
            let f = emit_sgemm(&ctx, &module, isa, &format!("gemm{idx}"), &d);
            f.set_linkage(Linkage::External);
        }
        prepare_module_for(&module, &tm).unwrap();
        let obj = tm.write_to_memory_buffer(&module, FileType::Object).unwrap();
        assert!(obj.get_size() > 100, "{triple}");
        let asm = tm.write_to_memory_buffer(&module, FileType::Assembly).unwrap();
        let asm = String::from_utf8_lossy(asm.as_slice()).into_owned();
        // No calls to external symbols other than (possibly) memset/memcpy.
        for line in asm.lines() {
            let l = line.trim();
            if l.starts_with("call") || l.starts_with("bl\t") || l.starts_with("bl ") || l.starts_with("jal")
            {
                assert!(l.contains("memset") || l.contains("memcpy") || l.contains("gemm"), "{triple}: {l}");
            }
        }
        let fma = match triple {
            t if t.starts_with("aarch64") => "fmla",
            t if t.starts_with("riscv") && features.contains("+v") => "vfmacc",
            t if t.starts_with("riscv") => "fmadd.s",
            _ => "vfma.f32",
        };
        assert!(asm.contains(fma), "{triple}: no {fma} in the kernel ({isa:?})");
    }
}

/// Builds the GEMMs for a Linux cross target, links them with a C driver that checks them
/// against a double-precision reference, and runs the program under qemu-user. Skipped (with a
/// note) when the cross compiler or qemu is missing.
fn run_cross(triple: &str, cpu: &str, features: &str, cc: &str, qemu: &[&str], tag: &str) {
    let have =
        |tool: &str| std::process::Command::new("which").arg(tool).output().is_ok_and(|o| o.status.success());
    if !have(cc) || !have(qemu[0]) {
        eprintln!("skipping {triple}: {cc} or {} not found", qemu[0]);
        return;
    }
    let tm = target_machine(triple, cpu, features);
    let isa = VectorIsa::from_target_machine(&tm);
    let ctx = Context::create();
    let module = ctx.create_module("gemm_cross_run");
    let mut cases = String::new();
    let mut decls = String::new();
    let shapes = [(1, 1, 1), (7, 13, 5), (17, 33, 65), (1, 70, 300), (24, 24, 24), (13, 50, 400)];
    let mut idx = 0;
    for (m, n, k) in shapes {
        for (at, bt, acc, bias) in
            [(false, false, false, 0), (true, true, true, 1), (false, true, false, 2), (true, false, true, 0)]
        {
            let mut d = GemmDesc::new(m, n, k).with_trans(at, bt);
            d.accumulate = acc;
            d.bias = [None, Some(BiasKind::PerRow), Some(BiasKind::PerCol)][bias];
            let name = format!("gemm{idx}");
            emit_sgemm(&ctx, &module, isa, &name, &d).set_linkage(Linkage::External);
            decls += &format!("void {name}(const float*, const float*, float*, const float*, void*);\n");
            cases += &format!(
                "  {{{name}, {m}, {n}, {k}, {}, {}, {}, {bias}, {}}},\n",
                at as i32,
                bt as i32,
                acc as i32,
                gemm_scratch_bytes(&d, isa)
            );
            idx += 1;
        }
    }
    prepare_module_for(&module, &tm).unwrap();
    let dir = std::env::temp_dir().join(format!("edgec_gemm_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("gemm.o");
    tm.write_to_file(&module, FileType::Object, &obj).unwrap();
    let driver = format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include <math.h>
typedef void (*gemm_fn)(const float*, const float*, float*, const float*, void*);
{decls}
struct gcase {{ gemm_fn f; int m, n, k, at, bt, acc, bias; long scratch; }};
static const struct gcase cases[] = {{
{cases}}};
static float val(unsigned i, unsigned s) {{ return (float)(((i * 2654435761u + s * 40503u) >> 8) % 2001) / 1000.0f - 1.0f; }}
int main(void) {{
  int bad = 0;
  for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {{
    const struct gcase *g = &cases[c];
    int m = g->m, n = g->n, k = g->k;
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *cm = malloc(sizeof(float) * m * n), *c0 = malloc(sizeof(float) * m * n);
    float *bias = malloc(sizeof(float) * (m + n));
    void *scratch = aligned_alloc(64, (g->scratch + 64) / 64 * 64);
    for (int i = 0; i < m * k; i++) a[i] = val(i, 1 + c);
    for (int i = 0; i < k * n; i++) b[i] = val(i, 2 + c);
    for (int i = 0; i < m * n; i++) cm[i] = c0[i] = val(i, 3 + c);
    for (int i = 0; i < m + n; i++) bias[i] = val(i, 4 + c);
    g->f(a, b, cm, g->bias ? bias : 0, scratch);
    for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {{
      double want = g->acc ? c0[i * n + j] : 0.0, mag = fabs(want) + 1.0;
      for (int p = 0; p < k; p++) {{
        double x = g->at ? a[p * m + i] : a[i * k + p], y = g->bt ? b[j * k + p] : b[p * n + j];
        want += x * y; mag += fabs(x * y);
      }}
      if (g->bias == 1) want += bias[i];
      if (g->bias == 2) want += bias[j];
      if (fabs(cm[i * n + j] - want) > 1e-5 * mag) {{
        if (bad++ < 10) printf("case %u (%dx%dx%d): C[%d][%d] = %g, want %g\n", c, m, n, k, i, j, cm[i * n + j], want);
      }}
    }}
    free(a); free(b); free(cm); free(c0); free(bias); free(scratch);
  }}
  printf("%s: %u cases, %d mismatches\n", "{tag}", (unsigned)(sizeof cases / sizeof cases[0]), bad);
  return bad != 0;
}}
"#
    );
    std::fs::write(dir.join("main.c"), driver).unwrap();
    let exe = dir.join("prog");
    let out = std::process::Command::new(cc)
        .args(["-O1", "-static", "-o"])
        .arg(&exe)
        .arg(dir.join("main.c"))
        .arg(&obj)
        .arg("-lm")
        .output()
        .unwrap();
    assert!(out.status.success(), "{cc}: {}", String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(qemu[0]).args(&qemu[1..]).arg(&exe).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{stdout}");
    assert!(
        out.status.success(),
        "{triple} ({isa:?}) under qemu: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gemm_cross_run_aarch64_qemu() {
    run_cross(
        "aarch64-unknown-linux-gnu",
        "cortex-a76",
        "",
        "aarch64-linux-gnu-gcc",
        &["qemu-aarch64-static"],
        "aarch64",
    );
}

#[test]
fn gemm_cross_run_riscv64_qemu() {
    run_cross(
        "riscv64gc-unknown-linux-gnu",
        "",
        "",
        "riscv64-linux-gnu-gcc",
        &["qemu-riscv64-static"],
        "rv64gc",
    );
    run_cross(
        "riscv64-unknown-linux-gnu",
        "generic-rv64",
        "+m,+a,+f,+d,+c,+v",
        "riscv64-linux-gnu-gcc",
        &["qemu-riscv64-static", "-cpu", "rv64,v=true,vlen=128"],
        "rv64gcv",
    );
}

/// `choose-layout` stores constant weights with `edgec_ir::ops::layout::to_panels` in the width
/// `TargetInfo::gemm_panel_width` computes from `codegen::gemm_panel`; the backend binds those
/// panels as its packed B when `LlvmKernels::panel_width` agrees on the width. Both must equal
/// what `pack_b` would have produced, for every ISA and for N with and without a partial panel.
#[test]
fn choose_layout_panels_are_the_packed_b() {
    use edgec_backends::llvm::codegen::{gemm_panel, LlvmKernels};
    use edgec_backends::llvm::qgemm::{QKernel, QTile};
    use edgec_backends::lower::F32Gemm;
    for isa in [VectorIsa::AVX512, VectorIsa::AVX2, VectorIsa::NEON, VectorIsa::SSE, VectorIsa::SCALAR32] {
        for (k, n) in [(7, 5), (16, 64), (33, 100), (3, 1)] {
            let b = fill(k * n, (k * 131 + n) as u64);
            let desc = GemmDesc { b_prepacked: true, ..GemmDesc::new(4, n, k) };
            let packed = pack_b(&desc, isa, &b);
            let (lanes, vectors) = gemm_panel(isa);
            let nr = lanes * vectors.min(n.div_ceil(lanes)).max(1);
            let spec = edgec_backends::kir::GemmSpec {
                b_prepacked: true,
                ..edgec_backends::kir::GemmSpec::new(edgec_backends::kir::GemmShape::new(4, n, k))
            };
            let kernels = LlvmKernels { isa, qtile: QTile::for_kernel(QKernel::Scalar, 1) };
            assert_eq!(kernels.panel_width(&spec), nr, "{isa:?} {k}x{n}");
            let m = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[k, n]), b).unwrap();
            let panels = edgec_ir::ops::layout::to_panels(&m, nr);
            assert_eq!(panels.iter().copied().collect::<Vec<f32>>(), packed, "{isa:?} {k}x{n}");
        }
    }
}

/// A matmul whose B is `layout.from_panels` of a constant in this target's panel width is
/// lowered with the panels as its packed B: the backend's packing is never called. With panels
/// of another width it packs the matrix they mean, as for any constant.
#[test]
fn lowering_binds_chosen_panels_without_packing() {
    use edgec_backends::kir::GemmSpec;
    use edgec_backends::llvm::codegen::LlvmKernels;
    use edgec_backends::llvm::qgemm::{QKernel, QTile};
    use edgec_backends::lower::{lower, F32Gemm, Int8Gemm, LowerOptions, TargetKernels};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    /// The AVX2 kernels, counting how often constants are packed.
    struct Counting(LlvmKernels, Arc<AtomicUsize>);
    impl TargetKernels for Counting {
        fn gemm_nr(&self) -> usize {
            self.0.gemm_nr()
        }
        fn f32_gemm(&self) -> Option<&dyn F32Gemm> {
            Some(self)
        }
        fn int8_gemm(&self) -> Option<&dyn Int8Gemm> {
            None
        }
    }
    impl F32Gemm for Counting {
        fn scratch_bytes(&self, s: &GemmSpec) -> u64 {
            F32Gemm::scratch_bytes(&self.0, s)
        }
        fn pack_b(&self, s: &GemmSpec, b: &[f32]) -> Vec<f32> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.pack_b(s, b)
        }
        fn panel_width(&self, s: &GemmSpec) -> usize {
            self.0.panel_width(s)
        }
    }
    let isa = VectorIsa::AVX2;
    for (nr, packs) in [(16, 0), (8, 1)] {
        let b = fill(3 * 20, 7);
        let m = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[3, 20]), b).unwrap();
        let p = edgec_ir::ops::layout::to_panels(&m, nr);
        let hex: String = p.iter().flat_map(|v| v.to_le_bytes()).map(|b| format!("{b:02X}")).collect();
        let src = format!(
            "func @f(%x: tensor<4x3xf32>) -> (\"y\": tensor<4x20xf32>) {{\n  %0 = builtin.constant {{value = dense<0x{hex}> : tensor<{}x3x{nr}xf32>}} : tensor<{}x3x{nr}xf32> loc(\"w\")\n  %1 = layout.from_panels %0 {{cols = 20}} : tensor<3x20xf32> loc(\"w\")\n  %2 = nn.matmul %x, %1 : tensor<4x20xf32> loc(\"mm\")\n  func.return %2 loc(unknown)\n}}\n",
            p.shape()[0],
            p.shape()[0]
        );
        let module = edgec_ir::parser::parse_module(&src).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let opts = LowerOptions {
            kernels: Arc::new(Counting(
                LlvmKernels { isa, qtile: QTile::for_kernel(QKernel::Scalar, 1) },
                counted,
            )),
            ..LowerOptions::default()
        };
        let program = lower(&module.functions[0], &opts).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), packs, "panels of {nr}");
        // Either way the stored weight is the packed B (16-wide on AVX2), not the plain matrix.
        assert_eq!(program.weights_bytes(), 2 * 3 * 16 * 4, "panels of {nr}");
    }
}
