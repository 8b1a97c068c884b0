//! Every committed zoo model lowers to kernel IR whose text form (`docs/kernel-ir.md`) is
//! non-empty and deterministic: printing the program twice gives the same text, and so does
//! lowering the module a second time. The lowering is the one `compile` runs on the default
//! pass pipeline's output, with `LowerOptions::default()` (portable loops), so no backend is
//! needed. The `// test: lower` filetests pin the exact text of small cases.

use edgec::{CompileOptions, Session};
use edgec_backends::lower::print_program;
use edgec_backends::lower::{lower, LowerOptions};
use edgec_testsuite::filetest::diff;
use edgec_testsuite::zoo::{discover, zoo_dir};

#[test]
fn zoo_kernel_ir_prints_deterministically() {
    let models = discover(&zoo_dir());
    assert!(!models.is_empty(), "no zoo models in {}", zoo_dir().display());
    for m in models {
        let session = Session::import(m.model(), &CompileOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let (optimized, _) = session.optimized().unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let f = optimized.main().unwrap();
        let p = lower(f, &LowerOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", m.name));
        let text = print_program(&p);
        assert!(text.starts_with("program @") && text.contains("\ncalls\n"), "{}: {text}", m.name);
        let headers = text.lines().filter(|l| l.starts_with('k') && l.contains(": kernel ")).count();
        assert_eq!(headers, p.kernels.len(), "{}: one header per kernel", m.name);
        let again = print_program(&p);
        assert!(text == again, "{}: printing twice differs:\n{}", m.name, diff(&text, &again));
        let relowered = print_program(&lower(f, &LowerOptions::default()).unwrap());
        assert!(text == relowered, "{}: lowering twice differs:\n{}", m.name, diff(&text, &relowered));
        println!(
            "{:<22} {:>4} kernels {:>4} calls {:>8} bytes of text",
            m.name,
            p.kernels.len(),
            p.calls.len(),
            text.len()
        );
    }
}
