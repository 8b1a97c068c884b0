//! `edgec-passes`: the pass manager and the IR transformations.
//!
//! A pass is declared once in [`registry::PASSES`] with its name, summary and constructor; a
//! pipeline is a comma-separated list of names (`--passes=dce,verify`). The [`PassManager`]
//! runs the verifier after every pass in debug and test builds (and on request in release
//! builds), can print the IR after each pass, and times each pass.

pub mod canon;
pub mod dce;
pub mod egraph;
pub mod fuse;
pub mod layout;
pub mod manager;
pub mod pass;
pub mod quant;
pub mod registry;
pub mod target;

pub use manager::{
    parse_pipeline, Pass, PassArgs, PassContext, PassError, PassManager, PassTiming, PrintAfter,
};
pub use registry::{pass_info, PassInfo, PASSES};
pub use target::{CostWeights, GemmPanel, TargetInfo};
