//! Kernel IR → C++ for Vitis HLS: one `static` function per kernel, with the semantics the LLVM
//! backend (`llvm::codegen`) gives every statement and expression. C++ leaves some of those
//! undefined (signed overflow, shifts by the width or more, float→int out of range), so those
//! operations go through the helpers of `defines.h` ([`DEFINES_H`]) or through unsigned types,
//! never through plain C++ operators with undefined behaviour.

use crate::kir::{Access, BinOp, Expr, GemmBias, Kernel, MathFn, Stmt, Ty, UnOp, View};
use std::fmt::Write;

/// The register (value) type of a kernel type in C++. `Idx` is `int64_t`, as on the 64-bit
/// hosts the LLVM backend targets.
pub fn cty(t: Ty) -> &'static str {
    match t {
        Ty::Idx => "int64_t",
        Ty::Bool => "bool",
        Ty::F16 | Ty::BF16 => "uint16_t",
        Ty::F32 => "float",
        Ty::F64 => "double",
        Ty::I8 => "int8_t",
        Ty::I16 => "int16_t",
        Ty::I32 => "int32_t",
        Ty::I64 => "int64_t",
        Ty::U8 => "uint8_t",
        Ty::U16 => "uint16_t",
        Ty::U32 => "uint32_t",
        Ty::U64 => "uint64_t",
    }
}

/// The memory (array element) type: booleans are one byte, 0 or 1, as in the arena.
pub fn mty(t: Ty) -> &'static str {
    match t {
        Ty::Bool => "uint8_t",
        _ => cty(t),
    }
}

/// Bits of an integer type.
fn bits(t: Ty) -> u32 {
    t.bytes() as u32 * 8
}

/// The unsigned type wrapping arithmetic of `t` is done in: at least 32 bits, so that C++'s
/// promotion of narrow operands to `int` can never overflow a signed type.
fn wrap_ty(t: Ty) -> &'static str {
    if bits(t) > 32 {
        "uint64_t"
    } else {
        "uint32_t"
    }
}

/// Why a kernel cannot be emitted (yet).
pub type EmitError = String;

/// The kernel types this emitter handles; half types have no C++ type without the vendor
/// headers yet.
fn check_ty(t: Ty) -> Result<(), EmitError> {
    match t {
        Ty::F16 | Ty::BF16 => Err(format!("{} arithmetic is not emitted as HLS C++ yet", t.name())),
        _ => Ok(()),
    }
}

/// The C++ name of kernel `k`'s function.
pub fn kernel_fn_name(k: &Kernel) -> String {
    k.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// One kernel as a `static void` function over fixed-size arrays.
pub fn kernel(k: &Kernel) -> Result<String, EmitError> {
    for p in &k.params {
        check_ty(p.ty)?;
    }
    for &t in &k.vars {
        check_ty(t)?;
    }
    let params: Vec<String> = k
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let c = if p.access == Access::Read { "const " } else { "" };
            // A zero-length array is not C++; such a parameter is never indexed.
            format!("{c}{} p{i}[{}]", mty(p.ty), p.len.max(1))
        })
        .collect();
    let mut out = format!("static void {}({}) {{\n", kernel_fn_name(k), params.join(", "));
    for (v, &t) in k.vars.iter().enumerate() {
        writeln!(out, "  {} v{v} = 0;", cty(t)).unwrap();
    }
    let mut e = Emitter { k, out, depth: 1 };
    e.stmts(&k.body)?;
    e.out += "}\n";
    Ok(e.out)
}

struct Emitter<'a> {
    k: &'a Kernel,
    out: String,
    depth: usize,
}

/// Whether a statement list contains no loop (so a loop around it is innermost).
fn loop_free(ss: &[Stmt]) -> bool {
    ss.iter().all(|s| match s {
        Stmt::For { .. }
        | Stmt::Gemm { .. }
        | Stmt::QGemm { .. }
        | Stmt::Copy { .. }
        | Stmt::Lookup { .. } => false,
        Stmt::If { then, els, .. } => loop_free(then) && loop_free(els),
        Stmt::Store { .. } | Stmt::Let { .. } | Stmt::Assign { .. } => true,
    })
}

