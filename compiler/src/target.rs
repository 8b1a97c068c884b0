//! The target registry: what `--target` accepts.
//!
//! `interp` is the reference interpreter. Machine targets are parsed with `target-lexicon`;
//! aliases name common edge parts. Code generation for machine targets lives behind the `llvm`
//! cargo feature; asking for such a target in a build without it is a clear error, never a link
//! failure.

use edgec_passes::TargetInfo;
use std::fmt;
use std::str::FromStr;
use target_lexicon::{Architecture, Triple};

/// A resolved `--target`.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// The reference interpreter.
    Interp,
    /// A machine target: triple plus CPU and feature choices.
    Machine { triple: Triple, cpu: Option<String>, features: Option<String>, alias: Option<&'static str> },
}

/// Aliases: name → (triple, cpu, features).
const ALIASES: &[(&str, &str, &str, &str)] = &[
    ("cortex-m7", "thumbv7em-none-eabihf", "cortex-m7", "+fp-armv8d16"),
    ("cortex-m4", "thumbv7em-none-eabihf", "cortex-m4", "+vfp4d16sp"),
];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error("unknown target `{0}` (expected interp, host, a target triple such as aarch64-unknown-linux-gnu, or an alias: cortex-m7, cortex-m4)")]
    Unknown(String),
    #[error("target `{target}` is not supported: {reason}")]
    Unsupported { target: String, reason: String },
}

impl Target {
    pub fn parse(s: &str) -> Result<Target, TargetError> {
        if s == "interp" {
            return Ok(Target::Interp);
        }
        if s == "host" {
            return Ok(Target::Machine {
                triple: Triple::host(),
                cpu: Some("native".into()),
                features: None,
                alias: Some("host"),
            });
        }
        if let Some(&(alias, triple, cpu, features)) = ALIASES.iter().find(|a| a.0 == s) {
            let triple = Triple::from_str(triple).map_err(|_| TargetError::Unknown(s.into()))?;
            return Ok(Target::Machine {
                triple,
                cpu: Some(cpu.into()),
                features: Some(features.into()),
                alias: Some(alias),
            });
        }
        let triple = Triple::from_str(s).map_err(|_| TargetError::Unknown(s.into()))?;
        let supported = matches!(
            triple.architecture,
            Architecture::X86_64 | Architecture::Aarch64(_) | Architecture::Riscv64(_) | Architecture::Arm(_)
        );
        if !supported {
            return Err(TargetError::Unsupported {
                target: s.into(),
                reason: format!(
                    "architecture {} has no backend (x86_64, aarch64, riscv64 and Arm Cortex-M do)",
                    triple.architecture
                ),
            });
        }
        Ok(Target::Machine { triple, cpu: None, features: None, alias: None })
    }

    /// Fails unless this build can generate code for the target.
    pub fn check_available(&self) -> Result<(), TargetError> {
        match self {
            Target::Interp => Ok(()),
            Target::Machine { .. } if cfg!(feature = "llvm") => Ok(()),
            Target::Machine { .. } => Err(TargetError::Unsupported {
                target: self.to_string(),
                reason: "this edgec was built without the LLVM backend (cargo feature `llvm`)".into(),
            }),
        }
    }
}

impl Target {
    /// What the passes know about this target ([`TargetInfo`]): vector width and FMA from the
    /// backend's own ISA detection (the same the GEMM tiles follow), a microcontroller model
    /// for bare-metal Arm, the backend's GEMM panel width. The interpreter gets
    /// [`TargetInfo::generic`].
    pub fn pass_target(&self) -> TargetInfo {
        let Target::Machine { triple, .. } = self else { return TargetInfo::generic() };
        let name = self.to_string();
        #[cfg(feature = "llvm")]
        if let Ok((spec, _)) = crate::machine::machine_of(self) {
            if let Ok(isa) = spec.isa() {
                let mut info = if spec.bare_metal {
                    TargetInfo::microcontroller(&name, isa.has_fma)
                } else {
                    TargetInfo::application_core(&name, isa.vector_bits / 8, isa.has_fma)
                };
                let (lanes, vectors) = edgec_backends::llvm::codegen::gemm_panel(isa);
                info.gemm_panel =
                    Some(edgec_passes::GemmPanel { lanes: lanes as u32, max_vectors: vectors as u32 });
                return info;
            }
        }
        // Without the backend: the architectures' defaults (x86-64-v3 is AVX2).
        match triple.architecture {
            Architecture::Arm(_) => TargetInfo::microcontroller(&name, true),
            Architecture::X86_64 => TargetInfo::application_core(&name, 32, true),
            Architecture::Aarch64(_) => TargetInfo::application_core(&name, 16, true),
            _ => TargetInfo::application_core(&name, 4, true),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Interp => f.write_str("interp"),
            Target::Machine { alias: Some(a), .. } => f.write_str(a),
            Target::Machine { triple, .. } => write!(f, "{triple}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(Target::parse("interp").unwrap(), Target::Interp);
        assert!(matches!(
            Target::parse("cortex-m7").unwrap(),
            Target::Machine { alias: Some("cortex-m7"), .. }
        ));
        assert!(Target::parse("aarch64-unknown-linux-gnu").is_ok());
        assert!(Target::parse("riscv64gc-unknown-linux-gnu").is_ok());
        assert!(matches!(Target::parse("nonsense-target"), Err(TargetError::Unknown(_))));
        assert!(matches!(Target::parse("wasm32-unknown-unknown"), Err(TargetError::Unsupported { .. })));
    }

    #[test]
    fn pass_targets_differ_by_machine() {
        let m7 = Target::parse("cortex-m7").unwrap().pass_target();
        assert_eq!((m7.name.as_str(), m7.vector_bytes, m7.data_cache_bytes), ("cortex-m7", 4, None));
        let x86 = Target::parse("x86_64-unknown-linux-gnu").unwrap().pass_target();
        assert_eq!(x86.vector_bytes, 32);
        assert!(x86.weights().flop < m7.weights().flop);
        assert_eq!(Target::Interp.pass_target(), TargetInfo::generic());
        #[cfg(feature = "llvm")]
        assert_eq!((m7.gemm_panel_width(1000), x86.gemm_panel_width(1000)), (Some(4), Some(16)));
    }
}
