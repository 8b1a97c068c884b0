//! The int8 table lookup `y[i] = table[x[i] + 128]` (`q.lookup`, [`crate::kir::Stmt::Lookup`]),
//! emitted as LLVM IR.
//!
//! Element by element it is two dependent byte loads, which LLVM's vectorizer turns into
//! extract/insert sequences no faster than scalar code. So the routine looks 64 bytes up at once
//! with byte shuffles where the target has them ([`LutIsa`]), and runs a scalar loop elsewhere
//! and for the last `n mod 64` elements:
//! - AVX-512 VBMI: the 256-byte table lives in four zmm registers; `vpermi2b` looks 64 bytes up in
//!   128 table entries at once (index bits 0–6), so two of them cover both halves and bit 7
//!   selects between the results.
//! - AVX-512 BW without VBMI (Skylake-X, Cascade Lake): `vpshufb` looks up in
//!   16-entry tables (the index's low nibble, within each 128-bit lane); sixteen of them, each
//!   kept where the index's high nibble selects it.

use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::builder::BuilderError;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::targets::TargetMachine;
use inkwell::types::{IntType, VectorType};
use inkwell::values::{BasicValue, FunctionValue, IntValue, VectorValue};
use inkwell::{AddressSpace, IntPredicate};

/// How the lookup routine finds 64 bytes at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LutIsa {
    /// AVX-512 VBMI `vpermi2b`.
    Vbmi,
    /// AVX-512 BW `vpshufb` on zmm.
    Pshufb,
    /// Byte by byte.
    Scalar,
}

impl LutIsa {
    /// Inspects the target machine's triple, CPU and features.
    pub fn for_target_machine(tm: &TargetMachine) -> LutIsa {
        let (triple, cpu, features) = super::gemm::machine_parts(tm);
        Self::from_parts(&triple, &cpu, &features)
    }

    /// [`LutIsa::for_target_machine`] on plain strings (triple, CPU, `+a,-b` feature list).
    pub fn from_parts(triple: &str, cpu: &str, features: &str) -> LutIsa {
        if !triple.starts_with("x86_64") {
            return LutIsa::Scalar;
        }
        let cpu = cpu.to_ascii_lowercase();
        // Every AVX-512 CPU but the Xeon Phis has BW.
        if super::gemm::VectorIsa::from_parts(triple, &cpu, features).vector_bits != 512
            || cpu.starts_with("knl")
            || cpu.starts_with("knm")
        {
            return LutIsa::Scalar;
        }
        let vbmi_cpu = ["znver4", "znver5", "cannonlake", "tigerlake", "rocketlake"].contains(&cpu.as_str())
            || ["icelake", "sapphirerapids", "emeraldrapids", "graniterapids", "diamondrapids"]
                .iter()
                .any(|p| cpu.starts_with(p));
        let feature = |name: &str| super::gemm::target_feature(features, name);
        match (feature("avx512bw").unwrap_or(true), feature("avx512vbmi").unwrap_or(vbmi_cpu)) {
            (false, _) => LutIsa::Scalar,
            (true, true) => LutIsa::Vbmi,
            (true, false) => LutIsa::Pshufb,
        }
    }
}

