//! An example of edgec's Cargo integration (docs/user-guide.md): `build.rs` compiles the zoo's
//! `vae_mlp` for the crate's target, and this `no_std` crate includes the generated module
//! `vae` (`vae::Inputs`, `vae::Outputs`, `vae::Model`, `vae::take`). The test in `tests/`
//! checks it against the interpreter.
#![no_std]

include!(concat!(env!("OUT_DIR"), "/vae.rs"));