const PIPELINE: &str = "#pragma HLS PIPELINE II=1";

impl Emitter<'_> {
    fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.out += "  ";
        }
        self.out += s;
        self.out += "\n";
    }

    fn stmts(&mut self, ss: &[Stmt]) -> Result<(), EmitError> {
        for s in ss {
            self.stmt(s)?;
        }
        Ok(())
    }

    /// `for (var = 0; var < n; var++) { [pipeline] body }`.
    fn counted(
        &mut self,
        var: &str,
        ty: Ty,
        n: u64,
        body: impl FnOnce(&mut Self) -> Result<(), EmitError>,
        innermost: bool,
    ) -> Result<(), EmitError> {
        let bound = if ty == Ty::Idx && n <= i32::MAX as u64 {
            n.to_string()
        } else {
            format!("({}){n}ULL", cty(ty))
        };
        self.line(&format!("for ({var} = 0; {var} < {bound}; {var}++) {{"));
        self.depth += 1;
        if innermost {
            self.line(PIPELINE);
        }
        body(self)?;
        self.depth -= 1;
        self.line("}");
        Ok(())
    }

    /// `{ int64_t i; for (i = 0; i < n; i++) { line } }`: a pipelined loop over `n` elements
    /// in a block of its own (so its index does not clash with the kernel's variables).
    fn flat_loop(&mut self, n: u64, line: &str) -> Result<(), EmitError> {
        self.line("{");
        self.depth += 1;
        self.line("int64_t i;");
        self.counted(
            "i",
            Ty::Idx,
            n,
            |e| {
                e.line(line);
                Ok(())
            },
            true,
        )?;
        self.depth -= 1;
        self.line("}");
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), EmitError> {
        let k = self.k;
        match s {
            Stmt::For { var, extent, body } => {
                let inner = loop_free(body);
                self.counted(&format!("v{var}"), k.vars[*var], *extent, |e| e.stmts(body), inner)?;
            }
            Stmt::Store { buf, index, value } => {
                let t = k.params[*buf].ty;
                let v = self.expr(value)?;
                let v = if t == Ty::Bool { format!("(uint8_t)({v})") } else { v };
                let i = self.expr(index)?;
                self.line(&format!("p{buf}[{i}] = {v};"));
            }
            Stmt::Let { var, value } | Stmt::Assign { var, value } => {
                let v = self.expr(value)?;
                self.line(&format!("v{var} = {v};"));
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                self.line(&format!("if ({c}) {{"));
                self.depth += 1;
                self.stmts(then)?;
                self.depth -= 1;
                if !els.is_empty() {
                    self.line("} else {");
                    self.depth += 1;
                    self.stmts(els)?;
                    self.depth -= 1;
                }
                self.line("}");
            }
            Stmt::Copy { dst, src, elems } => {
                // memcpy semantics: the views never overlap.
                let (d, so) = (self.expr(&dst.offset)?, self.expr(&src.offset)?);
                self.flat_loop(*elems, &format!("p{}[{d} + i] = p{}[{so} + i];", dst.buf, src.buf))?;
            }
            Stmt::Lookup { x, y, table, elems } => {
                // y[i] = table[x[i] + 128] on int8 views (q.lookup).
                let (xo, yo, to) = (self.expr(&x.offset)?, self.expr(&y.offset)?, self.expr(&table.offset)?);
                let (xb, yb, tb) = (x.buf, y.buf, table.buf);
                self.flat_loop(
                    *elems,
                    &format!("p{yb}[{yo} + i] = p{tb}[{to} + (int64_t)p{xb}[{xo} + i] + 128];"),
                )?;
            }
            Stmt::Gemm { spec, a, b, c, bias, scratch: _ } => {
                if spec.b_prepacked {
                    return Err(
                        "a GEMM with a prepacked B operand (portable lowering never makes one)".into()
                    );
                }
                self.gemm(spec, a, b, c, bias.as_ref())?;
            }
            Stmt::QGemm { .. } => {
                return Err(
                    "int8 GEMM statements (lowering emits them only for backends with an int8 GEMM routine; \
                            this backend lowers int8 products to plain integer loops)"
                        .into(),
                )
            }
        }
        Ok(())
    }

    /// `C[i][j] = (C[i][j] if accumulate) + Σ_p A[i][p]·B[p][j] + bias`, accumulated in the
    /// element type (f32 for half types), as the LLVM backend's loops for non-f32 products; the
    /// f32 routine sums in another order, within rounding of this one.
    fn gemm(
        &mut self,
        spec: &crate::kir::GemmSpec,
        a: &View,
        b: &View,
        c: &View,
        bias: Option<&GemmBias>,
    ) -> Result<(), EmitError> {
        let k = self.k;
        let s = spec.shape;
        let t = k.params[c.buf].ty;
        let ct = if matches!(t, Ty::F16 | Ty::BF16) { Ty::F32 } else { t };
        let (ao, bo, co) = (self.expr(&a.offset)?, self.expr(&b.offset)?, self.expr(&c.offset)?);
        let ai = if s.a_trans { format!("p * {} + i", s.lda) } else { format!("i * {} + p", s.lda) };
        let bi = if s.b_trans { format!("j * {} + p", s.ldb) } else { format!("p * {} + j", s.ldb) };
        let av = conv(&format!("p{}[{ao} + {ai}]", a.buf), k.params[a.buf].ty, ct);
        let bv = conv(&format!("p{}[{bo} + {bi}]", b.buf), k.params[b.buf].ty, ct);
        let cidx = format!("p{}[{co} + i * {} + j]", c.buf, s.ldc);
        let prod = arith(BinOp::Mul, &av, &bv, ct);
        let sum = arith(BinOp::Add, "acc", &prod, ct);
        let mut value = "acc".to_string();
        if spec.accumulate {
            value = arith(BinOp::Add, &conv(&cidx, t, ct), &value, ct);
        }
        if let Some(bias) = bias {
            let bo = self.expr(&bias.view.offset)?;
            let bt = k.params[bias.view.buf].ty;
            let which = if bias.per_row { "i" } else { "j" };
            let bv = conv(&format!("p{}[{bo} + {which}]", bias.view.buf), bt, ct);
            value = arith(BinOp::Add, &value, &bv, ct);
        }
        let value = conv(&value, ct, t);
        self.line("{");
        self.depth += 1;
        self.line("int64_t i, j, p;");
        self.line(&format!("{} acc;", cty(ct)));
        self.counted(
            "i",
            Ty::Idx,
            s.m as u64,
            |e| {
                e.counted(
                    "j",
                    Ty::Idx,
                    s.n as u64,
                    |e| {
                        e.line(&format!("acc = {};", zero(ct)));
                        e.counted(
                            "p",
                            Ty::Idx,
                            s.k as u64,
                            |e| {
                                e.line(&format!("acc = {sum};"));
                                Ok(())
                            },
                            true,
                        )?;
                        e.line(&format!("{cidx} = {value};"));
                        Ok(())
                    },
                    false,
                )
            },
            false,
        )?;
        self.depth -= 1;
        self.line("}");
        Ok(())
    }

    /// A C++ expression of type `cty(k.ty(x))`.
    fn expr(&self, x: &Expr) -> Result<String, EmitError> {
        let k = self.k;
        Ok(match x {
            Expr::FConst(v, t) => fconst(*v, *t),
            Expr::IConst(v, t) => iconst(*v, *t),
            Expr::Var(v) => format!("v{v}"),
            Expr::Load(b, i) => {
                let i = self.expr(i)?;
                if k.params[*b].ty == Ty::Bool {
                    format!("(p{b}[{i}] != 0)")
                } else {
                    format!("p{b}[{i}]")
                }
            }
            Expr::Un(op, a) => {
                let t = k.ty(a);
                check_ty(t)?;
                unary(*op, &self.expr(a)?, t)?
            }
            Expr::Bin(op, a, b) => {
                let t = k.ty(a);
                check_ty(t)?;
                let vb = conv(&self.expr(b)?, k.ty(b), t);
                if t.is_float()
                    && !matches!(
                        op,
                        BinOp::Add
                            | BinOp::Sub
                            | BinOp::Mul
                            | BinOp::Div
                            | BinOp::Rem
                            | BinOp::Min
                            | BinOp::Max
                    )
                {
                    return Err(format!("{op:?} on floats"));
                }
                arith(*op, &self.expr(a)?, &vb, t)
            }
            Expr::Cmp(op, a, b) => {
                let t = k.ty(a);
                let vb = conv(&self.expr(b)?, k.ty(b), t);
                let o = op.symbol();
                // Float `!=` is unordered (true for NaN), the others ordered: LLVM's UNE/O*.
                format!("({} {o} {vb})", self.expr(a)?)
            }
            Expr::Select(c, a, b) => {
                let t = k.ty(a);
                let vb = conv(&self.expr(b)?, k.ty(b), t);
                format!("(({}) ? {} : {vb})", self.expr(c)?, self.expr(a)?)
            }
            Expr::Cast(t, a) => {
                check_ty(*t)?;
                conv(&self.expr(a)?, k.ty(a), *t)
            }
            Expr::Math(f, args) => {
                let t = k.ty(&args[0]);
                check_ty(t)?;
                let vals: Vec<String> = args
                    .iter()
                    .map(|a| Ok(conv(&self.expr(a)?, k.ty(a), t)))
                    .collect::<Result<_, EmitError>>()?;
                math(*f, &vals, t)
            }
        })
    }
}

