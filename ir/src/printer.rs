//! The text form. `parser.rs` reads exactly what this writes; print → parse → print is the
//! identity (tested on every filetest). The grammar is in `docs/ir.md`.
//!
//! ```text
//! func @main(%x: tensor<1x4xf32>) -> ("y": tensor<1x4xf32>) {
//!   %0 = builtin.constant {value = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : tensor<4xf32> loc("w")
//!   %1 = math.add %x, %0 : tensor<1x4xf32> loc("Add_0")
//!   func.return %1 loc(unknown)
//! }
//! ```
//! Named values (function parameters keep their ONNX names) print as `%name` or `%"any name"`;
//! all others are numbered in print order, so numbering never depends on arena order.

use crate::attr::Attr;
use crate::entity::{Block, Op, SecondaryMap, Value};
use crate::module::{Function, Module};
use crate::tensor::{ConstTensor, Tensor};
use crate::types::ScalarType;
use std::fmt::Write;

/// Constants with at most this many elements print as a readable list; larger ones as hex.
pub const INLINE_LIST_MAX: usize = 16;

/// Printing options.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrintOptions {
    /// Print constants larger than this many bytes as `dense_elided<N bytes, fnv:HASH>` (not
    /// parseable; for snapshots and logs of models with real weights).
    pub elide_constants_over: Option<usize>,
}

/// Quotes a string for the text form (Rust/JSON-style escapes).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether a value name can be printed bare after `%`.
pub fn is_bare_value_name(s: &str) -> bool {
    !s.is_empty()
        && !s.chars().next().is_some_and(|c| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'))
}

pub fn print_module(m: &Module) -> String {
    print_module_with(m, PrintOptions::default())
}

pub fn print_module_with(m: &Module, opts: PrintOptions) -> String {
    let mut out = String::new();
    for (i, f) in m.functions.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        print_function_into(&mut out, f, opts);
    }
    out
}

pub fn print_function(f: &Function) -> String {
    let mut out = String::new();
    print_function_into(&mut out, f, PrintOptions::default());
    out
}

struct Printer<'a> {
    f: &'a Function,
    opts: PrintOptions,
    names: SecondaryMap<Value, Option<u32>>,
    next: u32,
}

impl Printer<'_> {
    fn name(&mut self, v: Value) -> String {
        if let Some(n) = &self.f.values[v].name {
            return if is_bare_value_name(n) { format!("%{n}") } else { format!("%{}", quote(n)) };
        }
        if let Some(n) = self.names.get(v) {
            return format!("%{n}");
        }
        let n = self.next;
        self.next += 1;
        self.names.set(v, Some(n));
        format!("%{n}")
    }

    fn block(&mut self, out: &mut String, block: Block, indent: usize) {
        for &op in &self.f.blocks[block].ops {
            self.op(out, op, indent);
        }
    }

    fn op(&mut self, out: &mut String, op: Op, indent: usize) {
        let d = &self.f.ops[op];
        let pad = "  ".repeat(indent);
        out.push_str(&pad);
        if !d.results.is_empty() {
            let names: Vec<String> = d.results.iter().map(|&r| self.name(r)).collect();
            out.push_str(&names.join(", "));
            out.push_str(" = ");
        }
        out.push_str(d.kind.name());
        for (i, &o) in d.operands.iter().enumerate() {
            out.push_str(if i == 0 { " " } else { ", " });
            let n = self.name(o);
            out.push_str(&n);
        }
        if !d.attrs.is_empty() {
            out.push_str(" {");
            for (i, (k, a)) in d.attrs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                if is_bare_value_name(k) {
                    out.push_str(k);
                } else {
                    out.push_str(&quote(k));
                }
                out.push_str(" = ");
                print_attr(out, a, self.opts);
            }
            out.push('}');
        }
        if !d.regions.is_empty() {
            out.push_str(" (");
            for (ri, region) in d.regions.iter().enumerate() {
                if ri > 0 {
                    out.push_str(", ");
                }
                out.push_str("{\n");
                for &b in &region.blocks {
                    out.push_str(&pad);
                    out.push_str("^bb(");
                    for (i, &a) in self.f.blocks[b].args.iter().enumerate() {
                        if i > 0 {
                            out.push_str(", ");
                        }
                        let n = self.name(a);
                        let _ = write!(out, "{n}: {}", self.f.values[a].ty);
                    }
                    out.push_str("):\n");
                    self.block(out, b, indent + 1);
                }
                out.push_str(&pad);
                out.push('}');
            }
            out.push(')');
        }
        if !d.results.is_empty() {
            out.push_str(" : ");
            for (i, &r) in d.results.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{}", self.f.values[r].ty);
            }
        }
        let _ = writeln!(out, " {}", d.loc);
    }
}