/// Defines `name` as an internal function `void(ptr x, ptr table, ptr y, it n)` (`it` the
/// index type) computing `y[i] = table[x[i] + 128]` for `i < n` over i8 buffers, with the vector
/// loop `isa` selects (module docs).
pub fn emit_lookup<'ctx>(
    cx: &'ctx Context,
    module: &Module<'ctx>,
    name: &str,
    it: IntType<'ctx>,
    isa: LutIsa,
) -> Result<FunctionValue<'ctx>, BuilderError> {
    let ptr = cx.ptr_type(AddressSpace::default());
    let i8t = cx.i8_type();
    let f = module.add_function(
        name,
        cx.void_type().fn_type(&[ptr.into(), ptr.into(), ptr.into(), it.into()], false),
        Some(Linkage::Internal),
    );
    let attr = |n: &str| cx.create_enum_attribute(Attribute::get_named_enum_kind_id(n), 0);
    f.add_attribute(AttributeLoc::Function, attr("nounwind"));
    for i in 0..3 {
        f.add_attribute(AttributeLoc::Param(i), attr("noalias"));
    }
    let (x, table, y) = (
        f.get_nth_param(0).unwrap().into_pointer_value(),
        f.get_nth_param(1).unwrap().into_pointer_value(),
        f.get_nth_param(2).unwrap().into_pointer_value(),
    );
    let n = f.get_nth_param(3).unwrap().into_int_value();
    let builder = cx.create_builder();
    let b = &builder;
    let entry = cx.append_basic_block(f, "entry");
    b.position_at_end(entry);
    let zero = it.const_zero();
    let v64 = i8t.vec_type(64);
    let splat = |v: u64| VectorType::const_vector(&[i8t.const_int(v, false); 64]);
    let load64 = |p| -> Result<VectorValue<'ctx>, BuilderError> {
        let l = b.build_load(v64, p, "")?;
        l.as_instruction_value().unwrap().set_alignment(1).ok();
        Ok(l.into_vector_value())
    };
    let table_at = |off: u64| {
        // SAFETY: the table holds 256 bytes and `off` < 256.
        unsafe { b.build_in_bounds_gep(i8t, table, &[it.const_int(off, false)], "") }
    };
    let call =
        |intr: FunctionValue<'ctx>, args: &[VectorValue<'ctx>]| -> Result<VectorValue<'ctx>, BuilderError> {
            let args: Vec<_> = args.iter().map(|&v| v.into()).collect();
            Ok(b.build_call(intr, &args, "")?.try_as_basic_value().basic().unwrap().into_vector_value())
        };
    let intrinsic = |n: &str| Intrinsic::find(n).and_then(|i| i.get_declaration(module, &[])).expect(n);
    // Loop-invariant table registers, and the lookup of one vector of indices `x + 128` (as
    // unsigned bytes: `x ^ 0x80`).
    type Lookup<'a, 'ctx> = Box<dyn Fn(VectorValue<'ctx>) -> Result<VectorValue<'ctx>, BuilderError> + 'a>;
    let lookup: Option<Lookup<'_, 'ctx>> = match isa {
        LutIsa::Scalar => None,
        LutIsa::Vbmi => {
            let perm = intrinsic("llvm.x86.avx512.vpermi2var.qi.512");
            let t: Vec<VectorValue> = (0..4).map(|q| load64(table_at(q * 64)?)).collect::<Result<_, _>>()?;
            Some(Box::new(move |ix| {
                let lo = call(perm, &[t[0], ix, t[1]])?;
                let hi = call(perm, &[t[2], ix, t[3]])?;
                // Bit 7 of the index picks the table half.
                let upper = b.build_int_compare(IntPredicate::SLT, ix, v64.const_zero(), "")?;
                Ok(b.build_select(upper, hi, lo, "")?.into_vector_value())
            }))
        }
        LutIsa::Pshufb => {
            let shuf = intrinsic("llvm.x86.avx512.pshuf.b.512");
            // Sixteen-entry table t in every 128-bit lane.
            let v16 = i8t.vec_type(16);
            let lanes: Vec<_> = (0..64).map(|l| cx.i32_type().const_int(l % 16, false)).collect();
            let t: Vec<VectorValue> = (0..16)
                .map(|q| -> Result<_, BuilderError> {
                    let l = b.build_load(v16, table_at(q * 16)?, "")?;
                    l.as_instruction_value().unwrap().set_alignment(1).ok();
                    let l = l.into_vector_value();
                    b.build_shuffle_vector(l, l, VectorType::const_vector(&lanes), "")
                })
                .collect::<Result<_, _>>()?;
            Some(Box::new(move |ix| {
                // vpshufb zeroes a byte whose index has bit 7 set: look up with the low nibble.
                let lo = b.build_and(ix, splat(0x0f), "")?;
                let hi = b.build_right_shift(ix, splat(4), false, "")?;
                let mut y = call(shuf, &[t[0], lo])?;
                for (q, tq) in t.iter().enumerate().skip(1) {
                    let v = call(shuf, &[*tq, lo])?;
                    let here = b.build_int_compare(IntPredicate::EQ, hi, splat(q as u64), "")?;
                    y = b.build_select(here, v, y, "")?.into_vector_value();
                }
                Ok(y)
            }))
        }
    };
    // `for i in (start..end).step_by(step) { body(i) }` from the current block, leaving the
    // builder after the loop; returns `end`.
    let counted = |start, end, step: u64, body: &dyn Fn(IntValue<'ctx>) -> Result<(), BuilderError>| {
        let pre = b.get_insert_block().unwrap();
        let head = cx.append_basic_block(f, "head");
        let body_bb = cx.append_basic_block(f, "body");
        let exit = cx.append_basic_block(f, "exit");
        b.build_unconditional_branch(head)?;
        b.position_at_end(head);
        let i = b.build_phi(it, "i")?;
        i.add_incoming(&[(&start, pre)]);
        let iv = i.as_basic_value().into_int_value();
        let more = b.build_int_compare(IntPredicate::ULT, iv, end, "")?;
        b.build_conditional_branch(more, body_bb, exit)?;
        b.position_at_end(body_bb);
        body(iv)?;
        let next = b.build_int_nuw_add(iv, it.const_int(step, false), "")?;
        i.add_incoming(&[(&next, b.get_insert_block().unwrap())]);
        b.build_unconditional_branch(head)?;
        b.position_at_end(exit);
        Ok::<_, BuilderError>(end)
    };
    // The vector loop covers [0, n rounded down to 64), the scalar loop the rest.
    let start = match lookup {
        Some(lookup) => {
            f.add_attribute(
                AttributeLoc::Function,
                cx.create_string_attribute("min-legal-vector-width", "512"),
            );
            let vec_end = b.build_and(n, it.const_int(!63u64, false), "")?;
            counted(zero, vec_end, 64, &|i| {
                // SAFETY: i + 64 <= n, the buffers' length.
                let xp = unsafe { b.build_in_bounds_gep(i8t, x, &[i], "")? };
                let yv = lookup(b.build_xor(load64(xp)?, splat(0x80), "")?)?;
                let yp = unsafe { b.build_in_bounds_gep(i8t, y, &[i], "")? };
                b.build_store(yp, yv)?.set_alignment(1).ok();
                Ok(())
            })?
        }
        None => zero,
    };
    counted(start, n, 1, &|i| {
        // SAFETY: i < n; the index x + 128 is in 0..256.
        let xp = unsafe { b.build_in_bounds_gep(i8t, x, &[i], "")? };
        let xv = b.build_load(i8t, xp, "")?.into_int_value();
        let at = b.build_int_add(b.build_int_s_extend(xv, it, "")?, it.const_int(128, false), "")?;
        let tp = unsafe { b.build_in_bounds_gep(i8t, table, &[at], "")? };
        let v = b.build_load(i8t, tp, "")?;
        let yp = unsafe { b.build_in_bounds_gep(i8t, y, &[i], "")? };
        b.build_store(yp, v)?;
        Ok(())
    })?;
    b.build_return(None)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::LutIsa;

    #[test]
    fn isa_detection() {
        let isa = |cpu: &str, f: &str| LutIsa::from_parts("x86_64-pc-linux-gnu", cpu, f);
        assert_eq!(isa("znver4", ""), LutIsa::Vbmi);
        assert_eq!(isa("icelake-server", ""), LutIsa::Vbmi);
        // Cascade Lake has VNNI and BW but not VBMI; Zen 3 has no AVX-512.
        assert_eq!(isa("cascadelake", ""), LutIsa::Pshufb);
        assert_eq!(isa("znver3", ""), LutIsa::Scalar);
        assert_eq!(isa("x86-64-v4", "+avx512vbmi"), LutIsa::Vbmi);
        assert_eq!(isa("znver4", "-avx512vbmi"), LutIsa::Pshufb);
        assert_eq!(isa("znver4", "-avx512bw"), LutIsa::Scalar);
        assert_eq!(LutIsa::from_parts("aarch64-unknown-linux-gnu", "cortex-a76", ""), LutIsa::Scalar);
    }
}
