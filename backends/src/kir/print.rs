//! The text form of kernel IR: a stable, readable listing of a [`Kernel`] (a whole lowered
//! program prints with `lower::print_program`), for filetests (`// test: lower`), debugging and review of lowering changes. The
//! form is specified in `docs/kernel-ir.md`; in short:
//!
//! ```text
//! program @main
//!   input in0 "a": f32[2x3]
//!   input in1 "b": f32[3]
//!   output out0 "y": f32[2x3]
//!   arena 0 B: lower bound 0 B, IR order 0 B, greedy by size 0 B, no reuse 0 B, 0 buffers, greedy-by-size, align 64
//!   graph ops 1
//!
//! k0: kernel add_0(p0: f32[6] read, p1: f32[3] read, p2: f32[6] write)
//!     inplace p0 -> p2
//! {
//!   for v0 in 0..2 {
//!     for v1 in 0..3 {
//!       p2[v0 * 3 + v1] = p0[v0 * 3 + v1] + p1[v1]
//!     }
//!   }
//! }
//!
//! calls
//!   k0(in0, in1, out0) "add"
//! ```
//!
//! Names are positional, so the text only depends on the program: kernels `k<i>`, constants
//! `c<i>`, graph inputs and outputs `in<i>`/`out<i>`, kernel parameters `p<i>`, scalar variables
//! `v<i>`. Index (`idx`) constants print bare; every other constant carries its type
//! (`0.5:f32`, `-128:i32`). Binary operators print infix with the usual precedence (only the
//! parentheses the precedence needs, plus always those around and inside a bitwise operation);
//! everything else prints as a call (`max(a, b)`,
//! `select(c, a, b)`, `f32(x)` for a cast, `exp(x)`). Constants' bytes are not printed, only
//! their size and a 64-bit FNV-1a hash, so a weight change shows without flooding the text.
//! Printing is deterministic: it only walks vectors in order and formats floats with Rust's
//! shortest round-trip form.

use super::{Access, BinOp, Expr, Kernel, KernelId, Param, Stmt, Ty, UnOp, View};
use std::fmt::{self, Write};

/// The text form of one kernel, without a program-level id (`kernel NAME(PARAMS) { BODY }`).
pub fn print_kernel(k: &Kernel) -> String {
    let mut s = String::new();
    write_kernel(&mut s, k, None).expect("writing to a String does not fail");
    s
}

impl fmt::Display for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_kernel(f, self, None)
    }
}

fn access(a: Access) -> &'static str {
    match a {
        Access::Read => "read",
        Access::Write => "write",
        Access::Scratch => "scratch",
    }
}

/// Writes a kernel's text form, with its program-level id when it has one.
pub fn write_kernel(w: &mut impl Write, k: &Kernel, id: Option<KernelId>) -> fmt::Result {
    if let Some(i) = id {
        write!(w, "{i}: ")?;
    }
    let params: Vec<String> = k
        .params
        .iter()
        .enumerate()
        .map(|(i, Param { ty, len, access: a })| format!("p{i}: {}[{len}] {}", ty.name(), access(*a)))
        .collect();
    writeln!(w, "kernel {}({})", k.name, params.join(", "))?;
    for (i, o) in &k.inplace {
        writeln!(w, "    inplace p{i} -> p{o}")?;
    }
    if let Some((out, runs)) = &k.concat {
        let runs: Vec<String> = runs.iter().map(|(p, at)| format!("p{p} at {at}")).collect();
        writeln!(w, "    concat p{out} <- {}", runs.join(", "))?;
    }
    writeln!(w, "{{")?;
    write_stmts(w, k, &k.body, 1)?;
    writeln!(w, "}}")
}

fn write_stmts(w: &mut impl Write, k: &Kernel, body: &[Stmt], depth: usize) -> fmt::Result {
    for s in body {
        write_stmt(w, k, s, depth)?;
    }
    Ok(())
}

fn view(v: &View) -> String {
    format!("p{}[{}]", v.buf, print_expr(&v.offset))
}