fn print_function_into(out: &mut String, f: &Function, opts: PrintOptions) {
    let mut p = Printer { f, opts, names: SecondaryMap::with_default(None), next: 0 };
    let _ =
        write!(out, "func @{}(", if is_bare_value_name(&f.name) { f.name.clone() } else { quote(&f.name) });
    for (i, &a) in f.params().iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let n = p.name(a);
        let _ = write!(out, "{n}: {}", f.values[a].ty);
    }
    out.push_str(") -> (");
    let results = f.results();
    for (i, &r) in results.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let name = f.result_names.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(out, "{}: {}", quote(name), f.values[r].ty);
    }
    out.push_str(") {\n");
    p.block(out, f.body, 1);
    out.push_str("}\n");
}

fn fmt_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("nan");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
    } else {
        let _ = write!(out, "{v:?}");
    }
}

pub fn print_attr(out: &mut String, a: &Attr, opts: PrintOptions) {
    match a {
        Attr::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Attr::Float(v) => fmt_float(out, *v),
        Attr::Str(s) => out.push_str(&quote(s)),
        Attr::Ints(v) => {
            let _ = write!(out, "[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "));
        }
        Attr::Floats(v) => {
            out.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                fmt_float(out, *x);
            }
            out.push(']');
        }
        Attr::Strs(v) => {
            let _ = write!(out, "[{}]", v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", "));
        }
        Attr::Type(t) => out.push_str(t.name()),
        Attr::Tensor(t) => print_dense(out, t, opts),
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

fn print_dense(out: &mut String, t: &ConstTensor, opts: PrintOptions) {
    if let Some(limit) = opts.elide_constants_over {
        if t.bytes.len() > limit {
            let _ =
                write!(out, "dense_elided<{} bytes, fnv:{:016x}> : {}", t.bytes.len(), fnv1a(&t.bytes), t.ty);
            return;
        }
    }
    let n = t.ty.num_elements().unwrap_or(u64::MAX) as usize;
    let storage = t.ty.elem.storage();
    let as_list = n <= INLINE_LIST_MAX
        && match storage {
            // u64 lists go through i64; keep hex so values above i64::MAX stay exact.
            ScalarType::U64 => false,
            s if s.is_float() => list_is_exact(t),
            _ => true,
        };
    if as_list {
        if let Ok(v) = t.to_tensor() {
            out.push_str("dense<[");
            print_elements(out, &v);
            let _ = write!(out, "]> : {}", t.ty);
            return;
        }
    }
    out.push_str("dense<0x");
    for b in t.bytes.iter() {
        let _ = write!(out, "{b:02X}");
    }
    let _ = write!(out, "> : {}", t.ty);
}

/// Floats print as lists only when every element is finite-or-infinite (NaN payloads would be
/// lost) so that the list form is always exact.
fn list_is_exact(t: &ConstTensor) -> bool {
    match t.to_tensor() {
        Ok(v) => v.to_f64_vec().iter().all(|x| !x.is_nan()),
        Err(_) => false,
    }
}

