//! The int8 GEMM: bit-exact JIT runs on the host against `qgemm_reference`, object/assembly
//! emission for the cross targets (checking the per-target dot-product instruction), and runs of
//! the cross code under qemu-user.
#![cfg(feature = "llvm")]
// `u64::is_multiple_of` is newer than the workspace's rust-version (1.85).
#![allow(clippy::manual_is_multiple_of)]

use edgec_backends::llvm::gemm::{host_target_machine, prepare_module_for, target_machine};
use edgec_backends::llvm::qgemm::*;
use inkwell::context::Context;
use inkwell::module::Linkage;
use inkwell::targets::FileType;
use inkwell::OptimizationLevel;

type QFn = unsafe extern "C" fn(*const i8, *const i8, *mut i8, *const i32, *const i32, *const i32, *mut u8);

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn i8s(&mut self, n: usize, lo: i64, hi: i64) -> Vec<i8> {
        (0..n).map(|_| self.range(lo, hi) as i8).collect()
    }
}

/// One product with its operands and the expected result.
struct Case {
    desc: QGemmDesc,
    a: Vec<i8>,
    b: Vec<i8>,
    bias: Option<Vec<i32>>,
    mult: Vec<i32>,
    shift: Vec<i32>,
}

impl Case {
    /// Random operands; weights in −127..=127, activations in −128..=127; per channel either a
    /// multiplier that maps the accumulator's typical range onto int8 or a random one with a
    /// shift in −20..=2.
    fn random(desc: QGemmDesc, seed: u64) -> Case {
        let mut rng = Rng(seed ^ 0x5eed);
        let d = &desc;
        let a_len = if d.a_trans { d.k * d.lda + d.m } else { d.m * d.lda + d.k };
        let b_len = if d.b_trans { d.n * d.ldb + d.k } else { d.k * d.ldb + d.n };
        let (a_lo, b_lo) = match d.weights {
            QWeights::A => (-127, -128),
            QWeights::B => (-128, -127),
        };
        let a = rng.i8s(a_len, a_lo, 127);
        let b = rng.i8s(b_len, b_lo, 127);
        let ch = d.channels();
        let bias = d.bias.then(|| (0..ch).map(|_| rng.range(-200_000, 200_000) as i32).collect());
        let typical = 128.0 * 128.0 * (d.k.max(1) as f64).sqrt();
        let mut mult = Vec::new();
        let mut shift = Vec::new();
        for c in 0..ch {
            let (m, s) = if c % 3 == 2 {
                (rng.range(1 << 30, i32::MAX as i64) as i32, rng.range(-20, 2) as i32)
            } else {
                quantize_multiplier(40.0 / typical * (0.5 + (rng.next() % 1000) as f64 / 1000.0))
            };
            mult.push(m);
            shift.push(s);
        }
        Case { desc, a, b, bias, mult, shift }
    }

    fn expected(&self) -> Vec<i8> {
        qgemm_reference(&self.desc, &self.a, &self.b, self.bias.as_deref(), &self.mult, &self.shift)
    }

    /// The expected C of a [`QOut::I32`] product.
    fn expected_i32(&self) -> Vec<i32> {
        qgemm_reference_i32(&self.desc, &self.a, &self.b, self.bias.as_deref())
    }

    /// The operand the routine reads for A / B (the weights packed when prepacked).
    fn args(&self, tile: QTile) -> (Vec<i8>, Vec<i8>) {
        let d = &self.desc;
        match (d.prepacked, d.weights) {
            (true, QWeights::A) => (pack_weights(d, tile, &self.a), self.b.clone()),
            (true, QWeights::B) => (self.a.clone(), pack_weights(d, tile, &self.b)),
            _ => (self.a.clone(), self.b.clone()),
        }
    }
}

