//! Every backend, declared once: name, summary, cargo feature, the `--target` names it answers,
//! and its constructor. The table itself has no heavy dependency: a backend compiled out of
//! this build keeps its entry (so its targets still parse and `edgec targets` lists them) with no
//! constructor, and asking for one of its targets is [`TargetError::Disabled`], never a link
//! error. Adding a backend is one module behind its feature and one entry here
//! (`docs/add-a-backend.md`).

use crate::backend::{Backend, BackendError};
use crate::target::{Target, TargetError};
use std::str::FromStr;
use target_lexicon::{Architecture, Triple};

/// Makes a backend for a target its entry parsed.
pub type CreateFn = fn(&Target) -> Result<Box<dyn Backend>, BackendError>;

/// A backend's registry entry.
pub struct BackendInfo {
    /// The name `--target` resolution and reports use (`llvm`).
    pub name: &'static str,
    pub summary: &'static str,
    /// The cargo feature that builds it; `None` for backends that are always built.
    pub feature: Option<&'static str>,
    /// `--target` names to list in `edgec targets`, with what each is.
    pub targets: &'static [(&'static str, &'static str)],
    /// Claims a `--target` string: `None` when it is not one of this backend's.
    pub parse: fn(&str) -> Option<Result<Target, TargetError>>,
    /// The constructor; `None` when this build was made without [`BackendInfo::feature`].
    pub create: Option<CreateFn>,
}

impl BackendInfo {
    /// Whether this build can compile for the backend's targets.
    pub fn available(&self) -> bool {
        self.create.is_some()
    }
}

/// `Some(constructor)` when the crate is built with `feature`, else `None`.
macro_rules! built_with {
    ($feature:literal, $create:path) => {{
        #[cfg(feature = $feature)]
        let create: Option<CreateFn> = Some($create);
        #[cfg(not(feature = $feature))]
        let create: Option<CreateFn> = None;
        create
    }};
}

/// The backends, in the order `--target` resolution asks them.
pub static BACKENDS: &[BackendInfo] = &[
    BackendInfo {
        name: "interp",
        summary:
            "The reference interpreter: runs the optimized graph IR with every op's reference semantics \
                  (the numerical oracle); compiles nothing.",
        feature: None,
        targets: &[("interp", "the reference interpreter")],
        parse: |s| (s == "interp").then(|| Ok(Target::interp())),
        create: Some(crate::interp::create),
    },
    BackendInfo {
        name: "llvm",
        summary: "Machine code through LLVM 22 (inkwell): an object file, a C header and the C runtime, for \
                  Linux application processors and bare-metal Cortex-M.",
        feature: Some("llvm"),
        targets: &[
            ("host", "this machine (x86-64 Linux), tuned for its CPU"),
            ("x86_64-unknown-linux-gnu", "x86-64 Linux (x86-64-v3 unless --cpu)"),
            (
                "aarch64-unknown-linux-gnu",
                "Cortex-A / AArch64 Linux (NEON; --cpu cortex-a55, cortex-a76, ...)",
            ),
            ("riscv64gc-unknown-linux-gnu", "RISC-V 64 Linux"),
            ("cortex-m7", "Cortex-M7 (thumbv7em-none-eabihf, fpv5-d16), bare metal"),
            ("cortex-m4", "Cortex-M4 (thumbv7em-none-eabihf, fpv4-sp-d16), bare metal"),
        ],
        parse: parse_machine_target,
        create: built_with!("llvm", crate::llvm::backend::create),
    },
    BackendInfo {
        name: "hls",
        summary: "A Vitis HLS C++ project (top function, kernels, weight headers, testbench, build_prj.tcl) \
                  for FPGAs; runs here as its C simulation built with g++.",
        feature: Some("hls"),
        targets: &[("fpga-hls", "FPGA through Vitis HLS C++ (Zynq UltraScale+ at 5 ns by default)")],
        parse: |s| (s == "fpga-hls").then(|| Ok(hls_target())),
        create: built_with!("hls", crate::hls::create),
    },
];

/// `fpga-hls`: plain data, so it parses without the `hls` feature.
fn hls_target() -> Target {
    Target { backend: "hls", name: "fpga-hls".into(), triple: None, cpu: None, features: None }
}

/// Machine-target aliases: name → (triple, cpu, features).
const MACHINE_ALIASES: &[(&str, &str, &str, &str)] = &[
    ("cortex-m7", "thumbv7em-none-eabihf", "cortex-m7", "+fp-armv8d16"),
    ("cortex-m4", "thumbv7em-none-eabihf", "cortex-m4", "+vfp4d16sp"),
];

