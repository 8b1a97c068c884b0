//! Vectorizable, libm-free approximations of transcendental functions, emitted as LLVM IR.
//!
//! Every function is defined (on first use) as an `internal`, `alwaysinline`, single-basic-block
//! function `edgec.math.<name>.f32` / `.f64`. Bodies only use arithmetic, `select`, integer bit
//! manipulation and the `llvm.fmuladd` / `llvm.fabs` / `llvm.copysign` / `llvm.sqrt` intrinsics,
//! which every supported target (x86-64 SSE2+, AArch64, RISC-V with F/D, Cortex-M7 FPv5) lowers
//! without library calls. Rounding to an integer uses the "add and subtract 1.5*2^p" trick
//! instead of `llvm.floor`/`llvm.rint` (which become `floorf` calls on baseline x86-64), and
//! `llvm.fmuladd` instead of `llvm.fma` (which becomes an `fma` call without hardware FMA); all
//! range reductions are written so that they are exact whether or not `fmuladd` is fused.
//!
//! See `docs/math-approximations.md` for the method used per function and measured errors.
use std::collections::HashMap;
use std::mem::ManuallyDrop;

use inkwell::attributes::{Attribute, AttributeLoc};
use inkwell::builder::Builder;
use inkwell::context::Context;
use inkwell::intrinsics::Intrinsic;
use inkwell::module::{Linkage, Module};
use inkwell::types::{FloatType, IntType};
use inkwell::values::{FloatValue, FunctionValue, IntValue};
use inkwell::{FloatPredicate, IntPredicate};

/// The functions [`MathLib`] can emit (declared with the kernel IR, which names them).
pub use crate::kir::MathFn;

/// Defines the math functions in one module, caching the definitions.
pub struct MathLib<'ctx> {
    context: &'ctx Context,
    /// Non-owning handle on the caller's module (never dropped here). The module must outlive
    /// this `MathLib`.
    module: ManuallyDrop<Module<'ctx>>,
    cache: HashMap<(MathFn, bool), FunctionValue<'ctx>>,
}

impl<'ctx> MathLib<'ctx> {
    /// `module` must outlive the returned value (functions are added to it by [`MathLib::get`]).
    pub fn new(context: &'ctx Context, module: &Module<'ctx>) -> Self {
        // SAFETY: the handle aliases the caller's module and is never dropped (ManuallyDrop), so
        // the module is disposed exactly once, by its owner.
        let module = ManuallyDrop::new(unsafe { Module::new(module.as_mut_ptr()) });
        MathLib { context, module, cache: HashMap::new() }
    }

