//! Accuracy, vectorization and no-libcall tests of `edgec_backends::llvm::math`.
#![cfg(feature = "llvm")]

use edgec_backends::llvm::math::{MathFn, MathLib};
use inkwell::context::Context;
use inkwell::module::{Linkage, Module};
use inkwell::passes::PassBuilderOptions;
use inkwell::targets::{
    CodeModel, FileType, InitializationConfig, RelocMode, Target, TargetMachine, TargetTriple,
};
use inkwell::types::FloatType;
use inkwell::values::AnyValue;
use inkwell::OptimizationLevel;

extern "C" {
    // glibc (linked by std); reference only.
    fn erf(x: f64) -> f64;
    // Rust's std versions lose accuracy near 1 / for huge arguments.
    fn asinh(x: f64) -> f64;
    fn acosh(x: f64) -> f64;
    fn atanh(x: f64) -> f64;
}

fn host_tm() -> TargetMachine {
    Target::initialize_native(&InitializationConfig::default()).unwrap();
    let triple = TargetMachine::get_default_triple();
    let target = Target::from_triple(&triple).unwrap();
    target
        .create_target_machine(
            &triple,
            TargetMachine::get_host_cpu_name().to_str().unwrap(),
            TargetMachine::get_host_cpu_features().to_str().unwrap(),
            OptimizationLevel::Aggressive,
            RelocMode::Default,
            CodeModel::JITDefault,
        )
        .unwrap()
}

/// Exported wrapper `w_<name>` calling the internal math function.
fn wrap<'ctx>(
    ctx: &'ctx Context,
    module: &Module<'ctx>,
    lib: &mut MathLib<'ctx>,
    f: MathFn,
    ty: FloatType<'ctx>,
) {
    let inner = lib.get(f, ty);
    let params = vec![ty.into(); f.arity()];
    let w = module.add_function(
        &wname(f, ty == ctx.f64_type()),
        ty.fn_type(&params, false),
        Some(Linkage::External),
    );
    let b = ctx.create_builder();
    b.position_at_end(ctx.append_basic_block(w, "e"));
    let args: Vec<_> = w.get_param_iter().map(|p| p.into()).collect();
    let r = b.build_call(inner, &args, "r").unwrap().try_as_basic_value().basic().unwrap();
    b.build_return(Some(&r)).unwrap();
}

fn wname(f: MathFn, is64: bool) -> String {
    format!("w_{}_{}", f.name(), if is64 { "f64" } else { "f32" })
}

fn reference(f: MathFn, x: f64, y: f64) -> f64 {
    match f {
        MathFn::Exp => x.exp(),
        MathFn::Expm1 => x.exp_m1(),
        MathFn::Log => x.ln(),
        MathFn::Log1p => x.ln_1p(),
        MathFn::Tanh => x.tanh(),
        MathFn::Sigmoid => {
            if x < 0.0 {
                let e = x.exp();
                e / (1.0 + e)
            } else {
                1.0 / (1.0 + (-x).exp())
            }
        }
        MathFn::Erf => unsafe { erf(x) },
        MathFn::Sin => x.sin(),
        MathFn::Cos => x.cos(),
        MathFn::Tan => x.tan(),
        MathFn::Atan => x.atan(),
        MathFn::Asin => x.asin(),
        MathFn::Acos => x.acos(),
        MathFn::Sinh => x.sinh(),
        MathFn::Cosh => x.cosh(),
        MathFn::Asinh => unsafe { asinh(x) },
        MathFn::Acosh => unsafe { acosh(x) },
        MathFn::Atanh => unsafe { atanh(x) },
        MathFn::Pow => x.powf(y),
    }
}

