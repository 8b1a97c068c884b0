//! The CMake integration (`runtime/cmake/`, docs/user-guide.md): the project in
//! `testsuite/cmake/firmware/` compiles the zoo's `vae_mlp` with `edgec_add_model`, and is built
//! for the host and, with the arm-none-eabi toolchain file, into a firmware image for QEMU's
//! mps2-an500 board. Both programs print the model's outputs, which must match the interpreter.
//! Also: edgec reruns exactly when the model or its flags change, and bad arguments stop the
//! configure step with one message.

use edgec::{CompileOptions, Session};
use edgec_ir::types::ScalarType;
use edgec_ir::Tensor;
use edgec_runtime::toolchain::{run_command, run_with_timeout};
use edgec_runtime::TargetKind;
use edgec_testsuite::cli::edgec_bin;
use edgec_testsuite::zoo::ZOO_REL_TOL;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn project() -> PathBuf {
    repo().join("testsuite/cmake/firmware")
}

fn vae_model() -> PathBuf {
    repo().join("testsuite/zoo/vae_mlp/model.onnx")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgec-cmake-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn cmake(args: &[String]) -> Output {
    match Command::new("cmake").args(args).output() {
        Ok(out) => out,
        Err(e) => {
            panic!("cannot run cmake ({e}); testsuite/scripts/setup.sh installs it (Debian package cmake)")
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Configures `src` into `build` with the edgec executable of this build and `extra` arguments.
fn configure(src: &Path, build: &Path, extra: &[String]) -> Output {
    let mut args = vec![
        "-S".to_string(),
        src.display().to_string(),
        "-B".into(),
        build.display().to_string(),
        format!("-DEDGEC_EXECUTABLE={}", edgec_bin().display()),
    ];
    args.extend(extra.iter().cloned());
    cmake(&args)
}

fn configure_ok(src: &Path, build: &Path, extra: &[String]) {
    let out = configure(src, build, extra);
    assert!(out.status.success(), "cmake configure failed:\n{}", text(&out));
}

fn build_ok(build: &Path) {
    let out = cmake(&["--build".into(), build.display().to_string()]);
    assert!(out.status.success(), "cmake --build failed:\n{}", text(&out));
}

/// The input main.c builds: element i is ((i mod 17) - 8) / 8.
fn main_c_input() -> Tensor {
    let values: Vec<f64> = (0..4 * 16).map(|i| ((i % 17) as f64 - 8.0) / 8.0).collect();
    Tensor::from_f64(ScalarType::F32, &[4, 16], &values).expect("input tensor")
}

fn interpreter_outputs() -> Vec<f64> {
    let session = Session::import(vae_model(), &CompileOptions::default()).expect("import vae_mlp");
    let outputs = session.run(vec![main_c_input()]).expect("interpreter run");
    assert_eq!(outputs.len(), 1);
    outputs[0].to_f64_vec()
}

/// Compares the values a program printed (one per line) with the interpreter's, within the
/// zoo's bound (max abs error ≤ 1e-4 × max |reference|).
fn check_printed(what: &str, stdout: &str) {
    let printed: Vec<f64> = stdout
        .lines()
        .map(|l| l.trim().parse().unwrap_or_else(|_| panic!("{what}: not a number: {l:?}\n{stdout}")))
        .collect();
    let reference = interpreter_outputs();
    assert_eq!(printed.len(), reference.len(), "{what}: printed {} values", printed.len());
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = printed.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    assert!(worst <= ZOO_REL_TOL * scale, "{what}: max abs error {worst:e} vs max |reference| {scale:e}");
    println!("{what}: {} values, max abs error {worst:.3e} (max |reference| {scale:.3})", printed.len());
}

#[test]
fn firmware_for_mps2_an500_runs_under_qemu_and_matches_the_interpreter() {
    let build = scratch("m7");
    let toolchain = repo().join("runtime/cmake/arm-none-eabi-cortex-m7.cmake");
    // The package found through CMAKE_PREFIX_PATH here, through edgec_DIR in the host test.
    configure_ok(
        &project(),
        &build,
        &[
            format!("-DCMAKE_TOOLCHAIN_FILE={}", toolchain.display()),
            format!("-DCMAKE_PREFIX_PATH={}", repo().join("runtime/cmake").display()),
            format!("-DVAE_MODEL={}", vae_model().display()),
        ],
    );
    build_ok(&build);
    let image = build.join("firmware");
    let (program, args) = run_command(TargetKind::CortexM7, &image);
    assert!(args.iter().any(|a| a == "mps2-an500"), "{args:?}");
    let run =
        run_with_timeout(Command::new(&program).args(&args).current_dir(&build), Duration::from_secs(120))
            .expect("run qemu-system-arm");
    assert!(run.success(), "firmware failed ({:?}):\n{}{}", run.status, run.stdout, run.stderr);
    check_printed("cortex-m7 firmware under qemu-system-arm", &run.stdout);
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn host_build_matches_the_interpreter_and_reruns_edgec_only_when_needed() {
    let build = scratch("host");
    // A copy of the model, so that touching it leaves the repository alone.
    let model = build.join("vae.onnx");
    std::fs::copy(vae_model(), &model).expect("copy model");
    let mut args = vec![
        format!("-Dedgec_DIR={}", repo().join("runtime/cmake").display()),
        format!("-DVAE_MODEL={}", model.display()),
    ];
    configure_ok(&project(), &build, &args);
    build_ok(&build);
    let run = Command::new(build.join("firmware")).output().expect("run the host program");
    assert!(run.status.success(), "host program failed:\n{}", text(&run));
    check_printed("host program", &String::from_utf8_lossy(&run.stdout));

    let object = build.join("edgec/vae/model.o");
    let first = mtime(&object);
    build_ok(&build);
    assert_eq!(mtime(&object), first, "a rebuild with nothing changed reran edgec");

    // A newer model reruns edgec.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::File::options()
        .append(true)
        .open(&model)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .unwrap();
    build_ok(&build);
    let second = mtime(&object);
    assert!(second > first, "touching the model did not rerun edgec");

    // So does a changed flag (the same machine, spelled as a triple).
    args.push("-DEDGEC_TARGET=x86_64-unknown-linux-gnu".into());
    configure_ok(&project(), &build, &args);
    build_ok(&build);
    assert!(mtime(&object) > second, "changing the target flag did not rerun edgec");
    let flags = std::fs::read_to_string(build.join("edgec/vae/edgec-flags.txt")).unwrap();
    assert!(flags.contains("--target x86_64-unknown-linux-gnu --name vae"), "{flags}");
}

/// Writes a one-model project calling `edgec_add_model(<call>)` and configures it.
fn configure_call(name: &str, call: &str, extra: &[String]) -> Output {
    let dir = scratch(name);
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let lists = format!(
        "cmake_minimum_required(VERSION 3.20)\nproject(p C)\nfind_package(edgec REQUIRED)\nedgec_add_model({call})\n"
    );
    std::fs::write(src.join("CMakeLists.txt"), lists).unwrap();
    let mut args = vec![format!("-Dedgec_DIR={}", repo().join("runtime/cmake").display())];
    args.extend(extra.iter().cloned());
    configure(&src, &dir.join("build"), &args)
}

#[test]
fn bad_arguments_stop_the_configure_step_with_one_message() {
    let model = vae_model().display().to_string();
    let cases = [
        ("missing-model", "m MODEL /nonexistent/m.onnx".to_string(), "does not exist"),
        ("no-model", "m TARGET host".to_string(), "MODEL <file.onnx> is required"),
        ("bad-name", format!("9m MODEL {model}"), "must be a C identifier"),
        ("calib-no-int8", format!("m MODEL {model} CALIBRATE {model}"), "CALIBRATE needs QUANTIZE int8"),
        ("int8-no-calib", format!("m MODEL {model} QUANTIZE int8"), "QUANTIZE int8 needs CALIBRATE"),
        (
            "missing-calib",
            format!("m MODEL {model} QUANTIZE int8 CALIBRATE /nonexistent/c.npz"),
            "calibration file `/nonexistent/c.npz` does not exist",
        ),
        ("stray", format!("m MODEL {model} TARGTE host"), "unexpected arguments `TARGTE;host`"),
    ];
    for (name, call, message) in cases {
        let out = configure_call(name, &call, &[]);
        assert!(!out.status.success(), "{call}: configured");
        assert!(text(&out).contains(message), "{call}: expected {message:?} in:\n{}", text(&out));
    }
    // No compiler: find_package(edgec REQUIRED) says where it looked.
    let out = configure_call(
        "no-edgec",
        &format!("m MODEL {model}"),
        &["-DEDGEC_EXECUTABLE=/nonexistent/edgec".into()],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("the edgec compiler was not found"), "{}", text(&out));
}

#[test]
fn the_package_version_is_the_workspace_version() {
    let version = std::fs::read_to_string(repo().join("runtime/cmake/edgecConfigVersion.cmake")).unwrap();
    assert!(
        version.contains(&format!("set(PACKAGE_VERSION \"{}\")", env!("CARGO_PKG_VERSION"))),
        "runtime/cmake/edgecConfigVersion.cmake does not say version {}",
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn quantization_and_options_reach_edgec() {
    let build = scratch("int8");
    let zoo = repo().join("testsuite/zoo/vae_mlp");
    configure_ok(
        &repo().join("testsuite/cmake/int8"),
        &build,
        &[
            format!("-Dedgec_DIR={}", repo().join("runtime/cmake").display()),
            format!("-DVAE_MODEL={}", zoo.join("model.onnx").display()),
            format!("-DVAE_SAMPLES={}", zoo.join("inputs.npz").display()),
        ],
    );
    build_ok(&build);
    assert!(build.join("libvae8.a").is_file(), "no libvae8.a");
    let report = std::fs::read_to_string(build.join("edgec/vae8/report.json")).expect("report.json");
    let report: serde_json::Value = serde_json::from_str(&report).expect("report.json parses");
    assert_eq!(report["quantize"], "int8", "{report}");
    assert_eq!(report["quantization"]["observer"], "mse", "{report}");
    assert_eq!(report["symbol"], "vae8", "{report}");
}

#[test]
fn a_model_edgec_rejects_fails_the_build_with_its_message() {
    let dir = scratch("bad-model-src");
    let model = dir.join("garbage.onnx");
    std::fs::write(&model, b"not a protobuf").unwrap();
    let out = configure_call("bad-model", &format!("m MODEL {}", model.display()), &[]);
    assert!(out.status.success(), "configure: {}", text(&out));
    let build = std::env::temp_dir().join(format!("edgec-cmake-{}-bad-model/build", std::process::id()));
    let out = cmake(&["--build".into(), build.display().to_string()]);
    assert!(!out.status.success(), "a garbage model built");
    assert!(text(&out).contains("edgec: error: "), "{}", text(&out));
}