    /// Defines on first use (then caches) an internal, `alwaysinline`, branch-free function
    /// `edgec.math.<name>.f32` / `.f64` taking and returning the scalar float type (Pow takes two
    /// arguments). Only `f32` and `f64` are supported.
    pub fn get(&mut self, f: MathFn, ty: FloatType<'ctx>) -> FunctionValue<'ctx> {
        let is64 = if ty == self.context.f64_type() {
            true
        } else if ty == self.context.f32_type() {
            false
        } else {
            panic!("edgec math: unsupported float type {ty:?}")
        };
        if let Some(&fv) = self.cache.get(&(f, is64)) {
            return fv;
        }
        let name = format!("edgec.math.{}.{}", f.name(), if is64 { "f64" } else { "f32" });
        let fv = match self.module.get_function(&name) {
            Some(fv) => fv,
            None => self.define(f, ty, is64, &name),
        };
        self.cache.insert((f, is64), fv);
        fv
    }

    fn define(&self, f: MathFn, ty: FloatType<'ctx>, is64: bool, name: &str) -> FunctionValue<'ctx> {
        let params = vec![ty.into(); f.arity()];
        let fn_ty = ty.fn_type(&params, false);
        let fv = self.module.add_function(name, fn_ty, Some(Linkage::Internal));
        for attr in ["alwaysinline", "nounwind", "willreturn", "nosync", "nofree"] {
            let kind = Attribute::get_named_enum_kind_id(attr);
            fv.add_attribute(AttributeLoc::Function, self.context.create_enum_attribute(kind, 0));
        }
        let mem = Attribute::get_named_enum_kind_id("memory");
        fv.add_attribute(AttributeLoc::Function, self.context.create_enum_attribute(mem, 0));
        let entry = self.context.append_basic_block(fv, "entry");
        let builder = self.context.create_builder();
        builder.position_at_end(entry);
        let e = Em::new(self.context, &self.module, &builder, ty, is64);
        let x = fv.get_nth_param(0).unwrap().into_float_value();
        let r = match f {
            MathFn::Exp => e.exp(x),
            MathFn::Expm1 => e.expm1(x),
            MathFn::Log => e.log(x),
            MathFn::Log1p => e.log1p(x),
            MathFn::Tanh => e.tanh(x),
            MathFn::Sigmoid => e.sigmoid(x),
            MathFn::Erf => e.erf(x),
            MathFn::Sin => e.sincos(x, Trig::Sin),
            MathFn::Cos => e.sincos(x, Trig::Cos),
            MathFn::Tan => e.sincos(x, Trig::Tan),
            MathFn::Atan => e.atan(x),
            MathFn::Asin => e.asin(x),
            MathFn::Acos => e.acos(x),
            MathFn::Sinh => e.sinh_cosh(x, true),
            MathFn::Cosh => e.sinh_cosh(x, false),
            MathFn::Asinh => e.asinh(x),
            MathFn::Acosh => e.acosh(x),
            MathFn::Atanh => e.atanh(x),
            MathFn::Pow => {
                let y = fv.get_nth_param(1).unwrap().into_float_value();
                e.pow(x, y)
            }
        };
        builder.build_return(Some(&r)).unwrap();
        fv
    }
}

// ---------------------------------------------------------------------------------------------
// Constants (generated with mpmath; see docs/math-approximations.md).

/// ln 2 split for Cody–Waite: the high part has 16 (f32) / 42 (f64) significant bits so that
/// `n * hi` is exact for every exponent `n` that can occur.
const LN2_F32: [f64; 2] = [0.693145751953125, 1.428606765330187e-06];
const LN2_F64: [f64; 2] = [0.6931471805598903, 5.497923018708371e-14];
/// pi/2 in four parts of 10 (f32) / 23 (f64) bits (last part full precision): `n * part` is exact
/// for |n| < 2^14 (f32) / 2^30 (f64).
const PIO2_F32: [f64; 4] = [1.5703125, 0.0004839897155761719, -1.6298145055770874e-07, 6.07710062827671e-11];
const PIO2_F64: [f64; 4] =
    [1.570796251296997, 7.549789415861596e-08, 5.390302529957765e-15, 3.2820035428735005e-22];
/// pi/2 as a rounded value plus its rounding error.
const PIO2_HL_F32: [f64; 2] = [1.5707963705062866, -4.371138828673793e-08];
const PIO2_HL_F64: [f64; 2] = [std::f64::consts::FRAC_PI_2, 6.123233995736766e-17];
/// erfcx(x) = exp(x^2) erfc(x) interpolated at Chebyshev nodes, as a polynomial in
/// u = (2x - a - b) / (b - a) on [a, b] = [1, 4] (f32) / [1, 6] (f64).
const ERFCX_F32: [f64; 13] = [
    0.2108063640611436,
    -0.11152100511306101,
    0.05611048818984676,
    -0.027005716870634796,
    0.01248952041745665,
    -0.005567380322584669,
    0.002402487431083445,
    -0.0010170089408470175,
    0.0004129869220693504,
    -0.00014405779233076188,
    5.6303576556181324e-05,
    -3.6888910916590526e-05,
    1.3365835857927637e-05,
];
const ERFCX_F64: [f64; 27] = [
    0.1552936556088943,
    -0.10330894458313428,
    0.06663208245319235,
    -0.04176678811906308,
    0.025495559643554877,
    -0.015182511558846435,
    0.008833423921824398,
    -0.005028067748338429,
    0.0028033260960326884,
    -0.001532517773354372,
    0.0008222561028284448,
    -0.0004333497083766197,
    0.00022452500954931034,
    -0.00011448843243201742,
    5.7439644550264266e-05,
    -2.8256648484022325e-05,
    1.3771668599930416e-05,
    -6.856381794880611e-06,
    3.234962325739524e-06,
    -1.1999532752784036e-06,
    5.67208826914431e-07,
    -5.331927646895786e-07,
    2.3187018158059574e-07,
    5.333595120590718e-08,
    -2.0424511198718858e-08,
    -4.341372129715504e-08,
    1.8212323029087e-08,
];

fn factorial(n: u32) -> f64 {
    (1..=n).map(f64::from).product()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Trig {
    Sin,
    Cos,
    Tan,
}

/// Per-type parameters.
struct Spec {
    mant: u32,
    bias: i64,
    /// Clamp of the argument of exp (beyond: overflow to inf / underflow to 0).
    exp_hi: f64,
    exp_lo: f64,
    /// Below this expm1(x) == -1.
    expm1_lo: f64,
    /// Taylor degree of expm1 on |r| <= ln2/2.
    exp_deg: u32,
    /// Number of odd terms 1/(2k+1) of the atanh series used by log (k = 1..).
    log_terms: u32,
    /// tanh(x) == 1 beyond.
    tanh_sat: f64,
    /// Taylor degree (in x^2) of erf for |x| < 1.
    erf_taylor: u32,
    /// erf(x) == 1 beyond.
    erf_sat: f64,
    /// sin(r) = r + r^3 P(r^2): number of terms of P; cos likewise.
    sin_terms: u32,
    cos_terms: u32,
    /// atan series terms after two argument halvings.
    atan_terms: u32,
    /// Dekker split constant 2^s + 1.
    split: f64,
}

const F32_SPEC: Spec = Spec {
    mant: 23,
    bias: 127,
    exp_hi: 90.0,
    exp_lo: -104.0,
    expm1_lo: -30.0,
    exp_deg: 7,
    log_terms: 4,
    tanh_sat: 10.0,
    erf_taylor: 10,
    erf_sat: 4.0,
    sin_terms: 4,
    cos_terms: 5,
    atan_terms: 6,
    split: 4097.0,
};

const F64_SPEC: Spec = Spec {
    mant: 52,
    bias: 1023,
    exp_hi: 711.0,
    exp_lo: -746.0,
    expm1_lo: -50.0,
    exp_deg: 13,
    log_terms: 11,
    tanh_sat: 20.0,
    erf_taylor: 17,
    erf_sat: 6.0,
    sin_terms: 8,
    cos_terms: 9,
    atan_terms: 12,
    split: 134217729.0,
};

/// The IR emitter for one function body.
struct Em<'a, 'ctx> {
    module: &'a Module<'ctx>,
    b: &'a Builder<'ctx>,
    ty: FloatType<'ctx>,
    ity: IntType<'ctx>,
    is64: bool,
    s: &'static Spec,
}

type F<'ctx> = FloatValue<'ctx>;
type I<'ctx> = IntValue<'ctx>;

impl<'a, 'ctx> Em<'a, 'ctx> {
    fn new(
        context: &'ctx Context,
        module: &'a Module<'ctx>,
        b: &'a Builder<'ctx>,
        ty: FloatType<'ctx>,
        is64: bool,
    ) -> Self {
        let ity = if is64 { context.i64_type() } else { context.i32_type() };
        Em { module, b, ty, ity, is64, s: if is64 { &F64_SPEC } else { &F32_SPEC } }
    }

    // ---- primitives -------------------------------------------------------------------------
    fn c(&self, v: f64) -> F<'ctx> {
        // Round through f32 explicitly for f32 so that the constant is the nearest f32.
        if self.is64 {
            self.ty.const_float(v)
        } else {
            self.ty.const_float(v as f32 as f64)
        }
    }
    fn ci(&self, v: i64) -> I<'ctx> {
        self.ity.const_int(v as u64, true)
    }
    fn add(&self, a: F<'ctx>, b: F<'ctx>) -> F<'ctx> {
        self.b.build_float_add(a, b, "").unwrap()
    }
    fn sub(&self, a: F<'ctx>, b: F<'ctx>) -> F<'ctx> {
        self.b.build_float_sub(a, b, "").unwrap()
    }
    fn mul(&self, a: F<'ctx>, b: F<'ctx>) -> F<'ctx> {
        self.b.build_float_mul(a, b, "").unwrap()
    }
    fn div(&self, a: F<'ctx>, b: F<'ctx>) -> F<'ctx> {
        self.b.build_float_div(a, b, "").unwrap()
    }
    fn neg(&self, a: F<'ctx>) -> F<'ctx> {
        self.b.build_float_neg(a, "").unwrap()
    }
    fn intrinsic(&self, name: &str, args: &[F<'ctx>]) -> F<'ctx> {
        let decl = Intrinsic::find(name)
            .unwrap_or_else(|| panic!("no intrinsic {name}"))
            .get_declaration(self.module, &[self.ty.into()])
            .unwrap();
        let args: Vec<_> = args.iter().map(|&a| a.into()).collect();
        let call = self.b.build_call(decl, &args, "").unwrap();
        call.try_as_basic_value().basic().unwrap().into_float_value()
    }
    /// a*b + c, fused where the target has FMA.
    fn fma(&self, a: F<'ctx>, b: F<'ctx>, c: F<'ctx>) -> F<'ctx> {
        self.intrinsic("llvm.fmuladd", &[a, b, c])
    }
    fn fabs(&self, a: F<'ctx>) -> F<'ctx> {
        self.intrinsic("llvm.fabs", &[a])
    }
    fn copysign(&self, mag: F<'ctx>, sign: F<'ctx>) -> F<'ctx> {
        self.intrinsic("llvm.copysign", &[mag, sign])
    }
    fn sqrt(&self, a: F<'ctx>) -> F<'ctx> {
        self.intrinsic("llvm.sqrt", &[a])
    }
    fn cmp(&self, p: FloatPredicate, a: F<'ctx>, b: F<'ctx>) -> I<'ctx> {
        self.b.build_float_compare(p, a, b, "").unwrap()
    }
    fn lt(&self, a: F<'ctx>, b: F<'ctx>) -> I<'ctx> {
        self.cmp(FloatPredicate::OLT, a, b)
    }
    fn gt(&self, a: F<'ctx>, b: F<'ctx>) -> I<'ctx> {
        self.cmp(FloatPredicate::OGT, a, b)
    }
    fn eq(&self, a: F<'ctx>, b: F<'ctx>) -> I<'ctx> {
        self.cmp(FloatPredicate::OEQ, a, b)
    }
    fn isnan(&self, a: F<'ctx>) -> I<'ctx> {
        self.cmp(FloatPredicate::UNO, a, a)
    }
    fn sel(&self, c: I<'ctx>, a: F<'ctx>, b: F<'ctx>) -> F<'ctx> {
        self.b.build_select(c, a, b, "").unwrap().into_float_value()
    }
    fn seli(&self, c: I<'ctx>, a: I<'ctx>, b: I<'ctx>) -> I<'ctx> {
        self.b.build_select(c, a, b, "").unwrap().into_int_value()
    }
    fn and(&self, a: I<'ctx>, b: I<'ctx>) -> I<'ctx> {
        self.b.build_and(a, b, "").unwrap()
    }
    fn or(&self, a: I<'ctx>, b: I<'ctx>) -> I<'ctx> {
        self.b.build_or(a, b, "").unwrap()
    }
    fn not(&self, a: I<'ctx>) -> I<'ctx> {
        self.b.build_not(a, "").unwrap()
    }
    fn iadd(&self, a: I<'ctx>, b: I<'ctx>) -> I<'ctx> {
        self.b.build_int_add(a, b, "").unwrap()
    }
    fn isub(&self, a: I<'ctx>, b: I<'ctx>) -> I<'ctx> {
        self.b.build_int_sub(a, b, "").unwrap()
    }
    fn shl(&self, a: I<'ctx>, n: u32) -> I<'ctx> {
        self.b.build_left_shift(a, self.ci(n as i64), "").unwrap()
    }
    fn ashr(&self, a: I<'ctx>, n: u32) -> I<'ctx> {
        self.b.build_right_shift(a, self.ci(n as i64), true, "").unwrap()
    }
    fn icmp(&self, p: IntPredicate, a: I<'ctx>, b: I<'ctx>) -> I<'ctx> {
        self.b.build_int_compare(p, a, b, "").unwrap()
    }
    fn bits(&self, a: F<'ctx>) -> I<'ctx> {
        self.b.build_bit_cast(a, self.ity, "").unwrap().into_int_value()
    }
    fn float_from_bits(&self, a: I<'ctx>) -> F<'ctx> {
        self.b.build_bit_cast(a, self.ty, "").unwrap().into_float_value()
    }
    /// Small integer to float (through i32, so that 32-bit targets need no `__floatdidf`).
    fn itof(&self, a: I<'ctx>) -> F<'ctx> {
        let i32t = self.ity.get_context().i32_type();
        let a = if self.is64 { self.b.build_int_truncate(a, i32t, "").unwrap() } else { a };
        self.b.build_signed_int_to_float(a, self.ty, "").unwrap()
    }
    /// Horner: c[0] + x*(c[1] + x*(c[2] + ...)).
    fn poly(&self, x: F<'ctx>, c: &[f64]) -> F<'ctx> {
        let mut acc = self.c(*c.last().unwrap());
        for &k in c.iter().rev().skip(1) {
            acc = self.fma(acc, x, self.c(k));
        }
        acc
    }
    /// Clamps to [lo, hi] keeping NaN.
    fn clamp(&self, x: F<'ctx>, lo: f64, hi: f64) -> F<'ctx> {
        let x = self.sel(self.gt(x, self.c(hi)), self.c(hi), x);
        self.sel(self.lt(x, self.c(lo)), self.c(lo), x)
    }
    fn nan(&self) -> F<'ctx> {
        self.c(f64::NAN)
    }
    fn inf(&self) -> F<'ctx> {
        self.c(f64::INFINITY)
    }
    /// Rounds to the nearest integer (|x| < 2^(mant-1)); returns it as a float and an integer.
    fn round(&self, x: F<'ctx>) -> (F<'ctx>, I<'ctx>) {
        let shifter = 1.5 * 2f64.powi(self.s.mant as i32);
        let t = self.add(x, self.c(shifter));
        let n = self.sub(t, self.c(shifter));
        let ni = self.isub(self.bits(t), self.bits(self.c(shifter)));
        (n, ni)
    }
    /// x * 2^n rounded to nearest x * 2^n  rounded (n in the integer type; -2*bias+2 <= n <= 2*bias).
    fn pow2(&self, n: I<'ctx>) -> F<'ctx> {
        self.float_from_bits(self.shl(self.iadd(n, self.ci(self.s.bias)), self.s.mant))
    }
    fn ldexp(&self, x: F<'ctx>, n: I<'ctx>) -> F<'ctx> {
        let n1 = self.ashr(n, 1);
        let n2 = self.isub(n, n1);
        self.mul(self.mul(x, self.pow2(n1)), self.pow2(n2))
    }
    fn ln2(&self) -> [f64; 2] {
        if self.is64 {
            LN2_F64
        } else {
            LN2_F32
        }
    }

    // ---- exp family ---------------------------------------------------------------------------
    /// Cody–Waite reduction x = n ln2 + r (|r| <= ln2/2) and p = expm1(r) (Taylor).
    /// `x` must be clamped to [exp_lo, exp_hi] (or NaN). `rlo` is an extra low part added to r.
    fn exp_core(&self, x: F<'ctx>, rlo: Option<F<'ctx>>) -> (I<'ctx>, F<'ctx>) {
        let [hi, lo] = self.ln2();
        let (n, ni) = self.round(self.mul(x, self.c(std::f64::consts::LOG2_E)));
        let r = self.fma(n, self.c(-hi), x); // exact: n*hi exact and x ~ n*hi
        let r = self.fma(n, self.c(-lo), r);
        let r = match rlo {
            Some(l) => self.add(r, l),
            None => r,
        };
        let coeffs: Vec<f64> = (2..=self.s.exp_deg).map(|k| 1.0 / factorial(k)).collect();
        let q = self.poly(r, &coeffs);
        let p = self.fma(self.mul(r, r), q, r);
        (ni, p)
    }
    /// exp(x) * 2^k.
    fn exp_scaled(&self, x: F<'ctx>, k: i64) -> F<'ctx> {
        let x = self.clamp(x, self.s.exp_lo, self.s.exp_hi);
        let (n, p) = self.exp_core(x, None);
        let n = if k == 0 { n } else { self.iadd(n, self.ci(k)) };
        self.ldexp(self.add(self.c(1.0), p), n)
    }
    fn exp(&self, x: F<'ctx>) -> F<'ctx> {
        self.exp_scaled(x, 0)
    }
    fn expm1(&self, x: F<'ctx>) -> F<'ctx> {
        let x = self.clamp(x, self.s.expm1_lo, self.s.exp_hi);
        let (n, p) = self.exp_core(x, None);
        // Small n: 2^n (1 + p) - 1 = 2^n p + (2^n - 1) (exact for n = 0).
        let big = self.icmp(IntPredicate::SGT, n, self.ci(60));
        let s = self.pow2(self.seli(big, self.ci(60), n));
        let small = self.fma(s, p, self.sub(s, self.c(1.0)));
        let large = self.ldexp(self.add(self.c(1.0), p), n);
        let r = self.sel(big, large, small);
        // Keep the sign of zero: expm1(-0) = -0.
        self.sel(self.eq(x, self.c(0.0)), x, r)
    }
    fn sigmoid(&self, x: F<'ctx>) -> F<'ctx> {
        // e = exp(-|x|) in (0, 1]: sigmoid = (x < 0 ? e : 1) / (1 + e); no overflow.
        let e = self.exp(self.neg(self.fabs(x)));
        let num = self.sel(self.lt(x, self.c(0.0)), e, self.c(1.0));
        self.div(num, self.add(self.c(1.0), e))
    }
    fn tanh(&self, x: F<'ctx>) -> F<'ctx> {
        let a = self.fabs(x);
        let a = self.sel(self.gt(a, self.c(self.s.tanh_sat)), self.c(self.s.tanh_sat), a);
        let e = self.expm1(self.add(a, a));
        let t = self.div(e, self.add(e, self.c(2.0)));
        self.copysign(t, x)
    }
    fn sinh_cosh(&self, x: F<'ctx>, sinh: bool) -> F<'ctx> {
        let a = self.fabs(x);
        let big = self.gt(a, self.c(20.0));
        let half_exp = self.exp_scaled(a, -1);
        let r = if sinh {
            // (E + E / (E + 1)) / 2 with E = expm1(a): no cancellation for small a.
            let e = self.expm1(self.sel(big, self.c(20.0), a));
            let t = self.add(e, self.div(e, self.add(e, self.c(1.0))));
            self.mul(t, self.c(0.5))
        } else {
            let e = self.exp(self.sel(big, self.c(20.0), a));
            self.fma(self.c(0.5), e, self.div(self.c(0.5), e))
        };
        let r = self.sel(big, half_exp, r);
        if sinh {
            self.copysign(r, x)
        } else {
            r
        }
    }

    // ---- log family ---------------------------------------------------------------------------
    /// log(x) for finite x > 0 as (e, s, R) with log(x) = e ln2 + 2s + 2s R.
    fn log_parts(&self, x: F<'ctx>) -> (F<'ctx>, F<'ctx>, F<'ctx>) {
        let s = self.s;
        // Scale subnormals up.
        let min_normal = 2f64.powi(1 - s.bias as i32);
        let sub = self.lt(x, self.c(min_normal));
        let xs = self.sel(sub, self.mul(x, self.c(2f64.powi(s.mant as i32 + 2))), x);
        let eadj = self.seli(sub, self.ci(-(s.mant as i64 + 2)), self.ci(0));
        let ix = self.bits(xs);
        let off = self.bits(self.c(std::f64::consts::FRAC_1_SQRT_2));
        let k = self.ashr(self.isub(ix, off), s.mant);
        let m = self.float_from_bits(self.isub(ix, self.shl(k, s.mant))); // in [sqrt(1/2), sqrt(2))
        let e = self.itof(self.iadd(k, eadj));
        let f = self.sub(m, self.c(1.0));
        let sv = self.div(f, self.add(self.c(2.0), f));
        let z = self.mul(sv, sv);
        let coeffs: Vec<f64> = (1..=s.log_terms).map(|k| 1.0 / (2 * k + 1) as f64).collect();
        let r = self.mul(z, self.poly(z, &coeffs));
        (e, sv, r)
    }
    fn log_special(&self, x: F<'ctx>, r: F<'ctx>) -> F<'ctx> {
        let r = self.sel(self.eq(x, self.inf()), self.inf(), r);
        let r = self.sel(self.eq(x, self.c(0.0)), self.c(f64::NEG_INFINITY), r);
        let bad = self.or(self.lt(x, self.c(0.0)), self.isnan(x));
        self.sel(bad, self.nan(), r)
    }
    fn log(&self, x: F<'ctx>) -> F<'ctx> {
        let [hi, lo] = self.ln2();
        let (e, sv, r) = self.log_parts(x);
        let s2 = self.add(sv, sv);
        let lm = self.fma(s2, r, s2);
        let t = self.fma(e, self.c(lo), lm);
        let res = self.fma(e, self.c(hi), t);
        self.log_special(x, res)
    }
    fn log1p(&self, x: F<'ctx>) -> F<'ctx> {
        // log1p(x) = x * log(u) / (u - 1) with u = 1 + x rounded (x when u == 1).
        let u = self.add(self.c(1.0), x);
        let lu = self.log(u);
        let r = self.mul(x, self.div(lu, self.sub(u, self.c(1.0))));
        let r = self.sel(self.eq(u, self.c(1.0)), x, r);
        self.sel(self.eq(x, self.inf()), self.inf(), r)
    }
    fn asinh(&self, x: F<'ctx>) -> F<'ctx> {
        let a = self.fabs(x);
        let big = self.gt(a, self.c(2f64.powi(28)));
        // log1p(a + a^2 / (1 + sqrt(1 + a^2)))
        let a2 = self.mul(a, a);
        let t = self.div(a2, self.add(self.c(1.0), self.sqrt(self.add(self.c(1.0), a2))));
        let small = self.log1p(self.add(a, t));
        let large = self.add(self.log(a), self.c(std::f64::consts::LN_2));
        self.copysign(self.sel(big, large, small), x)
    }
    fn acosh(&self, x: F<'ctx>) -> F<'ctx> {
        let big = self.gt(x, self.c(2f64.powi(28)));
        let t = self.sub(x, self.c(1.0));
        let small = self.log1p(self.add(t, self.sqrt(self.mul(t, self.add(t, self.c(2.0))))));
        let large = self.add(self.log(x), self.c(std::f64::consts::LN_2));
        let r = self.sel(big, large, small);
        self.sel(self.lt(x, self.c(1.0)), self.nan(), r)
    }
    fn atanh(&self, x: F<'ctx>) -> F<'ctx> {
        let a = self.fabs(x);
        let t = self.div(self.add(a, a), self.sub(self.c(1.0), a));
        let r = self.mul(self.c(0.5), self.log1p(t));
        self.copysign(r, x)
    }

    // ---- erf ----------------------------------------------------------------------------------
    fn erf(&self, x: F<'ctx>) -> F<'ctx> {
        let s = self.s;
        let a = self.fabs(x);
        // |x| < 1: Taylor series x * sum (-1)^n x^2n / (n! (2n+1)) * 2/sqrt(pi).
        let k = std::f64::consts::FRAC_2_SQRT_PI;
        let coeffs: Vec<f64> = (0..=s.erf_taylor)
            .map(|n| {
                let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
                k * sign / (factorial(n) * (2 * n + 1) as f64)
            })
            .collect();
        let x2 = self.mul(a, a);
        let small = self.mul(a, self.poly(x2, &coeffs));
        // 1 <= |x| <= sat: 1 - exp(-x^2) erfcx(x).
        let ac = self.clamp(a, 1.0, s.erf_sat);
        let (lo, hi) = (1.0, s.erf_sat);
        let u = self.fma(ac, self.c(2.0 / (hi - lo)), self.c(-(hi + lo) / (hi - lo)));
        let g = self.poly(u, if self.is64 { &ERFCX_F64 } else { &ERFCX_F32 });
        let ex = self.exp(self.neg(self.mul(ac, ac)));
        let large = self.sub(self.c(1.0), self.mul(ex, g));
        let r = self.sel(self.lt(a, self.c(1.0)), small, large);
        let r = self.sel(self.gt(a, self.c(s.erf_sat)), self.c(1.0), r);
        self.copysign(r, x)
    }

    // ---- trigonometric ------------------------------------------------------------------------
    /// sin/cos/tan: x = n pi/2 + r with a 4-part Cody–Waite reduction (exact for |n| < 2^14 (f32)
    /// / 2^30 (f64)), then Taylor polynomials on |r| <= pi/4.
    fn sincos(&self, x: F<'ctx>, which: Trig) -> F<'ctx> {
        let s = self.s;
        let parts = if self.is64 { PIO2_F64 } else { PIO2_F32 };
        let (n, ni) = self.round(self.mul(x, self.c(std::f64::consts::FRAC_2_PI)));
        let mut r = x;
        for p in parts {
            r = self.fma(n, self.c(-p), r);
        }
        let r2 = self.mul(r, r);
        let sc: Vec<f64> =
            (1..=s.sin_terms).map(|k| (if k % 2 == 1 { -1.0 } else { 1.0 }) / factorial(2 * k + 1)).collect();
        let sin_r = self.fma(self.mul(r, r2), self.poly(r2, &sc), r);
        let cc: Vec<f64> =
            (2..=s.cos_terms + 1).map(|k| (if k % 2 == 1 { -1.0 } else { 1.0 }) / factorial(2 * k)).collect();
        // 1 - r^2/2 + r^4 P(r^2)
        let cos_r = self.fma(self.mul(r2, r2), self.poly(r2, &cc), self.fma(r2, self.c(-0.5), self.c(1.0)));
        let q = self.b.build_and(ni, self.ci(3), "").unwrap();
        let odd = self.icmp(IntPredicate::NE, self.b.build_and(ni, self.ci(1), "").unwrap(), self.ci(0));
        match which {
            Trig::Tan => {
                let num = self.sel(odd, self.neg(cos_r), sin_r);
                let den = self.sel(odd, sin_r, cos_r);
                self.div(num, den)
            }
            Trig::Sin | Trig::Cos => {
                let q = if which == Trig::Cos { self.iadd(q, self.ci(1)) } else { q };
                // quadrant q: 0 sin, 1 cos, 2 -sin, 3 -cos
                let odd =
                    self.icmp(IntPredicate::NE, self.b.build_and(q, self.ci(1), "").unwrap(), self.ci(0));
                let negate =
                    self.icmp(IntPredicate::NE, self.b.build_and(q, self.ci(2), "").unwrap(), self.ci(0));
                let v = self.sel(odd, cos_r, sin_r);
                self.sel(negate, self.neg(v), v)
            }
        }
    }
    /// atan for any x: a = |x|, a > 1 -> pi/2 - atan(1/a); two halvings
    /// atan(a) = 2 atan(a / (1 + sqrt(1 + a^2))), then the odd Taylor series.
    fn atan(&self, x: F<'ctx>) -> F<'ctx> {
        let a = self.fabs(x);
        let inv = self.gt(a, self.c(1.0));
        let mut t = self.sel(inv, self.div(self.c(1.0), a), a);
        for _ in 0..2 {
            let d = self.add(self.c(1.0), self.sqrt(self.fma(t, t, self.c(1.0))));
            t = self.div(t, d);
        }
        let z = self.mul(t, t);
        let coeffs: Vec<f64> = (1..=self.s.atan_terms)
            .map(|k| (if k % 2 == 1 { -1.0 } else { 1.0 }) / (2 * k + 1) as f64)
            .collect();
        let p = self.fma(self.mul(t, z), self.poly(z, &coeffs), t);
        let r = self.mul(p, self.c(4.0));
        let [h, l] = if self.is64 { PIO2_HL_F64 } else { PIO2_HL_F32 };
        let rinv = self.add(self.sub(self.c(l), r), self.c(h));
        let r = self.sel(inv, rinv, r);
        self.copysign(r, x)
    }
    fn asin(&self, x: F<'ctx>) -> F<'ctx> {
        // atan(x / sqrt((1 - x)(1 + x)))
        let d = self.sqrt(self.mul(self.sub(self.c(1.0), x), self.add(self.c(1.0), x)));
        self.atan(self.div(x, d))
    }
    fn acos(&self, x: F<'ctx>) -> F<'ctx> {
        // 2 atan(sqrt((1 - x) / (1 + x)))
        let q = self.div(self.sub(self.c(1.0), x), self.add(self.c(1.0), x));
        let r = self.atan(self.sqrt(q));
        self.add(r, r)
    }

    // ---- pow ----------------------------------------------------------------------------------
    /// Dekker split of a into hi + lo with hi having half the significand bits.
    fn split(&self, a: F<'ctx>) -> (F<'ctx>, F<'ctx>) {
        let t = self.mul(a, self.c(self.s.split));
        let hi = self.sub(t, self.sub(t, a));
        (hi, self.sub(a, hi))
    }
    /// Exact product a*b = p + e (Dekker, no FMA needed).
    fn two_prod(&self, a: F<'ctx>, b: F<'ctx>) -> (F<'ctx>, F<'ctx>) {
        let p = self.mul(a, b);
        let (ah, al) = self.split(a);
        let (bh, bl) = self.split(b);
        let e = self.sub(self.mul(ah, bh), p);
        let e = self.add(e, self.mul(ah, bl));
        let e = self.add(e, self.mul(al, bh));
        let e = self.add(e, self.mul(al, bl));
        (p, e)
    }
    /// Exact sum a + b = s + e (Knuth).
    fn two_sum(&self, a: F<'ctx>, b: F<'ctx>) -> (F<'ctx>, F<'ctx>) {
        let s = self.add(a, b);
        let bb = self.sub(s, a);
        let e = self.add(self.sub(a, self.sub(s, bb)), self.sub(b, bb));
        (s, e)
    }
    /// log(x) as hi + lo for finite x > 0.
    fn log_dw(&self, x: F<'ctx>) -> (F<'ctx>, F<'ctx>) {
        let [lhi, llo] = self.ln2();
        let s = self.s;
        let min_normal = 2f64.powi(1 - s.bias as i32);
        let sub = self.lt(x, self.c(min_normal));
        let xs = self.sel(sub, self.mul(x, self.c(2f64.powi(s.mant as i32 + 2))), x);
        let eadj = self.seli(sub, self.ci(-(s.mant as i64 + 2)), self.ci(0));
        let ix = self.bits(xs);
        let off = self.bits(self.c(std::f64::consts::FRAC_1_SQRT_2));
        let k = self.ashr(self.isub(ix, off), s.mant);
        let m = self.float_from_bits(self.isub(ix, self.shl(k, s.mant)));
        let e = self.itof(self.iadd(k, eadj));
        let f = self.sub(m, self.c(1.0)); // exact
                                          // s = f / (2 + f) as sh + sl.
        let (dh, dl) = self.two_sum(self.c(2.0), f);
        let sh = self.div(f, dh);
        let (p, pe) = self.two_prod(sh, dh);
        // residual f - sh*(dh + dl)
        let res = self.sub(self.sub(self.sub(f, p), pe), self.mul(sh, dl));
        let sl = self.div(res, dh);
        let z = self.mul(sh, sh);
        let coeffs: Vec<f64> = (1..=s.log_terms + 1).map(|k| 1.0 / (2 * k + 1) as f64).collect();
        let r = self.mul(z, self.poly(z, &coeffs));
        let s2 = self.add(sh, sh);
        // log = e*lhi + s2 + (2 sl + s2 R + e*llo)
        let (h, hl) = self.two_sum(self.mul(e, self.c(lhi)), s2);
        let lo = self.add(hl, self.add(self.add(sl, sl), self.fma(s2, r, self.mul(e, self.c(llo)))));
        let (h2, l2) = self.two_sum(h, lo);
        (h2, l2)
    }
    fn pow(&self, x: F<'ctx>, y: F<'ctx>) -> F<'ctx> {
        let s = self.s;
        let ax = self.fabs(x);
        let (lh, ll) = self.log_dw(ax);
        let (ph, pl) = self.two_prod(y, lh);
        let pl = self.fma(y, ll, pl);
        // Beyond the exp range (or non-finite), drop the low part.
        let ok = self.lt(self.fabs(ph), self.c(s.exp_hi));
        let pl = self.sel(ok, pl, self.c(0.0));
        let xc = self.clamp(ph, s.exp_lo, s.exp_hi);
        let (n, p) = self.exp_core(xc, Some(pl));
        let r = self.ldexp(self.add(self.c(1.0), p), n);
        // log|x| = +-inf cases: y*log|x| = +-inf handled by the clamp; |x| = 0 / inf:
        let r =
            self.sel(self.eq(ax, self.c(0.0)), self.sel(self.lt(y, self.c(0.0)), self.inf(), self.c(0.0)), r);
        let r =
            self.sel(self.eq(ax, self.inf()), self.sel(self.lt(y, self.c(0.0)), self.c(0.0), self.inf()), r);
        // Integer / odd-integer y.
        let ay = self.fabs(y);
        let two_m = 2f64.powi(s.mant as i32);
        let big = self.cmp(FloatPredicate::OGE, ay, self.c(two_m));
        let t = self.add(ay, self.c(two_m));
        let yr = self.sub(t, self.c(two_m));
        let is_int = self.or(big, self.eq(yr, ay));
        let low_t = self.b.build_and(self.bits(t), self.ci(1), "").unwrap();
        let low_y = self.b.build_and(self.bits(ay), self.ci(1), "").unwrap();
        let odd_big =
            self.and(self.lt(ay, self.c(2.0 * two_m)), self.icmp(IntPredicate::NE, low_y, self.ci(0)));
        let odd_small = self.and(self.eq(yr, ay), self.icmp(IntPredicate::NE, low_t, self.ci(0)));
        let odd = self.seli(big, odd_big, odd_small);
        let xneg = self.icmp(IntPredicate::SLT, self.bits(x), self.ci(0));
        let r = self.sel(self.and(xneg, odd), self.neg(r), r);
        let finite_neg =
            self.and(self.lt(x, self.c(0.0)), self.cmp(FloatPredicate::ONE, x, self.c(f64::NEG_INFINITY)));
        let r = self.sel(self.and(finite_neg, self.not(is_int)), self.nan(), r);
        // |x| == 1 and y = +-inf: 1 (C99); NaNs propagate otherwise.
        let r = self.sel(self.and(self.eq(ax, self.c(1.0)), self.eq(ay, self.inf())), self.c(1.0), r);
        let r = self.sel(self.or(self.isnan(x), self.isnan(y)), self.nan(), r);
        let r = self.sel(self.eq(x, self.c(1.0)), self.c(1.0), r);
        self.sel(self.eq(y, self.c(0.0)), self.c(1.0), r)
    }
}
