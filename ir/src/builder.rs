//! Building ops with their result types inferred from the declaration's shape rule.

use crate::attr::{Attr, Attrs};
use crate::entity::{Block, Op, Value};
use crate::error::IrError;
use crate::module::{Function, Loc};
use crate::ops::{InferCtx, OpKind};
use crate::tensor::{ConstTensor, Tensor};
use crate::types::TensorType;
use crate::verify::constant_value;

/// Appends ops to one block of a function, inferring result types.
pub struct Builder<'f> {
    pub func: &'f mut Function,
    pub block: Block,
}

impl<'f> Builder<'f> {
    /// A builder appending to the function's body.
    pub fn new(func: &'f mut Function) -> Self {
        let block = func.body;
        Builder { func, block }
    }

    /// Infers the result types `kind` would have on these operands.
    pub fn infer(
        &self,
        kind: OpKind,
        operands: &[Value],
        attrs: &Attrs,
        num_results: usize,
    ) -> Result<Vec<TensorType>, String> {
        let f = &*self.func;
        let types: Vec<TensorType> = operands.iter().map(|&v| f.values[v].ty.clone()).collect();
        let consts: Vec<Option<Tensor>> = operands.iter().map(|&v| constant_value(f, v)).collect();
        let ctx = InferCtx { attrs, operands: &types, consts: &consts, num_results };
        (kind.def().infer)(&ctx)
    }

    /// Appends an op with `num_results` results whose types come from the shape rule.
    pub fn op_n(
        &mut self,
        kind: OpKind,
        operands: Vec<Value>,
        attrs: Attrs,
        loc: Loc,
        num_results: usize,
    ) -> Result<Op, IrError> {
        let types = self.infer(kind, &operands, &attrs, num_results).map_err(|message| IrError::Op {
            op: None,
            op_name: kind.name().into(),
            loc: loc.clone(),
            message,
        })?;
        Ok(self.op_typed(kind, operands, types, attrs, loc))
    }

    /// Appends a single-result op and returns its result.
    pub fn op(
        &mut self,
        kind: OpKind,
        operands: Vec<Value>,
        attrs: Attrs,
        loc: Loc,
    ) -> Result<Value, IrError> {
        let op = self.op_n(kind, operands, attrs, loc, 1)?;
        Ok(self.func.ops[op].results[0])
    }

    /// Appends an op with explicitly given result types (no inference).
    pub fn op_typed(
        &mut self,
        kind: OpKind,
        operands: Vec<Value>,
        result_types: Vec<TensorType>,
        attrs: Attrs,
        loc: Loc,
    ) -> Op {
        let op = self.func.create_op(kind, operands, result_types, attrs, loc);
        self.func.append_op(self.block, op);
        op
    }

    /// Appends a `builtin.constant`.
    pub fn constant(&mut self, value: ConstTensor, loc: Loc) -> Value {
        let ty = value.ty.clone();
        let op = self.op_typed(
            OpKind::Constant,
            vec![],
            vec![ty],
            Attrs::new().with("value", Attr::Tensor(value)),
            loc,
        );
        self.func.ops[op].results[0]
    }

    /// Appends `func.return` (or `builtin.yield` in a region block).
    pub fn ret(&mut self, values: Vec<Value>) -> Op {
        let kind = if self.block == self.func.body { OpKind::Return } else { OpKind::Yield };
        self.op_typed(kind, values, vec![], Attrs::new(), Loc::Unknown)
    }
}
