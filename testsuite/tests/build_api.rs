//! `edgec::build` for targets the example crate cannot be built for here (only the x86-64 Rust
//! standard library is installed): the archive holds the model and runtime objects for the
//! target, made by the target's archiver, and the wrapper is written. The host path, linked and
//! run, is `testsuite/examples/cargo-model`.

use edgec::build::Model;
use std::path::{Path, PathBuf};
use std::process::Command;

fn vae_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("zoo/vae_mlp/model.onnx")
}

fn archive_members(ar: &str, archive: &Path) -> Vec<String> {
    let out = Command::new(ar).arg("t").arg(archive).output().unwrap_or_else(|e| panic!("run {ar}: {e}"));
    assert!(out.status.success(), "{ar} t {}: {}", archive.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

/// The ELF machine of an archive member (`e_machine`: 40 ARM, 183 AArch64, 243 RISC-V).
fn machine_of_member(ar: &str, archive: &Path, member: &str) -> u16 {
    let out = Command::new(ar).arg("p").arg(archive).arg(member).output().expect("ar p");
    assert!(out.stdout.len() > 20 && out.stdout.starts_with(b"\x7fELF"), "{member} is not ELF");
    u16::from_le_bytes([out.stdout[18], out.stdout[19]])
}

#[test]
fn cross_targets_get_an_archive_for_their_machine_and_a_wrapper() {
    let dir = std::env::temp_dir().join(format!("edgec-build-api-{}", std::process::id()));
    for (triple, ar, machine) in [
        ("thumbv7em-none-eabihf", "arm-none-eabi-ar", 40),
        ("aarch64-unknown-linux-gnu", "aarch64-linux-gnu-ar", 183),
    ] {
        let out = dir.join(triple);
        let built = Model::new(vae_model())
            .name("vae")
            .target_for_cargo_triple(triple)
            .out_dir(&out)
            .compile()
            .unwrap_or_else(|e| panic!("{triple}: {e}"));
        let archive = built.dir.join(format!("lib{}.a", built.library));
        let mut members = archive_members(ar, &archive);
        members.sort();
        assert_eq!(members, ["edgec_runtime.o", "model.o"], "{triple}");
        for m in &members {
            assert_eq!(machine_of_member(ar, &archive, m), machine, "{triple}: {m}");
        }
        let wrapper = std::fs::read_to_string(&built.wrapper).expect("wrapper");
        assert!(wrapper.contains("pub x: [[f32; 784]; 4],"), "{triple}: {wrapper}");
        assert_eq!(built.report["symbol"], "vae");
    }
}