/// `0` of a type.
fn zero(t: Ty) -> String {
    if t.is_float() {
        fconst(0.0, t)
    } else {
        format!("({})0", cty(t))
    }
}

/// A float literal that reads back as exactly `v` in type `t`.
pub fn fconst(v: f64, t: Ty) -> String {
    let (suffix, ty) = if t == Ty::F64 { ("", "double") } else { ("f", "float") };
    if v.is_nan() {
        return format!("(({ty})NAN)");
    }
    if v.is_infinite() {
        return if v > 0.0 { format!("(({ty})INFINITY)") } else { format!("(-({ty})INFINITY)") };
    }
    // Rust's shortest round-trip form; C++ parses decimal literals correctly rounded.
    let mut s = if t == Ty::F64 { format!("{v:?}") } else { format!("{:?}", v as f32) };
    if !s.contains(['.', 'e', 'E']) {
        s += ".0";
    }
    if s.starts_with('-') {
        format!("({s}{suffix})")
    } else {
        format!("{s}{suffix}")
    }
}

/// An integer literal of type `t`: the value truncated to the type's width, as LLVM's
/// `const_int` does.
pub fn iconst(v: i64, t: Ty) -> String {
    match t {
        Ty::Bool => if v & 1 != 0 { "true" } else { "false" }.into(),
        // Index arithmetic stays readable: plain literals promote to int64_t next to an index.
        Ty::Idx if (i32::MIN as i64..=i32::MAX as i64).contains(&v) => {
            if v < 0 {
                format!("({v})")
            } else {
                v.to_string()
            }
        }
        _ if (i32::MIN as i64 + 1..=i32::MAX as i64).contains(&v) => format!("(({}){v})", cty(t)),
        _ => format!("(({})0x{:x}ULL)", cty(t), v as u64),
    }
}