/// JIT-compiles every case (with `tile`, or the host's) into one module, runs each and compares
/// C bit for bit with the reference, including that nothing past column n is written.
fn check_host(cases: &[Case], tile: Option<QTile>) {
    let tm = host_target_machine();
    let tile = tile.unwrap_or_else(|| QTile::for_target_machine(&tm));
    let ctx = Context::create();
    let module = ctx.create_module("qgemm_test");
    for (idx, c) in cases.iter().enumerate() {
        emit_qgemm(&ctx, &module, tile, &format!("q{idx}"), &c.desc).set_linkage(Linkage::External);
    }
    prepare_module_for(&module, &tm).unwrap();
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).unwrap();
    for (idx, c) in cases.iter().enumerate() {
        let d = &c.desc;
        let f = unsafe { ee.get_function::<QFn>(&format!("q{idx}")).unwrap() };
        let (a, b) = c.args(tile);
        let mut out = vec![0x55u8 as i8; d.m * d.ldc];
        let mut out32 = vec![0x5555_5555i32; d.m * d.ldc];
        let mut scratch = vec![0xA5u8; qgemm_scratch_bytes(d, tile) + 64];
        let off = scratch.as_ptr().align_offset(64);
        let bias = c.bias.as_ref().map_or(std::ptr::null(), |b| b.as_ptr());
        let i32_out = d.out == QOut::I32;
        let scaled = d.out == QOut::Scaled;
        // The scaled mode reads f32 scales from `mult`.
        let scales: Vec<f32> = c.mult.iter().map(|&m| m as f32 * 2f32.powi(-40)).collect();
        // The int32 mode reads neither mult nor shift.
        let (mult, shift) = if i32_out {
            (std::ptr::null(), std::ptr::null())
        } else if scaled {
            (scales.as_ptr() as *const i32, std::ptr::null())
        } else {
            (c.mult.as_ptr(), c.shift.as_ptr())
        };
        let cp = if i32_out || scaled { out32.as_mut_ptr() as *mut i8 } else { out.as_mut_ptr() };
        unsafe { f.call(a.as_ptr(), b.as_ptr(), cp, bias, mult, shift, scratch.as_mut_ptr().add(off)) };
        if i32_out || scaled {
            // Both write 32-bit elements; compare their bits.
            let want: Vec<i32> = if scaled {
                let want = qgemm_reference_scaled(d, &c.a, &c.b, c.bias.as_deref(), &scales);
                want.iter().map(|v| v.to_bits() as i32).collect()
            } else {
                c.expected_i32()
            };
            for i in 0..d.m {
                for j in 0..d.ldc {
                    let got = out32[i * d.ldc + j];
                    if j >= d.n {
                        assert_eq!(got, 0x5555_5555, "{d:?} {tile:?}: wrote C[{i}][{j}] past n");
                    } else {
                        assert_eq!(got, want[i * d.n + j], "{d:?}\n{tile:?}: C[{i}][{j}]");
                    }
                }
            }
            continue;
        }
        let want = c.expected();
        for i in 0..d.m {
            for j in 0..d.ldc {
                let got = out[i * d.ldc + j];
                if j >= d.n {
                    assert_eq!(got, 0x55, "{d:?} {tile:?}: wrote C[{i}][{j}] past n");
                    continue;
                }
                let ch = if d.channel == QChannel::PerRow { i } else { j };
                assert_eq!(
                    got,
                    want[i * d.n + j],
                    "{d:?}\n{tile:?}: C[{i}][{j}] (acc {}, mult {}, shift {})",
                    qgemm_accumulator(d, &c.a, &c.b, c.bias.as_deref(), i, j),
                    c.mult[ch],
                    c.shift[ch]
                );
            }
        }
    }
}

fn shapes() -> Vec<(usize, usize, usize)> {
    vec![
        (1, 1, 1),
        (1, 1, 5),
        (3, 7, 2),
        (7, 13, 5),
        (6, 64, 64),
        (17, 33, 65),
        (1, 100, 37),
        (5, 200, 3),
        (29, 47, 130),
        (64, 64, 64),
        (13, 129, 31),
        (70, 9, 300),
    ]
}

/// Every layout/channel/zero-point combination over the shapes, `per` cases per shape.
fn matrix(prepacked_too: bool) -> Vec<Case> {
    let zps = [(0, 0, 0), (-128, 0, 5), (127, 3, -128), (17, -128, 127), (-5, 127, -1)];
    let mut cases = Vec::new();
    let mut seed = 1u64;
    for (m, n, k) in shapes() {
        for at in [false, true] {
            for bt in [false, true] {
                for weights in [QWeights::A, QWeights::B] {
                    seed += 1;
                    let mut d = QGemmDesc::new(m, n, k).with_trans(at, bt);
                    let (az, bz, cz) = zps[seed as usize % zps.len()];
                    d.a_zp = az;
                    d.b_zp = bz;
                    d.c_zp = cz;
                    d.weights = weights;
                    d.channel = if seed % 2 == 0 { QChannel::PerRow } else { QChannel::PerCol };
                    d.bias = seed % 3 != 0;
                    if seed % 4 == 1 {
                        d.act_min = -100;
                        d.act_max = 90;
                    }
                    d.prepacked = prepacked_too && seed % 5 < 3;
                    cases.push(Case::random(d, seed));
                }
            }
        }
    }
    cases
}

