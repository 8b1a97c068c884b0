//! Index arithmetic and structured control flow for the hand-written LLVM routines (the f32 GEMM
//! in `gemm.rs`, the int8 GEMM in `qgemm.rs`). Each routine has its own emitter struct with its
//! plan and types; implementing [`IrHelpers`] (four accessors) gives it these methods, so both
//! build their loops and address arithmetic the same way.
//!
//! Index values are unsigned and never wrap (they are offsets into buffers of known size), so the
//! arithmetic carries `nuw`; helpers taking a constant skip the instruction when it is the
//! identity, which keeps the emitted IR small before optimization.

use inkwell::builder::{Builder, BuilderError};
use inkwell::context::Context;
use inkwell::types::IntType;
use inkwell::values::{FunctionValue, IntValue};
use inkwell::IntPredicate;

pub(crate) type R<T> = Result<T, BuilderError>;

/// The shared helpers; an emitter provides its context, builder, function and index type.
pub(crate) trait IrHelpers<'ctx> {
    fn context(&self) -> &'ctx Context;
    fn builder(&self) -> &Builder<'ctx>;
    /// The function being emitted (loops append their blocks to it).
    fn function(&self) -> FunctionValue<'ctx>;
    /// The integer type of indices (`i64`).
    fn index_type(&self) -> IntType<'ctx>;

    /// The index constant `v`.
    fn c(&self, v: usize) -> IntValue<'ctx> {
        self.index_type().const_int(v as u64, false)
    }
    fn add(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.builder().build_int_nuw_add(a, b, "")
    }
    fn addc(&self, a: IntValue<'ctx>, b: usize) -> R<IntValue<'ctx>> {
        if b == 0 {
            return Ok(a);
        }
        self.add(a, self.c(b))
    }
    fn mul(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.builder().build_int_nuw_mul(a, b, "")
    }
    fn mulc(&self, a: IntValue<'ctx>, b: usize) -> R<IntValue<'ctx>> {
        if b == 1 {
            return Ok(a);
        }
        self.builder().build_int_nuw_mul(a, self.c(b), "")
    }
    fn sub(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        self.builder().build_int_nuw_sub(a, b, "")
    }
    fn umin(&self, a: IntValue<'ctx>, b: IntValue<'ctx>) -> R<IntValue<'ctx>> {
        let lt = self.builder().build_int_compare(IntPredicate::ULT, a, b, "")?;
        Ok(self.builder().build_select(lt, a, b, "")?.into_int_value())
    }
    fn udivc(&self, a: IntValue<'ctx>, b: usize) -> R<IntValue<'ctx>> {
        if b == 1 {
            return Ok(a);
        }
        self.builder().build_int_unsigned_div(a, self.c(b), "")
    }

    /// `for (i = start; i < end; i += step) body(i)`; `end` may be a run-time value. The blocks
    /// are named `NAME.head`, `NAME.body`, `NAME.exit` and the index `NAME`.
    fn for_loop(
        &self,
        name: &str,
        start: IntValue<'ctx>,
        end: IntValue<'ctx>,
        step: usize,
        mut body: impl FnMut(IntValue<'ctx>) -> R<()>,
    ) -> R<()> {
        let (ctx, b, func) = (self.context(), self.builder(), self.function());
        let pre = b.get_insert_block().unwrap();
        let header = ctx.append_basic_block(func, &format!("{name}.head"));
        let body_bb = ctx.append_basic_block(func, &format!("{name}.body"));
        let exit = ctx.append_basic_block(func, &format!("{name}.exit"));
        b.build_unconditional_branch(header)?;
        b.position_at_end(header);
        let phi = b.build_phi(self.index_type(), name)?;
        phi.add_incoming(&[(&start, pre)]);
        let i = phi.as_basic_value().into_int_value();
        let cond = b.build_int_compare(IntPredicate::ULT, i, end, "")?;
        b.build_conditional_branch(cond, body_bb, exit)?;
        b.position_at_end(body_bb);
        body(i)?;
        let next = self.addc(i, step)?;
        let latch = b.get_insert_block().unwrap();
        b.build_unconditional_branch(header)?;
        phi.add_incoming(&[(&next, latch)]);
        b.position_at_end(exit);
        Ok(())
    }

    /// `if cond { then() } else { els() }`.
    fn if_else(
        &self,
        cond: IntValue<'ctx>,
        then: impl FnOnce() -> R<()>,
        els: impl FnOnce() -> R<()>,
    ) -> R<()> {
        let (ctx, b, func) = (self.context(), self.builder(), self.function());
        let t = ctx.append_basic_block(func, "then");
        let f = ctx.append_basic_block(func, "else");
        let j = ctx.append_basic_block(func, "join");
        b.build_conditional_branch(cond, t, f)?;
        b.position_at_end(t);
        then()?;
        b.build_unconditional_branch(j)?;
        b.position_at_end(f);
        els()?;
        b.build_unconditional_branch(j)?;
        b.position_at_end(j);
        Ok(())
    }
}