/// Numeric conversion with the LLVM backend's semantics: to `Bool` is `!= 0`, float→int
/// saturates with NaN → 0, int→int truncates or extends by the source's signedness.
pub fn conv(v: &str, from: Ty, to: Ty) -> String {
    if from == to {
        return v.to_string();
    }
    if to == Ty::Bool {
        return format!("({v} != 0)");
    }
    match (from.is_float(), to.is_float()) {
        (true, false) => {
            let b = bits(to) as i32;
            let (lo, hi) =
                if to.is_signed() { (-(2f64.powi(b - 1)), 2f64.powi(b - 1)) } else { (0.0, 2f64.powi(b)) };
            let (min, max) = if to.is_signed() {
                (iconst_full(i64::MIN >> (64 - b), to), iconst_full(i64::MAX >> (64 - b), to))
            } else {
                (format!("({})0", cty(to)), format!("({})0x{:x}ULL", cty(to), u64::MAX >> (64 - b)))
            };
            format!(
                "edgec_f2i<{}, {}>({v}, {}, {}, {min}, {max})",
                cty(to),
                cty(from),
                fconst(lo, from),
                fconst(hi, from)
            )
        }
        _ => format!("(({}){v})", cty(to)),
    }
}

/// An integer constant of any value of `t`, `INT64_MIN` included.
fn iconst_full(v: i64, t: Ty) -> String {
    if v == i64::MIN {
        format!("(({})(-0x7fffffffffffffffLL - 1))", cty(t))
    } else {
        format!("(({}){v}LL)", cty(t))
    }
}

