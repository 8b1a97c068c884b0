//! Running the `edgec` binary from tests, as scripts do.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// Path of the `edgec` binary of this build profile, building it if needed (integration tests
/// of another package cannot use `CARGO_BIN_EXE_edgec`).
pub fn edgec_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        // target/<profile>/deps/<test> -> target/<profile>/edgec; a test-suite bin
        // (target/<profile>/<bin>) sits next to it.
        let dir = exe.parent().expect("target/<profile>");
        let profile_dir =
            if dir.file_name().is_some_and(|n| n == "deps") { dir.parent().expect("target") } else { dir };
        let bin = profile_dir.join(format!("edgec{}", std::env::consts::EXE_SUFFIX));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "edgec", "--bin", "edgec"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        // Always ask cargo: it is a no-op when the binary is fresh, and never tests a stale one.
        let status = cmd.status().expect("run cargo build for the edgec binary");
        assert!(status.success(), "building the edgec binary failed");
        assert!(bin.is_file(), "{} missing after build", bin.display());
        bin
    })
    .clone()
}

/// Runs `edgec` with arguments.
pub fn edgec(args: &[&str]) -> Output {
    Command::new(edgec_bin()).args(args).output().expect("spawn edgec")
}
