//! End-to-end tests of the C runtime, the harness and the toolchain driver on every target, with a
//! hand-written fake model (no compiler involved).

use std::path::{Path, PathBuf};

use edgec_runtime::toolchain::{self, TargetKind};
use edgec_runtime::HostModel;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn workdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edgec-runtime").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

const A: [f32; 6] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
const B: [f32; 6] = [10.0, 20.5, 30.0, -40.0, 50.0, 0.25];

/// Compiles a fixture model for `kind` into `dir`.
fn fixture_object(kind: TargetKind, dir: &Path, name: &str) -> PathBuf {
    let c = toolchain::write_sources(dir).unwrap();
    let obj = dir.join(format!("{name}.o"));
    toolchain::compile_c(kind, &Path::new(FIXTURES).join(format!("{name}.c")), &obj, &[&c], &[], &[])
        .unwrap_or_else(|e| panic!("{e}"));
    obj
}

/// Builds the harness around the fake model, runs it and checks both outputs.
fn run_fake_model(kind: TargetKind, valgrind: bool) {
    let dir = workdir(&format!("fake-{}{}", kind.name(), if valgrind { "-valgrind" } else { "" }));
    let model_o = fixture_object(kind, &dir, "fake_model");
    let exe = dir.join("harness.elf");
    toolchain::link_harness(kind, &model_o, "fake_model", 64, 4 * 64, &exe).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("in_0.bin"), f32_bytes(&A)).unwrap();
    std::fs::write(dir.join("in_1.bin"), f32_bytes(&B)).unwrap();
    let out = if valgrind {
        let mut cmd = std::process::Command::new("valgrind");
        cmd.args(["--tool=memcheck", "--error-exitcode=1", "--leak-check=full", "-q"])
            .arg(&exe)
            .current_dir(&dir);
        toolchain::run_with_timeout(&mut cmd, toolchain::DEFAULT_RUN_TIMEOUT).unwrap()
    } else {
        toolchain::run_harness(kind, &exe, &dir).unwrap_or_else(|e| panic!("{e}"))
    };
    assert!(out.success(), "{kind}: harness failed: {out:?}");
    let sum = bytes_f32(&std::fs::read(dir.join("out_0.bin")).unwrap());
    let twice = bytes_f32(&std::fs::read(dir.join("out_1.bin")).unwrap());
    let want_sum: Vec<f32> = A.iter().zip(&B).map(|(a, b)| a + b).collect();
    let want_twice: Vec<f32> = A.iter().map(|a| a * 2.0).collect();
    assert_eq!(sum, want_sum, "{kind}: out_0");
    assert_eq!(twice, want_twice, "{kind}: out_1");

    // A missing input is reported in one line with a nonzero exit.
    std::fs::remove_file(dir.join("in_1.bin")).unwrap();
    let out = toolchain::run_harness(kind, &exe, &dir).unwrap();
    assert_ne!(out.status, Some(0), "{kind}: missing input must fail: {out:?}");
    assert!(out.stdout.contains("edgec-harness: error: cannot open: in_1.bin"), "{kind}: {out:?}");
}

#[test]
fn fake_model_x86_64_native() {
    run_fake_model(TargetKind::X86_64Linux, false);
}

#[test]
fn fake_model_aarch64_qemu_user() {
    run_fake_model(TargetKind::Aarch64Linux, false);
}

#[test]
fn fake_model_riscv64_qemu_user() {
    run_fake_model(TargetKind::Riscv64Linux, false);
}

#[test]
fn fake_model_cortex_m7_qemu_system() {
    run_fake_model(TargetKind::CortexM7, false);
}

#[test]
fn fake_model_cortex_m4_qemu_system() {
    run_fake_model(TargetKind::CortexM4, false);
}

#[test]
fn fake_model_host_under_valgrind() {
    if !toolchain::tool_available("valgrind") {
        eprintln!("valgrind not installed (Debian package valgrind): skipped");
        return;
    }
    run_fake_model(TargetKind::X86_64Linux, true);
}

#[test]
fn harness_bench_mode_prints_timing() {
    let kind = TargetKind::X86_64Linux;
    let dir = workdir("bench-host");
    let model_o = fixture_object(kind, &dir, "fake_model");
    let exe = dir.join("harness");
    toolchain::link_harness(kind, &model_o, "fake_model", 64, 256, &exe).unwrap();
    std::fs::write(dir.join("in_0.bin"), f32_bytes(&A)).unwrap();
    std::fs::write(dir.join("in_1.bin"), f32_bytes(&B)).unwrap();
    std::fs::write(dir.join("bench.txt"), "25\n").unwrap();
    let out = toolchain::run_harness(kind, &exe, &dir).unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out.stdout.contains("edgec-bench runs=25 total_ns="), "{out:?}");
}