#[test]
fn qgemm_host_layouts_and_zero_points() {
    check_host(&matrix(false), None);
}

#[test]
fn qgemm_host_prepacked() {
    let cases: Vec<Case> = matrix(true).into_iter().filter(|c| c.desc.prepacked).collect();
    assert!(cases.len() > 30);
    check_host(&cases, None);
}

/// [`matrix`] with int32 output (raw accumulators, plus the bias when there is one).
fn matrix_i32(prepacked_too: bool) -> Vec<Case> {
    matrix(prepacked_too)
        .into_iter()
        .map(|mut c| {
            c.desc.out = QOut::I32;
            c
        })
        .collect()
}

/// [`QOut::Scaled`]: `f32(acc) · scale[ch]`, bit for bit, per column and per row, every kernel.
#[test]
fn qgemm_host_scaled_f32_results() {
    let scaled = |per_row: bool| -> Vec<Case> {
        matrix(true)
            .into_iter()
            .map(|mut c| {
                c.desc.out = QOut::Scaled;
                if per_row {
                    c.desc.channel = QChannel::PerRow;
                    c = Case::random(c.desc, 77);
                }
                c
            })
            .collect()
    };
    check_host(&scaled(false), None);
    check_host(&scaled(true), None);
    for tile in [QTile::for_kernel(QKernel::Widen, 16), QTile::for_kernel(QKernel::Scalar, 1)] {
        check_host(&scaled(false).into_iter().step_by(3).collect::<Vec<_>>(), Some(tile));
    }
}

