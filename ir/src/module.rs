//! Module → functions → blocks → ops, stored in per-function arenas.
//!
//! A [`Function`] owns three arenas (values, ops, blocks). Its body is one block whose arguments
//! are the function's parameters and whose last op is `func.return`. Ops that hold subgraphs own
//! regions, each a list of blocks in the same function arenas, so handles stay valid across the
//! whole function.

use crate::attr::{Attr, Attrs};
use crate::entity::{Arena, Block, Op, Value};
use crate::ops::OpKind;
use crate::types::TensorType;
use std::fmt;

/// Where an op came from: the ONNX node name, or several of them after fusion.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Loc {
    #[default]
    Unknown,
    Name(String),
    Fused(Vec<String>),
}

impl Loc {
    pub fn name(s: impl Into<String>) -> Loc {
        Loc::Name(s.into())
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loc::Unknown => f.write_str("loc(unknown)"),
            Loc::Name(n) => write!(f, "loc({})", crate::printer::quote(n)),
            Loc::Fused(ns) => {
                f.write_str("loc(fused[")?;
                for (i, n) in ns.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&crate::printer::quote(n))?;
                }
                f.write_str("])")
            }
        }
    }
}

/// How a value is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueDef {
    /// Argument `index` of `block`.
    Arg { block: Block, index: usize },
    /// Result `index` of `op`.
    Result { op: Op, index: usize },
}

#[derive(Clone, Debug)]
pub struct ValueData {
    pub ty: TensorType,
    pub def: ValueDef,
    /// A user-visible name (graph inputs keep their ONNX names); printed instead of a number.
    pub name: Option<String>,
}

#[derive(Clone, Debug)]
pub struct OpData {
    pub kind: OpKind,
    pub operands: Vec<Value>,
    pub results: Vec<Value>,
    pub attrs: Attrs,
    pub regions: Vec<Region>,
    pub loc: Loc,
}

/// A region: the blocks an op holds (a subgraph). Most regions have one block.
#[derive(Clone, Debug, Default)]
pub struct Region {
    pub blocks: Vec<Block>,
}

#[derive(Clone, Debug, Default)]
pub struct BlockData {
    pub args: Vec<Value>,
    pub ops: Vec<Op>,
}

/// One function: the unit that a backend compiles into an entry point.
#[derive(Clone, Debug)]
pub struct Function {
    pub name: String,
    pub values: Arena<Value, ValueData>,
    pub ops: Arena<Op, OpData>,
    pub blocks: Arena<Block, BlockData>,
    pub body: Block,
    /// Names of the results (ONNX graph output names), one per `func.return` operand.
    pub result_names: Vec<String>,
}

impl Function {
    /// An empty function with an entry block and no parameters.
    pub fn new(name: impl Into<String>) -> Function {
        let mut blocks = Arena::new();
        let body = blocks.push(BlockData::default());
        Function {
            name: name.into(),
            values: Arena::new(),
            ops: Arena::new(),
            blocks,
            body,
            result_names: Vec::new(),
        }
    }

    pub fn params(&self) -> &[Value] {
        &self.blocks[self.body].args
    }

    pub fn value_type(&self, v: Value) -> &TensorType {
        &self.values[v].ty
    }

    /// The `func.return` op that ends the body, if present.
    pub fn return_op(&self) -> Option<Op> {
        let last = *self.blocks[self.body].ops.last()?;
        (self.ops[last].kind == OpKind::Return).then_some(last)
    }

    /// The values the function returns.
    pub fn results(&self) -> &[Value] {
        match self.return_op() {
            Some(op) => &self.ops[op].operands,
            None => &[],
        }
    }

    /// Types of the returned values.
    pub fn result_types(&self) -> Vec<TensorType> {
        self.results().iter().map(|&v| self.values[v].ty.clone()).collect()
    }

    /// Adds an argument to `block`.
    pub fn add_block_arg(&mut self, block: Block, ty: TensorType, name: Option<String>) -> Value {
        let index = self.blocks[block].args.len();
        let v = self.values.push(ValueData { ty, def: ValueDef::Arg { block, index }, name });
        self.blocks[block].args.push(v);
        v
    }

    /// Adds a parameter (an argument of the body block).
    pub fn add_param(&mut self, ty: TensorType, name: Option<String>) -> Value {
        self.add_block_arg(self.body, ty, name)
    }

    /// Creates an op (not yet placed in a block) with results of the given types.
    pub fn create_op(
        &mut self,
        kind: OpKind,
        operands: Vec<Value>,
        result_types: Vec<TensorType>,
        attrs: Attrs,
        loc: Loc,
    ) -> Op {
        let op =
            self.ops.push(OpData { kind, operands, results: Vec::new(), attrs, regions: Vec::new(), loc });
        let results = result_types
            .into_iter()
            .enumerate()
            .map(|(index, ty)| {
                self.values.push(ValueData { ty, def: ValueDef::Result { op, index }, name: None })
            })
            .collect();
        self.ops[op].results = results;
        op
    }

    /// Appends `op` at the end of `block`.
    pub fn append_op(&mut self, block: Block, op: Op) {
        self.blocks[block].ops.push(op);
    }

    /// Ops of the body block in order (not descending into regions).
    pub fn body_ops(&self) -> &[Op] {
        &self.blocks[self.body].ops
    }

    /// Number of ops in the body, excluding constants and the return: the "kernel" count of a
    /// graph-level function.
    pub fn compute_op_count(&self) -> usize {
        self.body_ops()
            .iter()
            .filter(|&&o| !matches!(self.ops[o].kind, OpKind::Constant | OpKind::Return))
            .count()
    }

    /// Replaces every use of `from` by `to` in every op of the function.
    pub fn replace_all_uses(&mut self, from: Value, to: Value) {
        self.replace_uses(&[(from, to)]);
    }

    /// Does what `replace_all_uses` for each pair in order does (a later pair also redirects
    /// the uses an earlier one created), in one sweep over the ops: passes that replace many
    /// values stay linear in the function's size.
    pub fn replace_uses(&mut self, pairs: &[(Value, Value)]) {
        // Compose the replacements from the last one back: where `from` ends up is where the
        // later pairs send `to`.
        let mut dest: std::collections::HashMap<Value, Value> = std::collections::HashMap::new();
        for &(from, to) in pairs.iter().rev() {
            let end = dest.get(&to).copied().unwrap_or(to);
            dest.insert(from, end);
        }
        if dest.is_empty() {
            return;
        }
        for op in self.ops.keys().collect::<Vec<_>>() {
            for o in self.ops[op].operands.iter_mut() {
                if let Some(&to) = dest.get(o) {
                    *o = to;
                }
            }
        }
    }

    /// Total bytes of constant data held by `builtin.constant` ops.
    pub fn constant_bytes(&self) -> u64 {
        self.body_ops()
            .iter()
            .filter_map(|&o| match self.ops[o].attrs.get("value") {
                Some(Attr::Tensor(t)) if self.ops[o].kind == OpKind::Constant => Some(t.bytes.len() as u64),
                _ => None,
            })
            .sum()
    }
}

/// A compilation unit: a list of functions; the first is the entry point.
#[derive(Clone, Debug, Default)]
pub struct Module {
    pub functions: Vec<Function>,
}

impl Module {
    pub fn new() -> Module {
        Module::default()
    }

    /// The entry function (the first).
    pub fn main(&self) -> Option<&Function> {
        self.functions.first()
    }

    pub fn main_mut(&mut self) -> Option<&mut Function> {
        self.functions.first_mut()
    }
}
