//! What `--target` names, as plain data: which backend compiles for it and, for a machine, the
//! triple, CPU and features. Parsing needs no backend, so a build without a backend's cargo
//! feature still recognizes its targets and can say that support for them is disabled
//! ([`crate::registry`]).

use std::fmt;
use target_lexicon::Triple;

/// A resolved `--target`.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// The registry name of the backend that compiles for this target (`interp`, `llvm`).
    pub backend: &'static str,
    /// How the target prints: the alias the user gave (`host`, `cortex-m7`) or the triple.
    pub name: String,
    /// The machine code runs on, for backends that generate machine code.
    pub triple: Option<Triple>,
    /// CPU to tune for; the backend's default for the triple when `None`.
    pub cpu: Option<String>,
    /// Target features (`+a,-b`); the backend's default for the triple when `None`.
    pub features: Option<String>,
}

/// Why a `--target` (or a target's backend) is not available.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("unknown target `{name}` (expected {expected}; `edgec targets` lists them)")]
    Unknown { name: String, expected: String },
    #[error("target `{target}` is not supported: {reason}")]
    Unsupported { target: String, reason: String },
    /// The target's backend exists but this build was made without its cargo feature.
    #[error("support for target `{target}` is disabled in this build (cargo feature `{feature}` of the `{backend}` backend)")]
    Disabled { target: String, backend: &'static str, feature: &'static str },
}

impl Target {
    /// The reference interpreter.
    pub fn interp() -> Target {
        Target { backend: "interp", name: "interp".into(), triple: None, cpu: None, features: None }
    }

    // `Target::parse` is in `registry.rs`: parsing asks the backends' entries.

    /// Whether this is the reference interpreter.
    pub fn is_interp(&self) -> bool {
        self.backend == "interp"
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}