#[test]
fn qgemm_host_i32_accumulators() {
    check_host(&matrix_i32(true), None);
    // Large and blocked products, and the shapes of transposed convolutions (activations
    // transposed in A, weights prepacked in B).
    let host = QTile::for_target_machine(&host_target_machine());
    let mut cases = Vec::new();
    for (idx, (m, n, k, at)) in [
        (1, 2048, 32, true),
        (16, 1024, 128, true),
        (64, 512, 64, true),
        (256, 48, 32, true),
        (200, 300, 257, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = QGemmDesc::new(m, n, k).with_trans(at, false);
        d.prepacked = idx % 2 == 0;
        d.a_zp = [-128, 5, 127, -3, 0][idx];
        d.out = QOut::I32;
        cases.push(Case::random(d, 300 + idx as u64));
    }
    check_host(&cases, None);
    let small = QTile { mc_bytes: 64, nc_bytes: 256, ..host };
    check_host(&cases[1..3], Some(small));
    for tile in [QTile::for_kernel(QKernel::Widen, 16), QTile::for_kernel(QKernel::Scalar, 1)] {
        check_host(&matrix_i32(true).into_iter().step_by(5).collect::<Vec<_>>(), Some(tile));
    }
}

#[test]
fn qgemm_host_large_and_blocked() {
    let mut cases = Vec::new();
    for (m, n, k, prepacked, weights) in [
        (200, 300, 257, false, QWeights::B),
        (96, 1000, 75, true, QWeights::A),
        (300, 130, 600, true, QWeights::B),
        (1, 517, 1029, true, QWeights::B),
        (255, 1, 130, false, QWeights::A),
    ] {
        let mut d =
            QGemmDesc::new(m, n, k).with_trans(weights == QWeights::A && m % 2 == 0, weights == QWeights::B);
        d.weights = weights;
        d.prepacked = prepacked;
        d.a_zp = -3;
        d.b_zp = if weights == QWeights::A { 11 } else { 0 };
        d.c_zp = -7;
        d.bias = true;
        d.channel = if weights == QWeights::A { QChannel::PerRow } else { QChannel::PerCol };
        cases.push(Case::random(d, (m * n + k) as u64));
    }
    check_host(&cases, None);
    // Tiny blocks so that several M and N blocks are packed.
    let host = QTile::for_target_machine(&host_target_machine());
    let small = QTile { mc_bytes: 64, nc_bytes: 256, ..host };
    let mut cases = Vec::new();
    for (idx, (m, n, k)) in [(40, 150, 33), (13, 70, 9), (33, 65, 64)].into_iter().enumerate() {
        for bt in [false, true] {
            let mut d = QGemmDesc::new(m, n, k).with_trans(idx % 2 == 1, bt);
            d.a_zp = 9;
            d.b_zp = -2;
            d.c_zp = 3;
            d.bias = true;
            d.weights = if bt { QWeights::B } else { QWeights::A };
            cases.push(Case::random(d, 77 + idx as u64));
        }
    }
    check_host(&cases, Some(small));
}

#[test]
fn qgemm_host_leading_dimensions_and_degenerate() {
    let mut cases = Vec::new();
    for (at, bt) in [(false, false), (true, true), (false, true)] {
        let mut d = QGemmDesc::new(9, 21, 11).with_trans(at, bt);
        d.lda += 4;
        d.ldb += 3;
        d.ldc = 25;
        d.a_zp = 1;
        d.b_zp = 2;
        d.bias = true;
        cases.push(Case::random(d.clone(), 5));
        d.prepacked = true;
        cases.push(Case::random(d, 6));
    }
    // k = 0: the result is requantize(bias).
    let mut d = QGemmDesc::new(4, 5, 0);
    d.bias = true;
    d.c_zp = 10;
    cases.push(Case::random(d, 7));
    check_host(&cases, None);
}

#[test]
fn qgemm_host_requantization_edges() {
    // A equal to its zero point makes the products vanish, so the accumulator is the bias: drive
    // it through INT32_MIN (with mult INT32_MIN: the saturating SRDHM case), huge values with
    // left shifts that wrap, and exact halves of negative values.
    let mut d = QGemmDesc::new(3, 16, 7);
    d.a_zp = -128;
    d.b_zp = 5;
    d.bias = true;
    d.channel = QChannel::PerCol;
    let biases = [
        i32::MIN,
        i32::MIN,
        i32::MIN,
        i32::MAX,
        -3,
        -5,
        -6,
        -7,
        5,
        6,
        1 << 29,
        -(1 << 29),
        -1,
        0,
        i32::MIN + 1,
        123_456_789,
    ];
    let mults = [
        i32::MIN,
        1 << 30,
        i32::MAX,
        i32::MAX,
        1 << 30,
        1 << 30,
        1 << 30,
        1 << 30,
        1 << 30,
        1 << 30,
        1 << 30,
        i32::MAX,
        1 << 30,
        1 << 30,
        i32::MIN,
        1_500_000_000,
    ];
    let shifts = [0, 0, 2, 2, 0, -1, -2, -2, -1, -2, 2, 1, -31, 0, -3, -20];
    let mut cases = Vec::new();
    for (idx, c_zp) in [0, 100, -128].into_iter().enumerate() {
        d.c_zp = c_zp;
        let mut c = Case::random(d.clone(), 11 + idx as u64);
        c.a = vec![-128; c.a.len()];
        c.bias = Some(biases.to_vec());
        c.mult = mults.to_vec();
        c.shift = shifts.to_vec();
        cases.push(c);
    }
    // Saturation really happens in this set: INT32_MIN · INT32_MIN → INT32_MAX → 127.
    assert_eq!(cases[0].expected()[0], 127);
    check_host(&cases, None);
}

#[test]
fn qgemm_host_generic_kernels() {
    // The portable kernels (what RISC-V and CPUs without dot products run), on the host.
    let cases: Vec<Case> = matrix(true).into_iter().step_by(3).collect();
    for tile in [
        QTile::for_kernel(QKernel::Widen, 16),
        QTile::for_kernel(QKernel::Widen, 4),
        QTile::for_kernel(QKernel::Scalar, 1),
        QTile { mr: 2, nv: 2, ..QTile::for_kernel(QKernel::Scalar, 1) },
    ] {
        check_host(&cases, Some(tile));
    }
}

#[test]
fn qgemm_tile_detection() {
    let k = |t: &str, c: &str, f: &str| QTile::from_parts(t, c, f).kernel;
    assert_eq!(k("x86_64-unknown-linux-gnu", "znver4", ""), QKernel::Vnni);
    assert_eq!(k("x86_64-unknown-linux-gnu", "skylake-avx512", ""), QKernel::Widen);
    assert_eq!(k("x86_64-unknown-linux-gnu", "skylake-avx512", "+avx512vnni"), QKernel::Vnni);
    assert_eq!(k("x86_64-unknown-linux-gnu", "znver4", "-avx512vnni"), QKernel::Widen);
    assert_eq!(k("aarch64-unknown-linux-gnu", "cortex-a76", ""), QKernel::Sdot);
    assert_eq!(k("aarch64-unknown-linux-gnu", "neoverse-n1", ""), QKernel::Sdot);
    assert_eq!(k("aarch64-unknown-linux-gnu", "cortex-a53", ""), QKernel::Widen);
    assert_eq!(k("aarch64-unknown-linux-gnu", "cortex-a72", ""), QKernel::Widen);
    assert_eq!(k("aarch64-unknown-linux-gnu", "generic", "+dotprod"), QKernel::Sdot);
    assert_eq!(k("aarch64-unknown-linux-gnu", "apple-m1", ""), QKernel::Sdot);
    assert_eq!(k("thumbv7em-none-eabihf", "cortex-m7", ""), QKernel::Smlad);
    assert_eq!(k("thumbv6m-none-eabi", "cortex-m0", ""), QKernel::Scalar);
    assert_eq!(k("riscv64gc-unknown-linux-gnu", "", ""), QKernel::Scalar);
    assert_eq!(k("riscv64-unknown-linux-gnu", "", "+v"), QKernel::Widen);
}

/// Emits a few products for a cross target; returns the assembly.
fn cross_asm(triple: &str, cpu: &str, features: &str) -> (QTile, String) {
    let tm = target_machine(triple, cpu, features);
    let tile = QTile::for_target_machine(&tm);
    let ctx = Context::create();
    let module = ctx.create_module("qgemm_cross");
    for (idx, (m, n, k, weights, prepacked)) in [
        (1, 1, 1, QWeights::B, false),
        (17, 33, 65, QWeights::B, false),
        (64, 64, 64, QWeights::B, true),
        (16, 196, 27, QWeights::A, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = QGemmDesc::new(m, n, k).with_trans(false, weights == QWeights::B);
        d.weights = weights;
        d.prepacked = prepacked;
        d.a_zp = 3;
        d.bias = true;
        d.channel = if weights == QWeights::A { QChannel::PerRow } else { QChannel::PerCol };
        emit_qgemm(&ctx, &module, tile, &format!("qgemm{idx}"), &d).set_linkage(Linkage::External);
    }
    prepare_module_for(&module, &tm).unwrap();
    let obj = tm.write_to_memory_buffer(&module, FileType::Object).unwrap();
    assert!(obj.get_size() > 100, "{triple}");
    let asm = tm.write_to_memory_buffer(&module, FileType::Assembly).unwrap();
    (tile, String::from_utf8_lossy(asm.as_slice()).into_owned())
}

#[test]
fn qgemm_cross_targets_emit_objects() {
    for (triple, cpu, features, kernel, instr) in [
        ("x86_64-unknown-linux-gnu", "znver4", "", QKernel::Vnni, "vpdpbusd"),
        ("aarch64-unknown-linux-gnu", "generic", "+neon,+dotprod", QKernel::Sdot, "sdot"),
        ("aarch64-unknown-linux-gnu", "cortex-a76", "", QKernel::Sdot, "sdot"),
        // Widening i8 products (`smull`), accumulated with `saddw`.
        ("aarch64-unknown-linux-gnu", "cortex-a53", "", QKernel::Widen, "smull"),
        ("riscv64gc-unknown-linux-gnu", "", "", QKernel::Scalar, "mul"),
        ("riscv64-unknown-linux-gnu", "generic-rv64", "+m,+a,+f,+d,+c,+v", QKernel::Widen, "vwmacc"),
        ("thumbv7em-none-eabihf", "cortex-m7", "", QKernel::Smlad, "smlad"),
    ] {
        let (tile, asm) = cross_asm(triple, cpu, features);
        assert_eq!(tile.kernel, kernel, "{triple} {cpu} {features}");
        assert!(asm.contains(instr), "{triple} {cpu} {features}: no {instr} ({tile:?})");
        for line in asm.lines() {
            let l = line.trim();
            if l.starts_with("call") || l.starts_with("bl\t") || l.starts_with("jal") {
                assert!(l.contains("memset") || l.contains("memcpy"), "{triple}: unexpected call {l}");
            }
        }
    }
}

#[test]
fn qgemm_host_emits_vpdpbusd() {
    let tm = host_target_machine();
    let tile = QTile::for_target_machine(&tm);
    if tile.kernel != QKernel::Vnni {
        eprintln!("host has no AVX-512 VNNI ({tile:?}); skipping the instruction check");
        return;
    }
    let ctx = Context::create();
    let module = ctx.create_module("qgemm_host_asm");
    let mut d = QGemmDesc::new(64, 128, 256).with_trans(false, true);
    d.prepacked = true;
    emit_qgemm(&ctx, &module, tile, "q", &d).set_linkage(Linkage::External);
    prepare_module_for(&module, &tm).unwrap();
    let asm = tm.write_to_memory_buffer(&module, FileType::Assembly).unwrap();
    let asm = String::from_utf8_lossy(asm.as_slice());
    assert!(asm.contains("vpdpbusd") && asm.contains("zmm"), "no zmm vpdpbusd in the host kernel");
}

fn c_array<T: std::fmt::Display>(ty: &str, name: &str, v: &[T]) -> String {
    let body: Vec<String> = v.iter().map(|x| x.to_string()).collect();
    format!(
        "static const {ty} {name}[{}] = {{{}}};\n",
        v.len().max(1),
        if v.is_empty() { "0".into() } else { body.join(",") }
    )
}

/// Builds the products for a Linux cross target, links them with a C driver holding the
/// operands and the reference results, and runs it under qemu-user. Skipped (with a note) when
/// the cross compiler or qemu is missing.
/// `cc` is the compiler and its flags (the driver and the object are appended), `qemu` the
/// emulator command (the program is appended); `bare_metal` emits for static relocation and
/// the hard-float EABI attribute (Cortex-M).
fn run_cross(
    triple: &str,
    cpu: &str,
    features: &str,
    cc: &[&str],
    qemu: &[&str],
    bare_metal: bool,
    expect: QKernel,
) {
    let have =
        |tool: &str| std::process::Command::new("which").arg(tool).output().is_ok_and(|o| o.status.success());
    let emulator = qemu.iter().find(|t| t.starts_with("qemu")).unwrap();
    if !have(cc[0]) || !have(emulator) {
        eprintln!("skipping {triple}: {} or {emulator} not found", cc[0]);
        return;
    }
    let spec = edgec_backends::llvm::codegen::MachineSpec {
        triple: triple.into(),
        cpu: cpu.into(),
        features: features.into(),
        bare_metal,
        sanitize_address: false,
    };
    let tm = if bare_metal { spec.target_machine().unwrap() } else { target_machine(triple, cpu, features) };
    let tile = QTile::for_target_machine(&tm);
    assert_eq!(tile.kernel, expect, "{triple} {cpu} {features}");
    let ctx = Context::create();
    let module = ctx.create_module("qgemm_cross_run");
    if triple.ends_with("eabihf") {
        // GNU ld links hard-float objects only with objects that say so (see codegen.rs).
        module.set_inline_assembly(".eabi_attribute 28, 1");
    }
    let mut data = String::new();
    let mut table = String::new();
    let mut decls = String::new();
    let small = |c: &Case| c.desc.m * c.desc.n * c.desc.k <= 70_000;
    let mut cases: Vec<Case> = matrix(true).into_iter().filter(small).collect();
    cases.extend(matrix_i32(true).into_iter().filter(small).step_by(3));
    for (idx, c) in cases.iter().enumerate() {
        let d = &c.desc;
        let name = format!("q{idx}");
        emit_qgemm(&ctx, &module, tile, &name, d).set_linkage(Linkage::External);
        decls += &format!("void {name}(const signed char*, const signed char*, signed char*, const int*, const int*, const int*, void*);\n");
        let (a, b) = c.args(tile);
        data += &c_array("signed char", &format!("a{idx}"), &a);
        data += &c_array("signed char", &format!("b{idx}"), &b);
        let i32_out = d.out == QOut::I32;
        if i32_out {
            data += &c_array("int", &format!("c{idx}"), &c.expected_i32());
        } else {
            data += &c_array("signed char", &format!("c{idx}"), &c.expected());
        }
        data += &c_array("int", &format!("bias{idx}"), c.bias.as_deref().unwrap_or(&[]));
        data += &c_array("int", &format!("mult{idx}"), &c.mult);
        data += &c_array("int", &format!("shift{idx}"), &c.shift);
        table += &format!(
            "  {{{name}, a{idx}, b{idx}, c{idx}, {}, mult{idx}, shift{idx}, {}, {}, {}, {}, {}}},\n",
            if d.bias { format!("bias{idx}") } else { "0".into() },
            d.m,
            d.n,
            d.ldc,
            qgemm_scratch_bytes(d, tile),
            if i32_out { 4 } else { 1 }
        );
    }
    prepare_module_for(&module, &tm).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "edgec_qgemm_{triple}_{cpu}_{}_{}",
        features.len(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let obj = dir.join("qgemm.o");
    tm.write_to_file(&module, FileType::Object, &obj).unwrap();
    let driver = format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef void (*qgemm_fn)(const signed char*, const signed char*, signed char*, const int*, const int*, const int*, void*);
{decls}
{data}
struct qcase {{ qgemm_fn f; const signed char *a, *b; const void *want; const int *bias, *mult, *shift; int m, n, ldc; long scratch; int esize; }};
static const struct qcase cases[] = {{
{table}}};
int main(void) {{
  int bad = 0;
  for (unsigned c = 0; c < sizeof cases / sizeof cases[0]; c++) {{
    const struct qcase *q = &cases[c];
    void *out = malloc((q->m * q->ldc + 1) * q->esize);
    char *raw = malloc(q->scratch + 64);
    void *scratch = raw + ((64 - ((unsigned long)raw & 63)) & 63);
    q->f(q->a, q->b, out, q->bias, q->mult, q->shift, scratch);
    for (int i = 0; i < q->m; i++) for (int j = 0; j < q->n; j++) {{
      int got = q->esize == 4 ? ((int *)out)[i * q->ldc + j] : ((signed char *)out)[i * q->ldc + j];
      int want = q->esize == 4 ? ((const int *)q->want)[i * q->n + j] : ((const signed char *)q->want)[i * q->n + j];
      if (got != want && bad++ < 10)
        printf("case %u: C[%d][%d] = %d, want %d\n", c, i, j, got, want);
    }}
    free(out); free(raw);
  }}
  printf("%u cases, %d mismatches\n", (unsigned)(sizeof cases / sizeof cases[0]), bad);
  return bad != 0;
}}
"#
    );
    std::fs::write(dir.join("main.c"), driver).unwrap();
    let exe = dir.join("prog");
    let out = std::process::Command::new(cc[0])
        .args(&cc[1..])
        .args(["-O1", "-o"])
        .arg(&exe)
        .arg(dir.join("main.c"))
        .arg(&obj)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", cc[0], String::from_utf8_lossy(&out.stderr));
    let out = std::process::Command::new(qemu[0]).args(&qemu[1..]).arg(&exe).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{triple} {features}: {stdout}");
    assert!(
        out.status.success(),
        "{triple} ({tile:?}) under qemu: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn qgemm_cross_run_aarch64_dotprod_qemu() {
    run_cross(
        "aarch64-unknown-linux-gnu",
        "cortex-a76",
        "",
        &["aarch64-linux-gnu-gcc", "-static"],
        &["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"],
        false,
        QKernel::Sdot,
    );
}

#[test]
fn qgemm_cross_run_aarch64_widen_qemu() {
    run_cross(
        "aarch64-unknown-linux-gnu",
        "cortex-a53",
        "",
        &["aarch64-linux-gnu-gcc", "-static"],
        &["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"],
        false,
        QKernel::Widen,
    );
}

#[test]
fn qgemm_cross_run_riscv64_qemu() {
    run_cross(
        "riscv64gc-unknown-linux-gnu",
        "",
        "",
        &["riscv64-linux-gnu-gcc", "-static"],
        &["qemu-riscv64-static", "-L", "/usr/riscv64-linux-gnu"],
        false,
        QKernel::Scalar,
    );
    run_cross(
        "riscv64-unknown-linux-gnu",
        "generic-rv64",
        "+m,+a,+f,+d,+c,+v",
        &["riscv64-linux-gnu-gcc", "-static"],
        &["qemu-riscv64-static", "-cpu", "rv64,v=true,vlen=128", "-L", "/usr/riscv64-linux-gnu"],
        false,
        QKernel::Widen,
    );
}

#[test]
fn qgemm_kernel_statement_through_codegen() {
    // A kernel whose body is one `Stmt::QGemm` (prepacked weights, views at non-zero offsets),
    // compiled by the program code generator for the host, then JIT-run from its IR.
    use edgec_backends::kir::{idx, Access, GemmShape, Kernel, QGemmSpec, Stmt, Ty, View};
    use edgec_backends::llvm::codegen::{kernel_ir, MachineSpec};
    let spec_m = MachineSpec::host();
    let tm = host_target_machine();
    let tile = QTile::for_target_machine(&tm);
    let qs = QGemmSpec {
        a_zp: -7,
        c_zp: 2,
        act_max: 120,
        ..QGemmSpec::with_shape(GemmShape { b_trans: true, ldb: 45, ..GemmShape::new(10, 37, 45) })
    };
    let desc = qs.desc(true);
    let case = Case::random(desc.clone(), 99);
    let packed = pack_weights(&desc, tile, &case.b);
    let (off_a, off_c, off_bias) = (3usize, 5usize, 2usize);
    let mut k = Kernel::new("qk");
    let pa = k.param(Ty::I8, (case.a.len() + off_a) as u64, Access::Read);
    let pb = k.param(Ty::I8, packed.len() as u64, Access::Read);
    let pc = k.param(Ty::I8, (desc.m * desc.ldc + off_c) as u64, Access::Write);
    let pbias = k.param(Ty::I32, (desc.n + off_bias) as u64, Access::Read);
    let pmult = k.param(Ty::I32, desc.n as u64, Access::Read);
    let pshift = k.param(Ty::I32, desc.n as u64, Access::Read);
    let scratch_bytes = qgemm_scratch_bytes(&desc, tile);
    let ps = k.param(Ty::F32, scratch_bytes.div_ceil(4) as u64, Access::Scratch);
    let view = |buf, off: usize| View { buf, offset: idx(off as i64) };
    k.body.push(Stmt::QGemm {
        spec: qs,
        a: view(pa, off_a),
        b: view(pb, 0),
        c: view(pc, off_c),
        bias: Some(view(pbias, off_bias)),
        mult: view(pmult, 0),
        shift: view(pshift, 0),
        scratch: Some(ps),
    });
    let ir = kernel_ir(&k, &spec_m).unwrap();
    assert!(ir.contains("edgec_qgemm_0"), "no call to the routine:\n{ir}");
    let ctx = Context::create();
    let buf = inkwell::memory_buffer::MemoryBuffer::create_from_memory_range_copy(ir.as_bytes(), "qk");
    let module = ctx.create_module_from_ir(buf).unwrap();
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).unwrap();
    type KFn =
        unsafe extern "C" fn(*const i8, *const i8, *mut i8, *const i32, *const i32, *const i32, *mut f32);
    let f = unsafe { ee.get_function::<KFn>("qk").unwrap() };
    let mut a = vec![0i8; off_a];
    a.extend_from_slice(&case.a);
    let mut bias = vec![0i32; off_bias];
    bias.extend_from_slice(case.bias.as_ref().unwrap());
    let mut c = vec![0x11i8; desc.m * desc.ldc + off_c];
    let mut scratch = vec![0f32; scratch_bytes.div_ceil(4)];
    unsafe {
        f.call(
            a.as_ptr(),
            packed.as_ptr(),
            c.as_mut_ptr(),
            bias.as_ptr(),
            case.mult.as_ptr(),
            case.shift.as_ptr(),
            scratch.as_mut_ptr(),
        )
    };
    assert_eq!(&c[..off_c], &vec![0x11i8; off_c][..], "wrote before the C view");
    assert_eq!(&c[off_c..], &case.expected()[..]);
}

#[test]
fn qgemm_cross_run_cortex_m7_qemu() {
    // Bare metal on QEMU's mps2-an500 board (Cortex-M7) with the runtime's startup code and
    // linker script; newlib's semihosting prints the result and returns main's status.
    let cm = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/c/cortex_m");
    let ld = format!("{cm}/mps2_an500.ld");
    let startup = format!("{cm}/startup.c");
    run_cross(
        "thumbv7em-none-eabihf",
        "cortex-m7",
        "",
        &[
            "arm-none-eabi-gcc",
            "-mcpu=cortex-m7",
            "-mthumb",
            "-mfpu=fpv5-d16",
            "-mfloat-abi=hard",
            "--specs=rdimon.specs",
            "-T",
            &ld,
            &startup,
        ],
        &[
            "timeout",
            "600",
            "qemu-system-arm",
            "-M",
            "mps2-an500",
            "-nographic",
            "-monitor",
            "none",
            "-serial",
            "none",
            "-semihosting",
            "-kernel",
        ],
        true,
        QKernel::Smlad,
    );
}