fn write_stmt(w: &mut impl Write, k: &Kernel, s: &Stmt, depth: usize) -> fmt::Result {
    let pad = "  ".repeat(depth);
    match s {
        Stmt::For { var, extent, body } => {
            // Loop variables are indices; another type is spelled out.
            let ty = match k.vars.get(*var) {
                Some(Ty::Idx) | None => String::new(),
                Some(t) => format!(": {}", t.name()),
            };
            writeln!(w, "{pad}for v{var}{ty} in 0..{extent} {{")?;
            write_stmts(w, k, body, depth + 1)?;
            writeln!(w, "{pad}}}")
        }
        Stmt::Store { buf, index, value } => {
            writeln!(w, "{pad}p{buf}[{}] = {}", print_expr(index), print_expr(value))
        }
        Stmt::Let { var, value } => {
            let ty = k.vars.get(*var).map_or("?", |t| t.name());
            writeln!(w, "{pad}let v{var}: {ty} = {}", print_expr(value))
        }
        Stmt::Assign { var, value } => writeln!(w, "{pad}v{var} = {}", print_expr(value)),
        Stmt::If { cond, then, els } => {
            writeln!(w, "{pad}if {} {{", print_expr(cond))?;
            write_stmts(w, k, then, depth + 1)?;
            if !els.is_empty() {
                writeln!(w, "{pad}}} else {{")?;
                write_stmts(w, k, els, depth + 1)?;
            }
            writeln!(w, "{pad}}}")
        }
        Stmt::Gemm { spec, a, b, c, bias, scratch } => {
            let mut f = product_fields(&spec.shape, a, b, c, spec.b_prepacked);
            if spec.accumulate {
                f.push("accumulate".into());
            }
            if let Some(bias) = bias {
                f.push(format!(
                    "bias={} {}",
                    view(&bias.view),
                    if bias.per_row { "per_row" } else { "per_col" }
                ));
            }
            if let Some(s) = scratch {
                f.push(format!("scratch=p{s}"));
            }
            writeln!(w, "{pad}gemm {}", f.join(" "))
        }
        Stmt::QGemm { spec, a, b, c, bias, mult, shift, scratch } => {
            let mut f = product_fields(&spec.shape, a, b, c, false);
            f.push(format!("zp=({}, {}, {})", spec.a_zp, spec.b_zp, spec.c_zp));
            f.push(format!("act=[{}, {}]", spec.act_min, spec.act_max));
            f.push(
                match spec.channel {
                    crate::quant::QChannel::PerRow => "per_row",
                    crate::quant::QChannel::PerCol => "per_col",
                }
                .into(),
            );
            f.push(
                match spec.weights {
                    crate::quant::QWeights::A => "weights=a",
                    crate::quant::QWeights::B => "weights=b",
                }
                .into(),
            );
            if spec.prepacked {
                f.push("prepacked".into());
            }
            f.push(match spec.out {
                crate::quant::QOut::I8 => "out=i8".into(),
                crate::quant::QOut::I32 => "out=i32".into(),
                crate::quant::QOut::F32 { scale_bits } => {
                    format!("out=f32 scale={:?}", f32::from_bits(scale_bits))
                }
                crate::quant::QOut::Scaled => "out=scaled".into(),
            });
            if let Some(bias) = bias {
                f.push(format!("bias={}", view(bias)));
            }
            f.push(format!("mult={} shift={}", view(mult), view(shift)));
            if let Some(s) = scratch {
                f.push(format!("scratch=p{s}"));
            }
            writeln!(w, "{pad}qgemm {}", f.join(" "))
        }
        Stmt::Copy { dst, src, elems } => {
            writeln!(w, "{pad}copy {} <- {} elems={elems}", view(dst), view(src))
        }
        Stmt::Lookup { x, y, table, elems } => {
            writeln!(w, "{pad}lookup {} <- {} table={} elems={elems}", view(y), view(x), view(table))
        }
    }
}

/// Binding strength of an infix operator (higher binds tighter). C and Rust agree on these
/// except for the bitwise operators against comparisons, so [`operand`] always parenthesizes
/// an infix operand of a bitwise operator and a bitwise operand of any infix operator.
fn precedence(e: &Expr) -> u8 {
    match e {
        Expr::Cmp(..) => 1,
        Expr::Bin(op, ..) => match op {
            BinOp::Or => 2,
            BinOp::Xor => 3,
            BinOp::And => 4,
            BinOp::Shl | BinOp::Shr => 5,
            BinOp::Add | BinOp::Sub => 6,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 7,
            // Printed as calls.
            BinOp::Min | BinOp::Max => u8::MAX,
        },
        _ => u8::MAX,
    }
}

fn un_name(op: UnOp) -> &'static str {
    match op {
        UnOp::Neg => "neg",
        UnOp::Abs => "abs",
        UnOp::Sqrt => "sqrt",
        UnOp::Floor => "floor",
        UnOp::Ceil => "ceil",
        UnOp::Round => "round",
        UnOp::Trunc => "trunc",
        UnOp::Not => "not",
        UnOp::IsNan => "isnan",
        UnOp::IsInf => "isinf",
        UnOp::IsPosInf => "isposinf",
        UnOp::IsNegInf => "isneginf",
    }
}

fn bin_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Rem => "%",
        BinOp::Min => "min",
        BinOp::Max => "max",
        BinOp::And => "&",
        BinOp::Or => "|",
        BinOp::Xor => "^",
        BinOp::Shl => "<<",
        BinOp::Shr => ">>",
    }
}

/// The fields the f32 and int8 products share: shape, operands with their leading dims and
/// transposes (and `b_prepacked` for the f32 GEMM).
fn product_fields(shape: &super::GemmShape, a: &View, b: &View, c: &View, b_prepacked: bool) -> Vec<String> {
    let mut f = vec![
        format!("m={} n={} k={}", shape.m, shape.n, shape.k),
        format!("a={} lda={}", view(a), shape.lda),
    ];
    if shape.a_trans {
        f.push("a_trans".into());
    }
    f.push(format!("b={} ldb={}", view(b), shape.ldb));
    if shape.b_trans {
        f.push("b_trans".into());
    }
    if b_prepacked {
        f.push("b_prepacked".into());
    }
    f.push(format!("c={} ldc={}", view(c), shape.ldc));
    f
}