/// `a op b` on two values of type `t`.
fn arith(op: BinOp, a: &str, b: &str, t: Ty) -> String {
    let c = cty(t);
    if t.is_float() {
        return match op {
            BinOp::Add => format!("({a} + {b})"),
            BinOp::Sub => format!("({a} - {b})"),
            BinOp::Mul => format!("({a} * {b})"),
            BinOp::Div => format!("({a} / {b})"),
            // fmod: the sign of the dividend.
            BinOp::Rem => format!("std::fmod({a}, {b})"),
            // NaN-propagating, -0 < +0 (llvm.minimum / llvm.maximum).
            BinOp::Min => format!("edgec_fminimum<{c}>({a}, {b})"),
            BinOp::Max => format!("edgec_fmaximum<{c}>({a}, {b})"),
            _ => unreachable!("checked by the caller"),
        };
    }
    if t == Ty::Idx && matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul) {
        // Index arithmetic never comes near 2^63: plain, readable C++.
        let o = match op {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            _ => "*",
        };
        return format!("({a} {o} {b})");
    }
    let w = wrap_ty(t);
    match op {
        // Two's complement wrapping, done in an unsigned type where C++ defines it.
        BinOp::Add => format!("(({c})(({w}){a} + ({w}){b}))"),
        BinOp::Sub => format!("(({c})(({w}){a} - ({w}){b}))"),
        BinOp::Mul => format!("(({c})(({w}){a} * ({w}){b}))"),
        BinOp::Div => format!("(({c})({a} / {b}))"),
        BinOp::Rem => format!("(({c})({a} % {b}))"),
        BinOp::Min => format!("edgec_imin<{c}>({a}, {b})"),
        BinOp::Max => format!("edgec_imax<{c}>({a}, {b})"),
        BinOp::And => format!("(({c})({a} & {b}))"),
        BinOp::Or => format!("(({c})({a} | {b}))"),
        BinOp::Xor => format!("(({c})({a} ^ {b}))"),
        // Shifting by the width or more gives 0 (a sign fill for signed >>), as in LLVM's code.
        BinOp::Shl => format!("edgec_shl<{c}, {w}>({a}, {b})"),
        BinOp::Shr if t.is_signed() => format!("edgec_ashr<{c}, {w}>({a}, {b})"),
        BinOp::Shr => format!("edgec_lshr<{c}, {w}>({a}, {b})"),
    }
}

fn unary(op: UnOp, a: &str, t: Ty) -> Result<String, EmitError> {
    let c = cty(t);
    if t.is_float() {
        return Ok(match op {
            UnOp::Neg => format!("(-{a})"),
            UnOp::Abs => format!("std::fabs({a})"),
            UnOp::Sqrt => format!("std::sqrt({a})"),
            UnOp::Floor => format!("std::floor({a})"),
            UnOp::Ceil => format!("std::ceil({a})"),
            // Half to even: the default rounding mode.
            UnOp::Round => format!("std::nearbyint({a})"),
            UnOp::Trunc => format!("std::trunc({a})"),
            UnOp::IsNan => format!("({a} != {a})"),
            UnOp::IsInf => format!("(std::fabs({a}) == ({c})INFINITY)"),
            UnOp::IsPosInf => format!("({a} == ({c})INFINITY)"),
            UnOp::IsNegInf => format!("({a} == -({c})INFINITY)"),
            UnOp::Not => return Err("bitwise not of a float".into()),
        });
    }
    let w = wrap_ty(t);
    Ok(match op {
        UnOp::Neg if t == Ty::Bool => a.to_string(),
        UnOp::Neg => format!("(({c})(({w})0 - ({w}){a}))"),
        // llvm.abs without the poison flag: |INT_MIN| = INT_MIN.
        UnOp::Abs if t.is_signed() => format!("(({c})({a} < 0 ? ({w})0 - ({w}){a} : ({w}){a}))"),
        UnOp::Abs => a.to_string(),
        UnOp::Not if t == Ty::Bool => format!("(!{a})"),
        UnOp::Not => format!("(({c})~{a})"),
        UnOp::IsNan | UnOp::IsInf | UnOp::IsPosInf | UnOp::IsNegInf => "false".into(),
        UnOp::Sqrt => conv(&format!("std::sqrt({})", conv(a, t, Ty::F64)), Ty::F64, t),
        UnOp::Floor | UnOp::Ceil | UnOp::Round | UnOp::Trunc => a.to_string(),
    })
}

