//! The int8 table lookup `y[i] = table[x[i] + 128]` (`q.lookup`, [`crate::kir::Stmt::Lookup`]),
//! emitted as LLVM IR.
//!
//! Element by element it is two dependent byte loads, which LLVM's vectorizer turns into
//! extract/insert sequences no faster than scalar code. With AVX-512 VBMI the whole 256-byte
//! table lives in four zmm registers: `vpermi2b` looks 64 bytes up in 128 table entries at once
//! (index bits 0–6), so two of them cover both halves and bit 7 selects between the results.
//! Elsewhere, and for the last `n mod 64` elements, a scalar loop.

use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::builder::BuilderError;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::targets::TargetMachine;
use inkwell::types::IntType;
use inkwell::values::{BasicValue, FunctionValue};
use inkwell::{AddressSpace, IntPredicate};

/// Whether the target has AVX-512 VBMI's `vpermi2b` on 512-bit vectors.
pub fn has_vbmi(tm: &TargetMachine) -> bool {
    let triple = tm.get_triple().as_str().to_string_lossy().into_owned();
    let cpu = tm.get_cpu().to_string();
    let features = tm.get_feature_string().to_string_lossy().into_owned();
    has_vbmi_parts(&triple, &cpu, &features)
}

/// [`has_vbmi`] on plain strings (triple, CPU, `+a,-b` feature list).
pub fn has_vbmi_parts(triple: &str, cpu: &str, features: &str) -> bool {
    if !triple.starts_with("x86_64") {
        return false;
    }
    let cpu = cpu.to_ascii_lowercase();
    let vbmi_cpu = ["znver4", "znver5", "cannonlake", "tigerlake", "rocketlake"].contains(&cpu.as_str())
        || ["icelake", "sapphirerapids", "emeraldrapids", "graniterapids", "diamondrapids"]
            .iter()
            .any(|p| cpu.starts_with(p));
    let mut vbmi = vbmi_cpu;
    for f in features.split(',').map(str::trim) {
        if f == "+avx512vbmi" {
            vbmi = true;
        } else if f == "-avx512vbmi" || f == "-avx512f" || f == "-avx512bw" {
            vbmi = false;
        }
    }
    vbmi && super::gemm::VectorIsa::from_parts(triple, &cpu, features).vector_bits == 512
}