fn is_bitwise(e: &Expr) -> bool {
    matches!(e, Expr::Bin(BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Shl | BinOp::Shr, ..))
}

fn is_infix(e: &Expr) -> bool {
    precedence(e) != u8::MAX
}

/// Operand `e` of the infix expression `parent`: parenthesized when it binds looser than the
/// operator (or as loosely, on the right, since the operators are left-associative), and
/// whenever a bitwise operator is involved (see [`precedence`]).
fn operand(e: &Expr, parent: &Expr, right: bool) -> String {
    let (p, outer) = (precedence(e), precedence(parent));
    let bitwise = is_infix(e) && (is_bitwise(e) || is_bitwise(parent));
    if bitwise || p < outer || (right && p == outer) {
        format!("({})", print_expr(e))
    } else {
        print_expr(e)
    }
}

/// The text of an expression.
pub fn print_expr(e: &Expr) -> String {
    match e {
        Expr::FConst(x, t) => format!("{x:?}:{}", t.name()),
        Expr::IConst(x, Ty::Idx) => x.to_string(),
        Expr::IConst(x, t) => format!("{x}:{}", t.name()),
        Expr::Var(v) => format!("v{v}"),
        Expr::Load(b, i) => format!("p{b}[{}]", print_expr(i)),
        Expr::Un(op, a) => format!("{}({})", un_name(*op), print_expr(a)),
        Expr::Bin(op @ (BinOp::Min | BinOp::Max), a, b) => {
            format!("{}({}, {})", bin_symbol(*op), print_expr(a), print_expr(b))
        }
        Expr::Bin(op, a, b) => {
            format!("{} {} {}", operand(a, e, false), bin_symbol(*op), operand(b, e, true))
        }
        Expr::Cmp(op, a, b) => {
            format!("{} {} {}", operand(a, e, false), op.symbol(), operand(b, e, true))
        }
        Expr::Select(c, a, b) => format!("select({}, {}, {})", print_expr(c), print_expr(a), print_expr(b)),
        Expr::Cast(t, a) => format!("{}({})", t.name(), print_expr(a)),
        Expr::Math(f, args) => {
            let args: Vec<String> = args.iter().map(print_expr).collect();
            format!("{}({})", f.name(), args.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kir::*;

    #[test]
    fn precedence_keeps_only_needed_parentheses() {
        let (a, b, c) = (Expr::Var(0), Expr::Var(1), Expr::Var(2));
        let e = add(mul(a.clone(), idx(8)), b.clone());
        assert_eq!(print_expr(&e), "v0 * 8 + v1");
        let e = mul(add(a.clone(), b.clone()), c.clone());
        assert_eq!(print_expr(&e), "(v0 + v1) * v2");
        let e = sub(a.clone(), sub(b.clone(), c.clone()));
        assert_eq!(print_expr(&e), "v0 - (v1 - v2)");
        let e = cmp(CmpOp::Lt, add(a.clone(), idx(1)), load(3, b.clone()));
        assert_eq!(print_expr(&e), "v0 + 1 < p3[v1]");
        let e = cmp(CmpOp::Gt, bin(BinOp::And, a.clone(), b.clone()), bin(BinOp::Shr, c.clone(), idx(1)));
        assert_eq!(print_expr(&e), "(v0 & v1) > (v2 >> 1)");
        let e = bin(BinOp::Shr, add(a.clone(), b.clone()), idx(31));
        assert_eq!(print_expr(&e), "(v0 + v1) >> 31");
        let e = bin(BinOp::Max, cast(Ty::F32, a), fc(0.5, Ty::F32));
        assert_eq!(print_expr(&e), "max(f32(v0), 0.5:f32)");
        assert_eq!(print_expr(&Expr::IConst(-128, Ty::I32)), "-128:i32");
    }

    #[test]
    fn kernel_text() {
        let mut k = Kernel::new("relu");
        let x = k.param(Ty::F32, 6, Access::Read);
        let y = k.param(Ty::F32, 6, Access::Write);
        k.inplace.push((x, y));
        let body = k.nest(&[2, 3], |_, ix| {
            let i = linear(ix, &[3, 1]);
            vec![Stmt::Store {
                buf: y,
                index: i.clone(),
                value: bin(BinOp::Max, load(x, i), fc(0.0, Ty::F32)),
            }]
        });
        k.body = body;
        assert_eq!(
            k.to_string(),
            "kernel relu(p0: f32[6] read, p1: f32[6] write)
    inplace p0 -> p1
{
  for v0 in 0..2 {
    for v1 in 0..3 {
      p1[v0 * 3 + v1] = max(p0[v0 * 3 + v1], 0.0:f32)
    }
  }
}
"
        );
    }
}
