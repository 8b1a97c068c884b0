//! Every pass, declared once: name, summary, constructor. `docs/passes.md` lists them.

use crate::manager::{Pass, PassError};
use edgec_ir::Module;

pub struct PassInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub create: fn() -> Box<dyn Pass>,
}

pub static PASSES: &[PassInfo] = &[
    PassInfo {
        name: "verify",
        summary:
            "Checks every IR invariant (see `edgec_ir::verify`); fails the pipeline on the first violation.",
        create: || Box::new(Verify),
    },
    PassInfo {
        name: "print",
        summary: "Prints the IR to standard error at this point of the pipeline.",
        create: || Box::new(Print),
    },
    PassInfo {
        name: "dce",
        summary: "Removes pure ops whose results are never used, and unused constants.",
        create: || Box::new(crate::dce::Dce),
    },
    PassInfo {
        name: "egraph",
        summary: "Equality saturation (egg) over the kernel-level ops, extracted with a memory-traffic, \
                  FLOP and per-kernel cost model, to recover fused ops from decomposed graphs. Rule \
                  groups: `algebra` (commutativity, x*1, x+0, x/c, 1/y, identity casts), `activation` \
                  (GELU erf and tanh forms, x*sigmoid(x) as swish) and `normalization` (LayerNorm and \
                  RMSNorm over the last axis, with their scale and bias). `EDGEC_LOG_EGRAPH=1` prints \
                  the runner's stop reason and what was recognized.",
        create: || Box::new(crate::egraph::EgraphPass::default()),
    },
];

pub fn pass_info(name: &str) -> Option<&'static PassInfo> {
    PASSES.iter().find(|p| p.name == name)
}

struct Verify;

impl Pass for Verify {
    fn name(&self) -> &'static str {
        "verify"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        edgec_ir::verify::verify_module(module)
            .map_err(|error| PassError::Verify { pass: "verify".into(), error })
    }
}

struct Print;

impl Pass for Print {
    fn name(&self) -> &'static str {
        "print"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        eprint!("{}", edgec_ir::printer::print_module(module));
        Ok(())
    }
}

/// The pass reference in markdown (`docs/passes.md` is this text; a test keeps them equal).
pub fn passes_markdown() -> String {
    let mut out = String::from(
        "# Passes\n\nGenerated from `passes/src/registry.rs` (`EDGEC_BLESS=1 cargo test -p edgec-passes` \
         rewrites it). Run them with `edgec opt FILE.eir --passes=a,b,c`.\n\n| pass | what it does |\n|---|---|\n",
    );
    for p in PASSES {
        out.push_str(&format!("| `{}` | {} |\n", p.name, p.summary));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_passes_md_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/passes.md");
        let want = super::passes_markdown();
        if std::env::var("EDGEC_BLESS").is_ok_and(|v| v == "1") {
            std::fs::write(&path, &want).expect("write docs/passes.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(have, want, "docs/passes.md is stale; rerun with EDGEC_BLESS=1");
    }
}
