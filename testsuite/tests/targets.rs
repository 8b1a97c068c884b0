//! Every zoo model compiled for every machine target and executed (natively on the host, under
//! qemu-user for AArch64 and RISC-V 64, under qemu-system-arm on a Cortex-M7 board), against the
//! reference interpreter: max abs error ≤ 1e-4 × max |reference| per output.
//!
//! A model skips Cortex-M7 only when its weights cannot fit the board's 4 MiB code memory (the
//! skip is printed with the size).

use edgec::{CompileOptions, Session, Target};
use edgec_testsuite::compare::max_rel_error;
use edgec_testsuite::zoo::{discover_with_large, run_on_targets, zoo_dir, ZooModel, ZOO_REL_TOL};

const TARGETS: &[&str] = &["host", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu", "cortex-m7"];
/// Code memory of the mps2-an500 board.
const M7_FLASH: u64 = 4 << 20;

fn check(m: &ZooModel, target: &str) -> Result<String, String> {
    let session =
        Session::import(m.model(), &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
    let inputs = session.read_inputs(m.inputs()).map_err(|e| format!("inputs: {e}"))?;
    let expected = session.run(inputs.clone()).map_err(|e| format!("interpreter: {e}"))?;
    let t = Target::parse(target).map_err(|e| e.to_string())?;
    let compiled = session.compile(&t, "model", false).map_err(|e| format!("compile: {e}"))?;
    let weights = compiled.program.as_ref().map_or(0, |p| p.weights_bytes());
    let object = compiled.file("model.o").ok_or("no model.o")?;
    if target == "cortex-m7" && weights + object.len() as u64 / 4 > M7_FLASH {
        return Ok(format!("skip (weights {weights} bytes exceed the board's {M7_FLASH}-byte flash)"));
    }
    let (outputs, _) = session.execute(&compiled, &inputs).map_err(|e| format!("execute: {e}"))?;
    let mut worst = 0.0f64;
    for ((name, e), a) in session.output_names().iter().zip(&expected).zip(&outputs) {
        let err = max_rel_error(e, a).map_err(|x| format!("output {name:?}: {x}"))?;
        if err > ZOO_REL_TOL {
            return Err(format!("output {name:?}: max err/max|ref| {err:.2e}"));
        }
        worst = worst.max(err);
    }
    Ok(format!("max err/max|ref| {worst:.2e}"))
}

#[test]
fn zoo_models_match_the_interpreter_on_every_target() {
    let models = discover_with_large(&zoo_dir());
    assert!(models.len() >= 7, "only {} zoo models", models.len());
    let failures = run_on_targets(&models, TARGETS, check);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A C driver that runs any compiled model with every buffer on the heap at exactly its size
/// (arena = `arena_bytes`), so valgrind's memcheck flags any access outside them.
const HEAP_DRIVER: &str = r#"#define _POSIX_C_SOURCE 200112L
#include "edgec_runtime.h"
#include <stdio.h>
#include <stdlib.h>
extern const edgec_model model_model;
static void *exact(size_t n, size_t align) {
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : 1) != 0) exit(10);
    return p;
}
int main(void) {
    const edgec_model *m = &model_model;
    const void *in[64];
    void *out[64];
    char name[32];
    for (uint32_t i = 0; i < m->num_inputs; i++) {
        void *b = exact(m->inputs[i].bytes, 64);
        snprintf(name, sizeof name, "in_%u.bin", (unsigned)i);
        FILE *f = fopen(name, "rb");
        if (!f || fread(b, 1, m->inputs[i].bytes, f) != m->inputs[i].bytes) return 11;
        fclose(f);
        in[i] = b;
    }
    for (uint32_t i = 0; i < m->num_outputs; i++) out[i] = exact(m->outputs[i].bytes, 64);
    edgec_ctx ctx;
    void *arena = exact(m->arena_bytes, m->arena_align);
    if (edgec_init(&ctx, m, arena, m->arena_bytes) != EDGEC_OK) return 12;
    if (edgec_run(&ctx, in, out) != EDGEC_OK) return 13;
    for (uint32_t i = 0; i < m->num_outputs; i++) {
        snprintf(name, sizeof name, "out_%u.bin", (unsigned)i);
        FILE *f = fopen(name, "wb");
        if (!f || fwrite(out[i], 1, m->outputs[i].bytes, f) != m->outputs[i].bytes) return 14;
        fclose(f);
        free(out[i]);
    }
    for (uint32_t i = 0; i < m->num_inputs; i++) free((void *)in[i]);
    free(arena);
    return 0;
}
"#;

/// Runs zoo model `m`, compiled as `c`, through `HEAP_DRIVER` (inputs, outputs and the arena on
/// the heap at exactly their sizes): `build` compiles and links the driver in the directory it
/// is given and returns the command that runs it; the run must succeed and match the interpreter.
fn run_on_heap(
    m: &edgec_testsuite::zoo::ZooModel,
    c: &edgec::Compiled,
    tag: &str,
    build: impl FnOnce(&std::path::Path) -> std::process::Command,
) {
    let session = Session::import(m.model(), &CompileOptions::default()).unwrap();
    let inputs = session.read_inputs(m.inputs()).unwrap();
    let expected = session.run(inputs.clone()).unwrap();
    let dir = std::env::temp_dir().join(format!("edgec-{tag}-{}-{}", std::process::id(), m.name));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.o"), c.file("model.o").unwrap()).unwrap();
    std::fs::write(dir.join("main.c"), HEAP_DRIVER).unwrap();
    for (i, t) in inputs.iter().enumerate() {
        std::fs::write(dir.join(format!("in_{i}.bin")), t.to_le_bytes()).unwrap();
    }
    let run = build(&dir).current_dir(&dir).output().unwrap();
    assert!(
        run.status.success(),
        "{}: status {:?}\n{}",
        m.name,
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    for (i, e) in expected.iter().enumerate() {
        let bytes = std::fs::read(dir.join(format!("out_{i}.bin"))).unwrap();
        let a = edgec_ir::Tensor::from_le_bytes(e.scalar_type(), e.shape(), &bytes).unwrap();
        let err = max_rel_error(e, &a).unwrap();
        assert!(err <= ZOO_REL_TOL, "{} output {i}: {err:.2e}", m.name);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Compiles `args` (in `dir`) and fails the test with the compiler's message if that fails.
fn cc(dir: &std::path::Path, cmd: &str, args: &[&std::ffi::OsStr], what: &str) {
    let out = std::process::Command::new(cmd).current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn host_runs_touch_only_their_buffers_under_valgrind() {
    use edgec_runtime::toolchain::{self, TargetKind};
    if !toolchain::tool_available("valgrind") {
        panic!("valgrind is required (testsuite/scripts/setup.sh installs it)");
    }
    // valgrind 3.19 does not decode AVX-512, so this run uses the x86-64 triple's default CPU
    // (x86-64-v3, AVX2); the AVX-512 host code is covered by the ASan run and the other tests.
    let host = Target::parse("x86_64-unknown-linux-gnu").unwrap();
    for m in edgec_testsuite::zoo::discover(&zoo_dir()) {
        let session = Session::import(m.model(), &CompileOptions::default()).unwrap();
        let c = session.compile(&host, "model", false).unwrap();
        run_on_heap(&m, &c, "valgrind", |dir| {
            let rt = toolchain::build_runtime(TargetKind::X86_64Linux, &dir.join("rt")).unwrap();
            let inc = dir.join("rt").join("c");
            let args: Vec<&std::ffi::OsStr> =
                ["-std=c99", "-Wall", "-Werror", "-g", "-o", "main", "main.c", "model.o"]
                    .iter()
                    .map(std::ffi::OsStr::new)
                    .chain([rt.as_os_str(), "-I".as_ref(), inc.as_os_str()])
                    .collect();
            cc(dir, "cc", &args, &m.name);
            let mut v = std::process::Command::new("valgrind");
            v.args(["-q", "--error-exitcode=99", "--leak-check=no", "./main"]);
            v
        });
        println!(
            "ok   {:<22} clean under valgrind memcheck (arena {} bytes on the heap)",
            m.name,
            c.program.as_ref().unwrap().arena.arena_bytes
        );
    }
}

/// Every zoo model, compiled for the host with AddressSanitizer instrumenting every load and
/// store of the generated code (and the runtime and driver built with `-fsanitize=address`),
/// runs with its inputs, outputs and arena on the heap at exactly their stated sizes: any access
/// outside those buffers fails the run. Unlike the valgrind run this covers the AVX-512 code.
#[test]
fn host_runs_are_clean_under_address_sanitizer() {
    use edgec_runtime::toolchain::{self, TargetKind};
    let host = Target::parse("host").unwrap();
    for m in edgec_testsuite::zoo::discover(&zoo_dir()) {
        let session = Session::import(m.model(), &CompileOptions::default()).unwrap();
        let options = edgec::CodegenOptions { sanitize_address: true, ..edgec::CodegenOptions::new("model") };
        let c = session.compile_with(&host, &options).unwrap();
        // The checks are really in the generated code (calls into ASan's reporting functions).
        let object = c.file("model.o").unwrap();
        assert!(object.windows(13).any(|w| w == b"__asan_report"), "{}: no ASan instrumentation", m.name);
        run_on_heap(&m, &c, "asan", |dir| {
            toolchain::build_runtime(TargetKind::X86_64Linux, &dir.join("rt")).unwrap();
            let inc = dir.join("rt").join("c");
            let src = inc.join("edgec_runtime.c");
            let args: Vec<&std::ffi::OsStr> =
                ["-std=c99", "-g", "-fsanitize=address", "-o", "main", "main.c", "model.o"]
                    .iter()
                    .map(std::ffi::OsStr::new)
                    .chain([src.as_os_str(), "-I".as_ref(), inc.as_os_str()])
                    .collect();
            cc(dir, toolchain::CLANG, &args, &m.name);
            let mut run = std::process::Command::new(dir.join("main"));
            run.env("ASAN_OPTIONS", "detect_leaks=0:halt_on_error=1");
            run
        });
        println!(
            "ok   {:<22} clean under AddressSanitizer (arena {} bytes on the heap)",
            m.name,
            c.program.as_ref().unwrap().arena.arena_bytes
        );
    }
}