#[test]
fn harness_rejects_small_arena_and_wrong_input_size() {
    let kind = TargetKind::X86_64Linux;
    let dir = workdir("errors-host");
    let model_o = fixture_object(kind, &dir, "fake_model");
    let small = dir.join("small-arena");
    toolchain::link_harness(kind, &model_o, "fake_model", 32, 256, &small).unwrap();
    let out = toolchain::run_harness(kind, &small, &dir).unwrap();
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("edgec_init failed: arena too small"), "{out:?}");

    let exe = dir.join("harness");
    toolchain::link_harness(kind, &model_o, "fake_model", 64, 256, &exe).unwrap();
    std::fs::write(dir.join("in_0.bin"), f32_bytes(&A[..5])).unwrap();
    std::fs::write(dir.join("in_1.bin"), f32_bytes(&B)).unwrap();
    let out = toolchain::run_harness(kind, &exe, &dir).unwrap();
    assert_eq!(out.status, Some(1), "{out:?}");
    assert!(out.stdout.contains("wrong input size"), "{out:?}");

    let err = toolchain::link_harness(kind, &model_o, "not a symbol", 64, 256, &exe).unwrap_err();
    assert!(err.to_string().contains("not a C identifier"), "{err}");
}

#[test]
fn cortex_m7_fault_is_reported_and_exits_nonzero() {
    let kind = TargetKind::CortexM7;
    let dir = workdir("fault-cortex-m7");
    let model_o = fixture_object(kind, &dir, "fault_model");
    let exe = dir.join("fault.elf");
    toolchain::link_harness(kind, &model_o, "fault_model", 0, 0, &exe).unwrap();
    let out = toolchain::run_harness(kind, &exe, &dir).unwrap();
    assert_ne!(out.status, Some(0), "{out:?}");
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(text.contains("HardFault"), "{out:?}");
}

#[test]
fn runtime_code_size_per_target() {
    let dir = workdir("code-size");
    for kind in TargetKind::ALL {
        let bytes =
            toolchain::runtime_code_bytes(kind, &dir.join(kind.name())).unwrap_or_else(|e| panic!("{e}"));
        println!("runtime code bytes (.text + .rodata, -Os) {kind}: {bytes}");
        assert!(bytes > 0);
        if kind == TargetKind::CortexM7 {
            assert!(bytes < 4096, "Cortex-M7 runtime is {bytes} bytes, budget 4096");
        }
    }
}

#[test]
fn host_model_runs_through_shared_object() {
    let kind = TargetKind::X86_64Linux;
    let dir = workdir("host-model");
    let model_o = fixture_object(kind, &dir, "fake_model");
    let runtime_o = toolchain::build_runtime(kind, &dir.join("rt")).unwrap();
    let so = dir.join("libfake.so");
    toolchain::link_shared_host(&model_o, &runtime_o, &so).unwrap_or_else(|e| panic!("{e}"));

    // SAFETY: the fixture follows the edgec ABI.
    let mut model = unsafe { HostModel::load(&so, "fake_model") }.unwrap();
    assert_eq!(model.name(), "fake");
    assert_eq!(model.inputs().len(), 2);
    assert_eq!(model.inputs()[1].name, "b");
    assert_eq!(model.inputs()[0].dims, vec![2, 3]);
    assert_eq!(model.inputs()[0].dtype, 1);
    assert_eq!(model.outputs()[1].name, "twice_a");
    assert_eq!(model.outputs()[0].bytes, 24);
    assert_eq!(model.kernel_names(), ["add", "scale"]);
    assert_eq!(model.arena_bytes(), 64);

    let (a, b) = (f32_bytes(&A), f32_bytes(&B));
    let mut sum = vec![0u8; 24];
    let mut twice = vec![0u8; 24];
    model.run(&[&a, &b], &mut [&mut sum, &mut twice]).unwrap();
    assert_eq!(bytes_f32(&sum), A.iter().zip(&B).map(|(a, b)| a + b).collect::<Vec<_>>());
    assert_eq!(bytes_f32(&twice), A.iter().map(|a| a * 2.0).collect::<Vec<_>>());
    // Unaligned input slices and repeated runs work too.
    let shifted = [&[0u8][..], &a].concat();
    model.run(&[&shifted[1..], &b], &mut [&mut sum, &mut twice]).unwrap();
    assert_eq!(bytes_f32(&twice), A.iter().map(|a| a * 2.0).collect::<Vec<_>>());

    let err = model.run(&[&a], &mut [&mut sum, &mut twice]).unwrap_err();
    assert!(err.to_string().contains("expected 2 inputs, got 1"), "{err}");
    let err = model.run(&[&a, &b[..20]], &mut [&mut sum, &mut twice]).unwrap_err();
    assert!(err.to_string().contains("input 1 ('b') must be 24 bytes, got 20"), "{err}");
    assert!(unsafe { HostModel::load(&so, "no_such_model") }.is_err());
}

#[test]
fn missing_tool_names_its_package() {
    let err = toolchain::run_with_timeout(
        &mut std::process::Command::new("edgec-no-such-tool"),
        std::time::Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(err.to_string().contains("edgec-no-such-tool not found"), "{err}");
}

#[test]
fn target_names_parse() {
    assert_eq!(TargetKind::from_name("host"), Some(TargetKind::X86_64Linux));
    assert_eq!(TargetKind::from_name("cortex-m7"), Some(TargetKind::CortexM7));
    assert_eq!(TargetKind::from_name("thumbv7em-none-eabihf"), Some(TargetKind::CortexM7));
    assert_eq!(TargetKind::from_name("riscv64gc-unknown-linux-gnu"), Some(TargetKind::Riscv64Linux));
    assert_eq!(TargetKind::from_name("sparc"), None);
}