/// Defines `name` as an internal function `void(ptr x, ptr table, ptr y, it n)` (`it` the
/// index type) computing `y[i] = table[x[i] + 128]` for `i < n` over i8 buffers; `vbmi` selects
/// the vector loop of the module docs.
pub fn emit_lookup<'ctx>(
    cx: &'ctx Context,
    module: &Module<'ctx>,
    name: &str,
    it: IntType<'ctx>,
    vbmi: bool,
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
    let b = cx.create_builder();
    let entry = cx.append_basic_block(f, "entry");
    b.position_at_end(entry);
    let zero = it.const_zero();
    // The vector loop covers [0, vec_end), the scalar loop the rest.
    let mut start = zero;
    let mut pre = entry;
    if vbmi {
        f.add_attribute(AttributeLoc::Function, cx.create_string_attribute("min-legal-vector-width", "512"));
        let v64 = i8t.vec_type(64);
        let perm = Intrinsic::find("llvm.x86.avx512.vpermi2var.qi.512")
            .and_then(|i| i.get_declaration(module, &[]))
            .expect("vpermi2b intrinsic");
        let quarter = |q: u64| -> Result<_, BuilderError> {
            // SAFETY: table holds 256 bytes; q < 4.
            let p = unsafe { b.build_in_bounds_gep(i8t, table, &[it.const_int(q * 64, false)], "")? };
            let l = b.build_load(v64, p, "")?;
            l.as_instruction_value().unwrap().set_alignment(1).ok();
            Ok(l.into_vector_value())
        };
        let t = [quarter(0)?, quarter(1)?, quarter(2)?, quarter(3)?];
        let vec_end = b.build_and(n, it.const_int(!63u64, false), "")?;
        let head = cx.append_basic_block(f, "v.head");
        let body = cx.append_basic_block(f, "v.body");
        let exit = cx.append_basic_block(f, "v.exit");
        b.build_unconditional_branch(head)?;
        b.position_at_end(head);
        let i = b.build_phi(it, "i")?;
        i.add_incoming(&[(&zero, entry)]);
        let iv = i.as_basic_value().into_int_value();
        let more = b.build_int_compare(IntPredicate::ULT, iv, vec_end, "")?;
        b.build_conditional_branch(more, body, exit)?;
        b.position_at_end(body);
        // SAFETY: iv + 64 <= n, the buffers' length.
        let xp = unsafe { b.build_in_bounds_gep(i8t, x, &[iv], "")? };
        let xv = b.build_load(v64, xp, "")?;
        xv.as_instruction_value().unwrap().set_alignment(1).ok();
        let xv = xv.into_vector_value();
        // x + 128 as an unsigned byte is x ^ 0x80; its bit 7 picks the table half.
        let k80 = inkwell::types::VectorType::const_vector(&[i8t.const_int(0x80, false); 64]);
        let ix = b.build_xor(xv, k80, "")?;
        let lo = b.build_call(perm, &[t[0].into(), ix.into(), t[1].into()], "")?;
        let hi = b.build_call(perm, &[t[2].into(), ix.into(), t[3].into()], "")?;
        let upper = b.build_int_compare(IntPredicate::SLT, ix, v64.const_zero(), "")?;
        let lo = lo.try_as_basic_value().basic().unwrap();
        let hi = hi.try_as_basic_value().basic().unwrap();
        let yv = b.build_select(upper, hi, lo, "")?;
        // SAFETY: as for `xp`.
        let yp = unsafe { b.build_in_bounds_gep(i8t, y, &[iv], "")? };
        let st = b.build_store(yp, yv)?;
        st.set_alignment(1).ok();
        let next = b.build_int_nuw_add(iv, it.const_int(64, false), "")?;
        i.add_incoming(&[(&next, body)]);
        b.build_unconditional_branch(head)?;
        b.position_at_end(exit);
        start = vec_end;
        pre = exit;
    }
    let head = cx.append_basic_block(f, "s.head");
    let body = cx.append_basic_block(f, "s.body");
    let done = cx.append_basic_block(f, "done");
    b.build_unconditional_branch(head)?;
    b.position_at_end(head);
    let i = b.build_phi(it, "j")?;
    i.add_incoming(&[(&start, pre)]);
    let iv = i.as_basic_value().into_int_value();
    let more = b.build_int_compare(IntPredicate::ULT, iv, n, "")?;
    b.build_conditional_branch(more, body, done)?;
    b.position_at_end(body);
    // SAFETY: iv < n; the index x + 128 is in 0..256.
    let xp = unsafe { b.build_in_bounds_gep(i8t, x, &[iv], "")? };
    let xv = b.build_load(i8t, xp, "")?.into_int_value();
    let at = b.build_int_add(b.build_int_s_extend(xv, it, "")?, it.const_int(128, false), "")?;
    let tp = unsafe { b.build_in_bounds_gep(i8t, table, &[at], "")? };
    let v = b.build_load(i8t, tp, "")?;
    let yp = unsafe { b.build_in_bounds_gep(i8t, y, &[iv], "")? };
    b.build_store(yp, v)?;
    let next = b.build_int_nuw_add(iv, it.const_int(1, false), "")?;
    i.add_incoming(&[(&next, body)]);
    b.build_unconditional_branch(head)?;
    b.position_at_end(done);
    b.build_return(None)?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::has_vbmi_parts;

    #[test]
    fn vbmi_detection() {
        assert!(has_vbmi_parts("x86_64-pc-linux-gnu", "znver4", ""));
        assert!(has_vbmi_parts("x86_64-pc-linux-gnu", "icelake-server", ""));
        // Cascade Lake has VNNI but not VBMI; Zen 3 has neither.
        assert!(!has_vbmi_parts("x86_64-pc-linux-gnu", "cascadelake", ""));
        assert!(!has_vbmi_parts("x86_64-pc-linux-gnu", "znver3", ""));
        assert!(has_vbmi_parts("x86_64-pc-linux-gnu", "x86-64-v4", "+avx512vbmi"));
        assert!(!has_vbmi_parts("x86_64-pc-linux-gnu", "znver4", "-avx512vbmi"));
        assert!(!has_vbmi_parts("aarch64-unknown-linux-gnu", "cortex-a76", "+avx512vbmi"));
    }
}