/// A transcendental function from `<cmath>` in the argument's precision (`float` overloads for
/// f32); sigmoid in the overflow-free form the LLVM backend uses.
fn math(f: MathFn, args: &[String], t: Ty) -> String {
    let c = cty(t);
    let a = &args[0];
    match f {
        MathFn::Sigmoid => format!("edgec_sigmoid<{c}>({a})"),
        MathFn::Pow => format!("std::pow({a}, {})", args[1]),
        _ => format!("std::{}({a})", f.name()),
    }
}

/// The helpers every kernel may use: wrapping shifts, NaN-propagating min/max, saturating
/// float→int conversion, sigmoid. Plain templates, synthesizable as they are.
pub const DEFINES_H: &str = r#"// Helpers of the edgec-generated kernels: the semantics of edgec's kernel IR where plain C++
// would be undefined (shifts by the width or more, float->int out of range) or different
// (min/max propagate NaN and order -0 < +0).
#ifndef EDGEC_HLS_DEFINES_H
#define EDGEC_HLS_DEFINES_H

#include <cmath>
#include <stdint.h>

// x << y; 0 when y is the width or more (or negative).
template <typename T, typename W> static inline T edgec_shl(T x, T y) {
  return (W)y >= (W)(sizeof(T) * 8) ? (T)0 : (T)((W)x << (W)y);
}
// Logical x >> y; 0 when y is the width or more.
template <typename T, typename W> static inline T edgec_lshr(T x, T y) {
  return (W)y >= (W)(sizeof(T) * 8) ? (T)0 : (T)((W)x >> (W)y);
}
// Arithmetic x >> y; fills with the sign when y is the width or more.
template <typename T, typename W> static inline T edgec_ashr(T x, T y) {
  W s = (W)y >= (W)(sizeof(T) * 8) ? (W)(sizeof(T) * 8 - 1) : (W)y;
  return (T)(x >> s);
}
template <typename T> static inline T edgec_imin(T a, T b) { return a < b ? a : b; }
template <typename T> static inline T edgec_imax(T a, T b) { return a > b ? a : b; }
// llvm.minimum / llvm.maximum: NaN if either is NaN; -0 < +0.
template <typename T> static inline T edgec_fminimum(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return std::signbit(a) ? a : b;
  return a < b ? a : b;
}
template <typename T> static inline T edgec_fmaximum(T a, T b) {
  if (a != a) return a;
  if (b != b) return b;
  if (a == b) return std::signbit(a) ? b : a;
  return a > b ? a : b;
}
// Float -> integer: truncates toward zero, saturates at [min, max], NaN -> 0 (lo and hi are
// the range's bounds as floats: x >= hi saturates high, x < lo low).
template <typename T, typename F> static inline T edgec_f2i(F x, F lo, F hi, T min, T max) {
  if (x != x) return (T)0;
  if (x >= hi) return max;
  if (x < lo) return min;
  return (T)x;
}
// e = exp(-|x|) in (0, 1]: sigmoid = (x < 0 ? e : 1) / (1 + e), no overflow.
template <typename T> static inline T edgec_sigmoid(T x) {
  T e = std::exp(-std::fabs(x));
  return (x < (T)0 ? e : (T)1) / ((T)1 + e);
}