/// `host`, an alias, or a triple of an architecture the LLVM backend generates code for.
fn parse_machine_target(s: &str) -> Option<Result<Target, TargetError>> {
    let machine = |name: &str, triple: Triple, cpu: Option<&str>, features: Option<&str>| Target {
        backend: "llvm",
        name: name.to_string(),
        triple: Some(triple),
        cpu: cpu.map(str::to_string),
        features: features.map(str::to_string),
    };
    if s == "host" {
        return Some(Ok(machine("host", Triple::host(), Some("native"), None)));
    }
    if let Some(&(alias, triple, cpu, features)) = MACHINE_ALIASES.iter().find(|a| a.0 == s) {
        let triple = Triple::from_str(triple).expect("the aliases' triples parse");
        return Some(Ok(machine(alias, triple, Some(cpu), Some(features))));
    }
    let triple = Triple::from_str(s).ok()?;
    let supported = matches!(
        triple.architecture,
        Architecture::X86_64 | Architecture::Aarch64(_) | Architecture::Riscv64(_) | Architecture::Arm(_)
    );
    if !supported {
        return Some(Err(TargetError::Unsupported {
            target: s.into(),
            reason: format!(
                "architecture {} has no backend (x86_64, aarch64, riscv64 and Arm Cortex-M do)",
                triple.architecture
            ),
        }));
    }
    Some(Ok(machine(&triple.to_string(), triple, None, None)))
}

/// Resolves a `--target` through [`BACKENDS`]: the first backend that claims the name parses it.
/// Parsing does not need the backend to be built; [`lookup`] does.
pub fn parse_target(s: &str) -> Result<Target, TargetError> {
    for b in BACKENDS {
        if let Some(t) = (b.parse)(s) {
            return t;
        }
    }
    let names: Vec<&str> = BACKENDS.iter().flat_map(|b| b.targets.iter().map(|t| t.0)).collect();
    Err(TargetError::Unknown {
        name: s.into(),
        expected: format!("{}, or another target triple", names.join(", ")),
    })
}

impl Target {
    /// Parses a `--target` through the registry ([`parse_target`]).
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        parse_target(s)
    }
}

/// The registry entry of a backend by name.
pub fn backend_info(name: &str) -> Option<&'static BackendInfo> {
    BACKENDS.iter().find(|b| b.name == name)
}

/// Makes the backend for a parsed target: [`TargetError::Disabled`] when its feature is not in
/// this build (Cranelift's `LookupError::SupportDisabled`).
pub fn lookup(target: &Target) -> Result<Box<dyn Backend>, BackendError> {
    let info = backend_info(target.backend)
        .ok_or_else(|| BackendError::internal(None, format!("no backend named `{}`", target.backend)))?;
    match info.create {
        Some(create) => create(target),
        None => Err(BackendError::Target(TargetError::Disabled {
            target: target.to_string(),
            backend: info.name,
            feature: info.feature.unwrap_or(info.name),
        })),
    }
}

/// The table `edgec targets` prints: every target of every backend, its backend and feature,
/// and whether this build has it.
pub fn targets_text() -> String {
    let mut rows = vec![[
        "target".to_string(),
        "backend".into(),
        "feature".into(),
        "in this build".into(),
        "what".into(),
    ]];
    for b in BACKENDS {
        for (name, what) in b.targets {
            rows.push([
                name.to_string(),
                b.name.into(),
                b.feature.unwrap_or("-").into(),
                if b.available() { "yes" } else { "no" }.into(),
                what.to_string(),
            ]);
        }
    }
    let widths: Vec<usize> = (0..4).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        for c in 0..4 {
            out += &format!("{:w$}  ", r[c], w = widths[c]);
        }
        out += &r[4];
        out += "\n";
    }
    out += "\nAny other triple of these architectures also works with the backend that lists one.\n";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert!(parse_target("interp").unwrap().is_interp());
        let m7 = parse_target("cortex-m7").unwrap();
        assert_eq!(
            (m7.backend, m7.name.as_str(), m7.cpu.as_deref()),
            ("llvm", "cortex-m7", Some("cortex-m7"))
        );
        assert!(parse_target("aarch64-unknown-linux-gnu").is_ok());
        assert!(parse_target("riscv64gc-unknown-linux-gnu").is_ok());
        assert!(matches!(parse_target("nonsense-target"), Err(TargetError::Unknown { .. })));
        assert!(matches!(parse_target("wasm32-unknown-unknown"), Err(TargetError::Unsupported { .. })));
    }

    #[test]
    fn every_listed_target_parses_to_its_backend() {
        for b in BACKENDS {
            for (name, _) in b.targets {
                assert_eq!(parse_target(name).unwrap().backend, b.name, "{name}");
            }
        }
    }

    #[test]
    fn a_compiled_out_backend_is_a_clear_error() {
        let t = parse_target("cortex-m7").unwrap();
        match lookup(&t) {
            Ok(b) => assert!(cfg!(feature = "llvm") && b.name() == "llvm"),
            Err(e) => {
                assert!(!cfg!(feature = "llvm"));
                assert!(e.is_user_error());
                assert_eq!(
                    e.to_string(),
                    "support for target `cortex-m7` is disabled in this build (cargo feature `llvm` of the `llvm` backend)"
                );
            }
        }
    }
}
