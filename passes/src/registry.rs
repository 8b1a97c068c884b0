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
        summary: "Checks every IR invariant (see `edgec_ir::verify`); fails the pipeline on the first violation.",
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
        edgec_ir::verify::verify_module(module).map_err(|error| PassError::Verify { pass: "verify".into(), error })
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
