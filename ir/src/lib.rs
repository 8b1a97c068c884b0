//! `edgec-ir`: the typed, MLIR-style SSA IR that every part of edgec shares.
//!
//! ## Data model
//! - [`types`]: ranked tensor types with static, symbolic (`{seq}`) and unknown (`?`) dims over
//!   scalar or quantized element types.
//! - [`module`]: a [`Module`] holds [`Function`]s; a function owns arenas of values, ops and
//!   blocks addressed by typed `u32` handles ([`entity`]). Its body is one block ending in
//!   `func.return`; ops may hold regions (lists of blocks) for subgraphs.
//! - [`ops`]: every op is declared once as an [`ops::OpDef`]: name, summary, signature,
//!   attributes, traits, shape rule and reference evaluation. Everything else (verifier,
//!   printer, parser, interpreter, builder) reads that declaration.
//! - [`tensor`]: interpreter values ([`Tensor`]) and constant data ([`ConstTensor`], raw bytes
//!   that can point into a memory-mapped file).
//!
//! ## Stages
//! [`printer`] and [`parser`] give the text form (round-trips exactly); [`verify`] checks the
//! invariants listed in its docs; [`interp`] is the reference interpreter.

pub mod attr;
pub mod builder;
pub mod entity;
pub mod error;
pub mod interp;
pub mod module;
pub mod ops;
pub mod parser;
pub mod printer;
pub mod tensor;
pub mod types;
pub mod verify;

pub use attr::{Attr, AttrKind, Attrs};
pub use builder::Builder;
pub use entity::{Block, Op, Value};
pub use error::IrError;
pub use module::{Function, Loc, Module};
pub use ops::OpKind;
pub use tensor::{ConstTensor, Tensor};
pub use types::{Dim, ElemType, QuantParams, QuantType, ScalarType, TensorType};