/// Absolute error floor (near zeros of the function) and the supported argument range.
fn floor_and_range(f: MathFn, is64: bool) -> (f64, f64) {
    let eps = if is64 { f64::EPSILON } else { f32::EPSILON as f64 };
    match f {
        MathFn::Sin | MathFn::Cos | MathFn::Tan => (eps, if is64 { 1e9 } else { 1e4 }),
        _ => (if is64 { 1e-300 } else { 1e-37 }, f64::INFINITY),
    }
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn points(is64: bool) -> Vec<f64> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -0.5,
        2.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        100.0,
        -100.0,
        88.0,
        89.0,
        -87.0,
        -103.0,
        709.0,
        710.0,
        -745.0,
        1e-7,
        -1e-7,
        std::f64::consts::PI,
        std::f64::consts::FRAC_PI_2,
        1.0 - 1e-7,
        -1.0 + 1e-7,
        1.0 + 1e-7,
    ];
    if is64 {
        v.extend([f64::MAX, f64::MIN_POSITIVE, 5e-324, 1e-310, 1.0 - 1e-15, -1.0 + 1e-15, 1.0 + 1e-15]);
    } else {
        v.extend([f32::MAX as f64, f32::MIN_POSITIVE as f64, 1e-45, 1e-40]);
    }
    // Dense grid.
    for i in -20000..=20000 {
        v.push(i as f64 * 1e-3);
        v.push(i as f64 * 0.05);
    }
    // Log-spaced magnitudes.
    let (lo, hi) = if is64 { (-300, 300) } else { (-37, 37) };
    for e in lo * 10..=hi * 10 {
        let m = 10f64.powf(e as f64 / 10.0);
        v.push(m);
        v.push(-m);
    }
    // Random.
    let mut r = Lcg(12345);
    for _ in 0..20000 {
        v.push((r.next() - 0.5) * 4.0);
        v.push((r.next() - 0.5) * 40.0);
        v.push((r.next() - 0.5) * 2000.0);
        v.push((r.next() - 0.5) * 1e5);
        let e = (r.next() - 0.5) * if is64 { 1400.0 } else { 170.0 };
        v.push(2f64.powf(e) * if r.next() < 0.5 { -1.0 } else { 1.0 });
    }
    if !is64 {
        for x in v.iter_mut() {
            *x = *x as f32 as f64;
        }
    }
    v
}

/// Relative error with absolute floor; `None` if the special-value behaviour is wrong.
fn error(got: f64, want: f64, floor: f64) -> Option<f64> {
    if want.is_nan() || got.is_nan() {
        return (want.is_nan() && got.is_nan()).then_some(0.0);
    }
    if want.is_infinite() || got.is_infinite() {
        return (got == want).then_some(0.0);
    }
    Some((got - want).abs() / want.abs().max(floor))
}