fn print_elements(out: &mut String, v: &Tensor) {
    let mut first = true;
    let mut sep = |out: &mut String| {
        if !first {
            out.push_str(", ");
        }
        first = false;
    };
    match v {
        Tensor::F32(a) => a.iter().for_each(|x| {
            sep(out);
            fmt_f32(out, *x)
        }),
        Tensor::F16(a) => a.iter().for_each(|x| {
            sep(out);
            fmt_f32(out, x.to_f32())
        }),
        Tensor::BF16(a) => a.iter().for_each(|x| {
            sep(out);
            fmt_f32(out, x.to_f32())
        }),
        Tensor::F64(a) => a.iter().for_each(|x| {
            sep(out);
            fmt_float(out, *x)
        }),
        Tensor::Bool(a) => a.iter().for_each(|x| {
            sep(out);
            out.push_str(if *x { "true" } else { "false" })
        }),
        other => {
            for x in other.to_i64_vec().unwrap_or_default() {
                sep(out);
                let _ = write!(out, "{x}");
            }
        }
    }
}

fn fmt_f32(out: &mut String, v: f32) {
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "inf" } else { "-inf" });
    } else {
        let _ = write!(out, "{v:?}");
    }
}

/// The op reference (`docs/ops.md`), generated from the registry so that it never drifts from
/// the declarations: every op of [`OpKind::ALL`] grouped by dialect, with its summary,
/// signature, attributes (kind, whether required, documented default) and traits.
pub fn op_reference_markdown() -> String {
    use crate::ops::{AttrReq, OpKind};
    let mut dialects: Vec<(&str, Vec<OpKind>)> = Vec::new();
    for &k in OpKind::ALL {
        let d = k.def().dialect();
        match dialects.iter_mut().find(|(n, _)| *n == d) {
            Some((_, ops)) => ops.push(k),
            None => dialects.push((d, vec![k])),
        }
    }
    let anchor = |name: &str| {
        name.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect::<String>()
    };
    let code_list = |items: &[&str]| {
        if items.is_empty() {
            "none".to_string()
        } else {
            items.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
        }
    };
    let cell = |s: &str| s.replace('|', "\\|");

    let mut out = String::new();
    out.push_str("# Op reference\n\n");
    out.push_str(
        "Generated from the op registry (`ir/src/ops/`) by `edgec_ir::printer::op_reference_markdown`; \
         do not edit by hand. `cargo test -p edgec-testsuite --test filetests` fails when this file is \
         out of date, and `EDGEC_BLESS=1` regenerates it. The text form and the conventions shared by \
         all ops are described in [ir.md](ir.md).\n\n",
    );
    out.push_str(
        "Signature markers: `x?` an optional operand or result, `xs+` one or more, `xs...` zero or \
         more. Attribute kinds are those of the text form (`int`, `float`, `string`, `ints`, \
         `floats`, `strings`, `type`, `tensor`); an optional attribute that is absent takes the \
         default shown.\n\n",
    );
    let _ = writeln!(out, "{} ops in {} dialects.\n", OpKind::ALL.len(), dialects.len());
    out.push_str("| dialect | ops |\n|---|---|\n");
    for (d, ops) in &dialects {
        let links: Vec<String> =
            ops.iter().map(|k| format!("[`{0}`](#{1})", k.name(), anchor(k.name()))).collect();
        let _ = writeln!(out, "| `{d}` | {} |", links.join(", "));
    }
    for (d, ops) in &dialects {
        let _ = write!(out, "\n## `{d}`\n");
        for k in ops {
            let def = k.def();
            let _ = write!(out, "\n### `{}`\n\n{}\n\n", def.name, def.summary);
            let _ = writeln!(out, "- operands: {}", code_list(def.operands));
            let _ = writeln!(out, "- results: {}", code_list(def.results));
            let traits: Vec<&str> = def.traits.iter_names().map(|(n, _)| n).collect();
            let _ = writeln!(out, "- traits: {}", code_list(&traits));
            if def.attrs.is_empty() {
                out.push_str("- attributes: none\n");
            } else {
                out.push_str("- attributes:\n\n| name | kind | required | default |\n|---|---|---|---|\n");
                for a in def.attrs {
                    let (req, default) = match a.req {
                        AttrReq::Required => ("yes", "—".to_string()),
                        AttrReq::Optional if a.default.is_empty() => ("no", "(none)".to_string()),
                        AttrReq::Optional => ("no", format!("`{}`", cell(a.default))),
                    };
                    let _ = writeln!(out, "| `{}` | {} | {req} | {default} |", a.name, a.kind.name());
                }
            }
        }
    }
    out
}
