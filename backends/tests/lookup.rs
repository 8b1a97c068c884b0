//! The int8 table lookup routine (`q.lookup`): every vector form the host can run, JIT-compiled
//! and checked byte for byte against `table[x + 128]`, on lengths around the 64-byte vector.
#![cfg(feature = "llvm")]

use edgec_backends::llvm::gemm::{host_target_machine, prepare_module_for};
use edgec_backends::llvm::lookup::{emit_lookup, LutIsa};
use inkwell::context::Context;
use inkwell::module::Linkage;
use inkwell::OptimizationLevel;

type LookupFn = unsafe extern "C" fn(*const i8, *const i8, *mut i8, u64);

#[test]
fn lookup_matches_the_table_on_every_host_form() {
    let tm = host_target_machine();
    let host = LutIsa::for_target_machine(&tm);
    // The forms below the host's own also run here (VBMI implies BW).
    let forms: &[LutIsa] = match host {
        LutIsa::Vbmi => &[LutIsa::Vbmi, LutIsa::Pshufb, LutIsa::Scalar],
        LutIsa::Pshufb => &[LutIsa::Pshufb, LutIsa::Scalar],
        LutIsa::Scalar => &[LutIsa::Scalar],
    };
    let ctx = Context::create();
    let module = ctx.create_module("lookup_test");
    for (i, &isa) in forms.iter().enumerate() {
        emit_lookup(&ctx, &module, &format!("l{i}"), ctx.i64_type(), isa)
            .unwrap()
            .set_linkage(Linkage::External);
    }
    prepare_module_for(&module, &tm).unwrap();
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).unwrap();
    // A table with no structure (an xorshift stream) and inputs covering every byte value.
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s as i8
    };
    let table: Vec<i8> = (0..256).map(|_| next()).collect();
    let x: Vec<i8> = (0i32..4096 + 65).map(|i| if i < 256 { (i - 128) as i8 } else { next() }).collect();
    for (i, isa) in forms.iter().enumerate() {
        let f = unsafe { ee.get_function::<LookupFn>(&format!("l{i}")).unwrap() };
        for n in [0usize, 1, 63, 64, 65, 127, 128, 300, 4096, 4096 + 65] {
            let mut y = vec![0x55i8; n + 8];
            unsafe { f.call(x.as_ptr(), table.as_ptr(), y.as_mut_ptr(), n as u64) };
            for j in 0..n {
                assert_eq!(y[j], table[(x[j] as i32 + 128) as usize], "{isa:?} n = {n}: y[{j}]");
            }
            assert!(y[n..].iter().all(|&v| v == 0x55), "{isa:?} n = {n}: wrote past the end");
        }
    }
}