#endif
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(fconst(0.5, Ty::F32), "0.5f");
        assert_eq!(fconst(1.0, Ty::F32), "1.0f");
        assert_eq!(fconst(-2.0, Ty::F64), "(-2.0)");
        assert_eq!(fconst(f64::NEG_INFINITY, Ty::F32), "(-(float)INFINITY)");
        assert_eq!(iconst(3, Ty::Idx), "3");
        assert_eq!(iconst(-1, Ty::I32), "((int32_t)-1)");
        assert_eq!(iconst(i64::MIN, Ty::I64), "((int64_t)0x8000000000000000ULL)");
        assert_eq!(iconst(1, Ty::Bool), "true");
    }

    #[test]
    fn conversions() {
        assert_eq!(conv("x", Ty::I32, Ty::F32), "((float)x)");
        assert_eq!(conv("x", Ty::F32, Ty::Bool), "(x != 0)");
        assert_eq!(
            conv("x", Ty::F32, Ty::I8),
            "edgec_f2i<int8_t, float>(x, (-128.0f), 128.0f, ((int8_t)-128LL), ((int8_t)127LL))"
        );
    }

    /// `Stmt::Gemm` with every combination of transposes, padded leading dimensions, view
    /// offsets, accumulation and bias kind, built with g++ and run, against a plain Rust
    /// product (small integers, so the float results are exact).
    #[test]
    fn gemm_statements_honour_every_flag() {
        use crate::kir::{idx, GemmShape, GemmSpec};
        let (m, n, k) = (3usize, 4usize, 5usize);
        let dir = std::env::temp_dir().join(format!("edgec-hls-gemm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut case = 0;
        for a_trans in [false, true] {
            for b_trans in [false, true] {
                for accumulate in [false, true] {
                    for bias in [None, Some(true), Some(false)] {
                        case += 1;
                        let lda = if a_trans { m } else { k } + 2;
                        let ldb = if b_trans { k } else { n } + 1;
                        let ldc = n + 3;
                        let shape = GemmShape { m, n, k, a_trans, b_trans, lda, ldb, ldc };
                        let (oa, ob, oc, obias) = (2usize, 1usize, 3usize, 1usize);
                        let la = oa + lda * if a_trans { k } else { m };
                        let lb = ob + ldb * if b_trans { n } else { k };
                        let lc = oc + ldc * m;
                        let lbias = obias + m.max(n);
                        let val = |i: usize, s: usize| ((i * 7 + s) % 11) as f32 - 5.0;
                        let a: Vec<f32> = (0..la).map(|i| val(i, 1)).collect();
                        let b: Vec<f32> = (0..lb).map(|i| val(i, 2)).collect();
                        let c0: Vec<f32> = (0..lc).map(|i| val(i, 3)).collect();
                        let bv: Vec<f32> = (0..lbias).map(|i| val(i, 4)).collect();
                        let mut want = c0.clone();
                        for i in 0..m {
                            for j in 0..n {
                                let mut acc = 0.0f32;
                                for p in 0..k {
                                    let x = if a_trans { a[oa + p * lda + i] } else { a[oa + i * lda + p] };
                                    let y = if b_trans { b[ob + j * ldb + p] } else { b[ob + p * ldb + j] };
                                    acc += x * y;
                                }
                                let at = oc + i * ldc + j;
                                let mut v = acc;
                                if accumulate {
                                    v += c0[at];
                                }
                                if let Some(per_row) = bias {
                                    v += bv[obias + if per_row { i } else { j }];
                                }
                                want[at] = v;
                            }
                        }
                        let mut kern = Kernel::new("gemm_case");
                        let pa = kern.param(Ty::F32, la as u64, Access::Read);
                        let pb = kern.param(Ty::F32, lb as u64, Access::Read);
                        let pc = kern.param(Ty::F32, lc as u64, Access::Write);
                        let pbias = kern.param(Ty::F32, lbias as u64, Access::Read);
                        let view = |buf, off: usize| View { buf, offset: idx(off as i64) };
                        kern.body = vec![Stmt::Gemm {
                            spec: GemmSpec { shape, accumulate, b_prepacked: false },
                            a: view(pa, oa),
                            b: view(pb, ob),
                            c: view(pc, oc),
                            bias: bias.map(|per_row| GemmBias { view: view(pbias, obias), per_row }),
                            scratch: None,
                        }];
                        let list = |v: &[f32]| {
                            v.iter().map(|x| fconst(*x as f64, Ty::F32)).collect::<Vec<_>>().join(", ")
                        };
                        let src = format!(
                            "{DEFINES_H}\n#include <stdio.h>\n{}\nstatic float a[] = {{{}}}, b[] = {{{}}}, c[] = {{{}}}, bias[] = {{{}}};\n\
                             int main() {{\n  gemm_case(a, b, c, bias);\n  for (int i = 0; i < {lc}; i++) printf(\"%.9g\\n\", c[i]);\n  return 0;\n}}\n",
                            kernel(&kern).unwrap(),
                            list(&a),
                            list(&b),
                            list(&c0),
                            list(&bv)
                        );
                        let cpp = dir.join(format!("case{case}.cpp"));
                        let exe = dir.join(format!("case{case}"));
                        std::fs::write(&cpp, &src).unwrap();
                        let build = std::process::Command::new("g++")
                            .args(["-std=c++14", "-O1", "-o"])
                            .arg(&exe)
                            .arg(&cpp)
                            .output()
                            .unwrap();
                        assert!(build.status.success(), "{}\n{src}", String::from_utf8_lossy(&build.stderr));
                        let out = std::process::Command::new(&exe).output().unwrap();
                        let got: Vec<f32> = String::from_utf8_lossy(&out.stdout)
                            .lines()
                            .map(|l| l.parse().unwrap())
                            .collect();
                        assert_eq!(got, want, "a_trans {a_trans} b_trans {b_trans} accumulate {accumulate} bias {bias:?}\n{src}");
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `Stmt::Lookup` (`y[i] = table[x[i] + 128]`) and `Stmt::Copy` on offset views, built with
    /// g++ and run.
    #[test]
    fn lookup_and_copy_statements() {
        use crate::kir::idx;
        let mut kern = Kernel::new("lut");
        let x = kern.param(Ty::I8, 10, Access::Read);
        let t = kern.param(Ty::I8, 258, Access::Read);
        let y = kern.param(Ty::I8, 12, Access::Write);
        let z = kern.param(Ty::I8, 12, Access::Write);
        let view = |buf, off: i64| View { buf, offset: idx(off) };
        kern.body = vec![
            Stmt::Lookup { x: view(x, 1), y: view(y, 2), table: view(t, 2), elems: 8 },
            Stmt::Copy { dst: view(z, 3), src: view(y, 2), elems: 8 },
        ];
        let xs: Vec<i8> = vec![0, -128, 127, -1, 0, 1, 5, -5, 100, 9];
        let table: Vec<i8> = (0..258).map(|i| ((i * 37 + 11) % 256) as u8 as i8).collect();
        let list = |v: &[i8]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
        let src = format!(
            "{DEFINES_H}\n#include <stdio.h>\n{}\nstatic int8_t x[] = {{{}}}, t[] = {{{}}}, y[12], z[12];\n\
             int main() {{\n  lut(x, t, y, z);\n  for (int i = 0; i < 12; i++) printf(\"%d %d\\n\", y[i], z[i]);\n  return 0;\n}}\n",
            kernel(&kern).unwrap(),
            list(&xs),
            list(&table)
        );
        let dir = std::env::temp_dir().join(format!("edgec-hls-lut-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cpp, exe) = (dir.join("lut.cpp"), dir.join("lut"));
        std::fs::write(&cpp, &src).unwrap();
        let build = std::process::Command::new("g++")
            .args(["-std=c++14", "-O1", "-o"])
            .arg(&exe)
            .arg(&cpp)
            .output()
            .unwrap();
        assert!(build.status.success(), "{}\n{src}", String::from_utf8_lossy(&build.stderr));
        let out = String::from_utf8(std::process::Command::new(&exe).output().unwrap().stdout).unwrap();
        let mut want_y = [0i8; 12];
        for i in 0..8 {
            want_y[2 + i] = table[2 + (xs[1 + i] as i32 + 128) as usize];
        }
        let mut want_z = [0i8; 12];
        want_z[3..11].copy_from_slice(&want_y[2..10]);
        let want: String = (0..12).map(|i| format!("{} {}\n", want_y[i], want_z[i])).collect();
        assert_eq!(out, want, "{src}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
