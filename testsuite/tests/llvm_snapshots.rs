//! Insta snapshots of the optimized LLVM IR emitted for small kernels (a fixed x86-64-v3 target, so
//! the text does not depend on the machine running the test). `EDGEC_BLESS=1` (or
//! `INSTA_UPDATE=always`) rewrites them; review the diff like any compiler output change.

use edgec_backends::llvm::codegen::{kernel_ir, MachineSpec};
use edgec_backends::lower::{lower, LowerOptions};

const CASES: &[(&str, &str)] = &[
    (
        "add_broadcast",
        r#"func @f(%a: tensor<4x8xf32>, %b: tensor<8xf32>) -> ("y": tensor<4x8xf32>) {
  %0 = math.add %a, %b : tensor<4x8xf32> loc("add")
  func.return %0 loc(unknown)
}"#,
    ),
    (
        "gelu_erf",
        r#"func @f(%a: tensor<64xf32>) -> ("y": tensor<64xf32>) {
  %0 = math.gelu %a : tensor<64xf32> loc("gelu")
  func.return %0 loc(unknown)
}"#,
    ),
    (
        "softmax_rows",
        r#"func @f(%a: tensor<2x16xf32>) -> ("y": tensor<2x16xf32>) {
  %0 = nn.softmax %a {axis = -1} : tensor<2x16xf32> loc("softmax")
  func.return %0 loc(unknown)
}"#,
    ),
    (
        "transpose_2d",
        r#"func @f(%a: tensor<3x5xf32>) -> ("y": tensor<5x3xf32>) {
  %0 = shape.transpose %a {perm = [1, 0]} : tensor<5x3xf32> loc("t")
  func.return %0 loc(unknown)
}"#,
    ),
];

#[test]
fn emitted_llvm_ir_of_small_kernels() {
    if std::env::var("EDGEC_BLESS").is_ok_and(|v| v == "1") {
        // SAFETY: set before any snapshot assertion and no other thread reads the environment.
        std::env::set_var("INSTA_UPDATE", "always");
    }
    let spec = MachineSpec {
        triple: "x86_64-unknown-linux-gnu".into(),
        cpu: "x86-64-v3".into(),
        features: String::new(),
        bare_metal: false,
        sanitize_address: false,
    };
    for (name, text) in CASES {
        let m = edgec_ir::parser::parse_module(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        edgec_ir::verify::verify_module(&m).unwrap_or_else(|e| panic!("{name}: {e}"));
        let p = lower(m.main().unwrap(), &LowerOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut out = String::new();
        for k in &p.kernels {
            out += &kernel_ir(k, &spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        // The module header names the host's LLVM build; keep only the functions.
        let body: String = out
            .lines()
            .filter(|l| !l.starts_with("; ModuleID") && !l.starts_with("source_filename"))
            .collect::<Vec<_>>()
            .join("\n");
        insta::assert_snapshot!(format!("llvm_{name}"), body);
    }
}