fn check(is64: bool) {
    let ctx = Context::create();
    let module = ctx.create_module("math");
    let ty = if is64 { ctx.f64_type() } else { ctx.f32_type() };
    let mut lib = MathLib::new(&ctx, &module);
    for f in MathFn::ALL {
        wrap(&ctx, &module, &mut lib, f, ty);
    }
    module.verify().unwrap();
    let tm = host_tm();
    module.run_passes("default<O3>", &tm, PassBuilderOptions::create()).unwrap();
    let ee = module.create_jit_execution_engine(OptimizationLevel::Aggressive).unwrap();
    let tol = if is64 { 1e-14 } else { 1e-6 };
    let pts = points(is64);
    let mut failures = Vec::new();
    for f in MathFn::ALL {
        let name = wname(f, is64);
        let eval: Box<dyn Fn(f64, f64) -> f64> = unsafe {
            match (is64, f.arity()) {
                (true, 1) => {
                    let g = ee.get_function::<unsafe extern "C" fn(f64) -> f64>(&name).unwrap();
                    Box::new(move |x, _| g.call(x))
                }
                (true, _) => {
                    let g = ee.get_function::<unsafe extern "C" fn(f64, f64) -> f64>(&name).unwrap();
                    Box::new(move |x, y| g.call(x, y))
                }
                (false, 1) => {
                    let g = ee.get_function::<unsafe extern "C" fn(f32) -> f32>(&name).unwrap();
                    Box::new(move |x, _| g.call(x as f32) as f64)
                }
                (false, _) => {
                    let g = ee.get_function::<unsafe extern "C" fn(f32, f32) -> f32>(&name).unwrap();
                    Box::new(move |x, y| g.call(x as f32, y as f32) as f64)
                }
            }
        };
        let (floor, range) = floor_and_range(f, is64);
        let (mut worst, mut at) = (0.0f64, (0.0, 0.0));
        let mut bad_special = None;
        let mut one = |x: f64, y: f64| {
            let want = reference(f, x, y);
            let want = if is64 { want } else { want as f32 as f64 };
            let got = eval(x, y);
            match error(got, want, floor) {
                Some(e) if e > worst => {
                    worst = e;
                    at = (x, y);
                }
                Some(_) => {}
                None => {
                    if bad_special.is_none() {
                        bad_special = Some((x, y, got, want));
                    }
                }
            }
        };
        if f == MathFn::Pow {
            let mut xs: Vec<f64> = vec![
                0.0,
                -0.0,
                1.0,
                -1.0,
                2.0,
                -2.0,
                0.5,
                -0.5,
                10.0,
                -3.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                1e-30,
                1e30,
            ];
            let mut ys: Vec<f64> = vec![
                0.0,
                -0.0,
                1.0,
                -1.0,
                2.0,
                3.0,
                -3.0,
                0.5,
                -0.5,
                2.5,
                100.0,
                -100.0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::NAN,
                1e10,
                7.0,
            ];
            let mut r = Lcg(777);
            for _ in 0..300 {
                xs.push(r.next() * 10.0);
                xs.push(-((r.next() * 20.0) as i32 as f64));
                xs.push(2f64.powf((r.next() - 0.5) * 200.0));
                ys.push((r.next() - 0.5) * 40.0);
                ys.push(((r.next() - 0.5) * 40.0) as i32 as f64);
            }
            if !is64 {
                xs.iter_mut().for_each(|x| *x = *x as f32 as f64);
                ys.iter_mut().for_each(|y| *y = *y as f32 as f64);
            }
            for &x in &xs {
                for &y in &ys {
                    one(x, y);
                }
            }
        } else {
            for &x in &pts {
                if x.abs() <= range || x.is_nan() {
                    one(x, 0.0);
                }
            }
        }
        println!(
            "{:8} {}: max rel err {:.3e} at {:?}",
            f.name(),
            if is64 { "f64" } else { "f32" },
            worst,
            at
        );
        if let Some(b) = bad_special {
            failures.push(format!("{}: special value wrong at (x, y, got, want) = {b:?}", f.name()));
        }
        if worst > tol {
            failures.push(format!("{}: max rel err {worst:.3e} at {at:?}", f.name()));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn math_accuracy_f32() {
    check(false);
}

#[test]
fn math_accuracy_f64() {
    check(true);
}

/// `void f(float* noalias x, float* noalias y, i64 n) { for i: y[i] = fn(x[i]) }`.
fn emit_loop<'ctx>(
    ctx: &'ctx Context,
    module: &Module<'ctx>,
    lib: &mut MathLib<'ctx>,
    f: MathFn,
    ty: FloatType<'ctx>,
) {
    let ptr = ctx.ptr_type(inkwell::AddressSpace::default());
    let i64t = ctx.i64_type();
    let fty = ctx.void_type().fn_type(&[ptr.into(), ptr.into(), i64t.into()], false);
    let func = module.add_function(&format!("loop_{}", f.name()), fty, None);
    let noalias =
        ctx.create_enum_attribute(inkwell::attributes::Attribute::get_named_enum_kind_id("noalias"), 0);
    func.add_attribute(inkwell::attributes::AttributeLoc::Param(0), noalias);
    func.add_attribute(inkwell::attributes::AttributeLoc::Param(1), noalias);
    let inner = lib.get(f, ty);
    let b = ctx.create_builder();
    let entry = ctx.append_basic_block(func, "entry");
    let body = ctx.append_basic_block(func, "body");
    let exit = ctx.append_basic_block(func, "exit");
    let (x, y, n) = (
        func.get_nth_param(0).unwrap().into_pointer_value(),
        func.get_nth_param(1).unwrap().into_pointer_value(),
        func.get_nth_param(2).unwrap().into_int_value(),
    );
    b.position_at_end(entry);
    let nonempty = b.build_int_compare(inkwell::IntPredicate::SGT, n, i64t.const_zero(), "").unwrap();
    b.build_conditional_branch(nonempty, body, exit).unwrap();
    b.position_at_end(body);
    let i = b.build_phi(i64t, "i").unwrap();
    let iv = i.as_basic_value().into_int_value();
    let px = unsafe { b.build_in_bounds_gep(ty, x, &[iv], "") }.unwrap();
    let xv = b.build_load(ty, px, "").unwrap();
    let r = b.build_call(inner, &[xv.into()], "").unwrap().try_as_basic_value().basic().unwrap();
    let py = unsafe { b.build_in_bounds_gep(ty, y, &[iv], "") }.unwrap();
    b.build_store(py, r).unwrap();
    let next = b.build_int_add(iv, i64t.const_int(1, false), "").unwrap();
    i.add_incoming(&[(&i64t.const_zero(), entry), (&next, body)]);
    let done = b.build_int_compare(inkwell::IntPredicate::EQ, next, n, "").unwrap();
    b.build_conditional_branch(done, exit, body).unwrap();
    b.position_at_end(exit);
    b.build_return(None).unwrap();
}

#[test]
fn math_loops_vectorize() {
    let ctx = Context::create();
    let module = ctx.create_module("vec");
    let mut lib = MathLib::new(&ctx, &module);
    let fns = [MathFn::Exp, MathFn::Tanh, MathFn::Erf, MathFn::Sigmoid, MathFn::Log, MathFn::Sin];
    for f in fns {
        emit_loop(&ctx, &module, &mut lib, f, ctx.f32_type());
    }
    module.verify().unwrap();
    let tm = host_tm();
    module.set_triple(&tm.get_triple());
    module.set_data_layout(&tm.get_target_data().get_data_layout());
    module.run_passes("default<O3>", &tm, PassBuilderOptions::create()).unwrap();
    for f in fns {
        let ir = module.get_function(&format!("loop_{}", f.name())).unwrap().print_to_string().to_string();
        let vector = ["<16 x float>", "<8 x float>", "<4 x float>"].iter().find(|t| ir.contains(*t));
        let calls: Vec<&str> = ir.lines().filter(|l| l.contains("call ") && !l.contains("@llvm.")).collect();
        println!("loop_{}: vector type {:?}, non-intrinsic calls {:?}", f.name(), vector, calls);
        assert!(vector.is_some(), "loop_{} not vectorized:\n{ir}", f.name());
        assert!(calls.is_empty(), "loop_{} still calls: {calls:?}", f.name());
    }
}

#[test]
fn math_cortex_m7_no_undefined_symbols() {
    Target::initialize_arm(&InitializationConfig::default());
    let triple = TargetTriple::create("thumbv7em-none-eabihf");
    let target = Target::from_triple(&triple).unwrap();
    // fpv5-sp-d16 (single-precision FPU) for f32; fpv5-d16 (double) for f32 and f64.
    for (features, types) in
        [("+fp-armv8d16sp,+thumb-mode", &[false][..]), ("+fp-armv8d16,+thumb-mode", &[false, true][..])]
    {
        let tm = target
            .create_target_machine(
                &triple,
                "cortex-m7",
                features,
                OptimizationLevel::Aggressive,
                RelocMode::Static,
                CodeModel::Default,
            )
            .unwrap();
        let ctx = Context::create();
        let module = ctx.create_module("m7");
        module.set_triple(&triple);
        module.set_data_layout(&tm.get_target_data().get_data_layout());
        let mut lib = MathLib::new(&ctx, &module);
        for &is64 in types {
            let ty = if is64 { ctx.f64_type() } else { ctx.f32_type() };
            for f in MathFn::ALL {
                wrap(&ctx, &module, &mut lib, f, ty);
            }
        }
        module.verify().unwrap();
        module.run_passes("default<O3>", &tm, PassBuilderOptions::create()).unwrap();
        let obj = tm.write_to_memory_buffer(&module, FileType::Object).unwrap();
        let path =
            std::env::temp_dir().join(format!("edgec_math_m7_{}_{}.o", std::process::id(), types.len()));
        std::fs::write(&path, obj.as_slice()).unwrap();
        let out = std::process::Command::new("llvm-nm-22").arg("-u").arg(&path).output();
        let _ = std::fs::remove_file(&path);
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!("llvm-nm-22 not available ({e}); skipping the symbol check");
                return;
            }
        };
        assert!(out.status.success());
        let undefined = String::from_utf8_lossy(&out.stdout).to_string();
        println!("cortex-m7 {features}: {} bytes, undefined symbols: {:?}", obj.get_size(), undefined.trim());
        assert!(undefined.trim().is_empty(), "undefined symbols with {features}: {undefined}");
    }
}
