//! Rewrite rules, in groups. Every rule that produces a different-looking term checks that the
//! matched root has the type of the term it is equated with (constants may broadcast a result to
//! a higher rank, and then the rewrite would be wrong), and constants are matched by value with a
//! relative tolerance, because exporters write f32 roundings (`0.7071067690849304`,
//! `1.4142135381698608`) of the exact constants.

use super::lang::{scalar_of, type_of, KGraph, Kernel, Perm, Scalar, TypeInfo};
use edgec_ir::{Dim, ScalarType};
use egg::{
    rewrite, Applier, Condition, ConditionalApplier, Id, Pattern, PatternAst, Rewrite, Subst, Symbol, Var,
};

pub type Rw = Rewrite<Kernel, TypeInfo>;

/// Relative tolerance of constant matching.
const TOL: f64 = 1e-6;

fn var(s: &str) -> Var {
    s.parse().expect("pattern variable")
}

fn pat(s: &str) -> Pattern<Kernel> {
    s.parse().unwrap_or_else(|e| panic!("bad pattern {s}: {e}"))
}

fn close(v: f64, want: f64) -> bool {
    if want == 0.0 {
        v == 0.0
    } else {
        ((v - want) / want).abs() <= TOL
    }
}

/// What a rule requires of its match, checked together: constants by value, a matched variable
/// having the type of the matched root, row parameters (a scale or bias that varies at most along
/// the last axis of `x`), a non-negative epsilon.
#[derive(Default, Clone)]
pub struct Require {
    consts: Vec<(Var, f64)>,
    same_type: Vec<Var>,
    row_params: Vec<(Var, Var)>,
    epsilon: Option<Var>,
    scalars: Vec<(Var, Var)>,
}

impl Require {
    pub fn new() -> Self {
        Self::default()
    }
    /// `v` is a scalar constant within [`TOL`] of `want`.
    pub fn constant(mut self, v: &str, want: f64) -> Self {
        self.consts.push((var(v), want));
        self
    }
    /// `v` has the type of the matched root.
    pub fn same_type(mut self, v: &str) -> Self {
        self.same_type.push(var(v));
        self
    }
    /// `p` is a per-last-axis parameter of `x`: same element type, rank at most `x`'s, every dim
    /// 1 except the last, which is 1 or `x`'s last dim. Multiplying or adding it then keeps `x`'s
    /// shape, which is what the fused normalizations' Scale and B do.
    pub fn row_param(mut self, x: &str, p: &str) -> Self {
        self.row_params.push((var(x), var(p)));
        self
    }
    /// `c` is a scalar constant of `x`'s element type and rank at most `x`'s, so `x * c` has
    /// exactly `x`'s type (the constant broadcasts without widening anything).
    pub fn scalar_of(mut self, x: &str, c: &str) -> Self {
        self.scalars.push((var(x), var(c)));
        self
    }
    /// `v` is a finite, non-negative scalar constant (a normalization epsilon).
    pub fn epsilon(mut self, v: &str) -> Self {
        self.epsilon = Some(var(v));
        self
    }
}

impl Condition<Kernel, TypeInfo> for Require {
    fn check(&self, egraph: &mut KGraph, eclass: Id, subst: &Subst) -> bool {
        let consts_ok = self
            .consts
            .iter()
            .all(|&(v, want)| scalar_of(egraph, subst[v]).is_some_and(|s| close(s.value(), want)));
        let root = type_of(egraph, eclass);
        let types_ok = root.is_some() && self.same_type.iter().all(|&v| type_of(egraph, subst[v]) == root);
        let rows_ok = self.row_params.iter().all(|&(x, p)| {
            let (Some(x), Some(p)) = (type_of(egraph, subst[x]), type_of(egraph, subst[p])) else {
                return false;
            };
            let (Some(last), Some(plast)) = (x.dims.last(), p.dims.last()) else {
                // A rank-0 parameter broadcasts to anything of rank >= 1.
                return p.rank() == 0 && x.rank() >= 1 && p.elem == x.elem;
            };
            p.elem == x.elem
                && p.rank() <= x.rank()
                && p.dims[..p.rank() - 1].iter().all(|d| d.as_static() == Some(1))
                && (plast == last || plast.as_static() == Some(1))
        });
        let eps_ok = self.epsilon.is_none_or(|v| {
            scalar_of(egraph, subst[v]).is_some_and(|s| s.value().is_finite() && s.value() >= 0.0)
        });
        let scalars_ok = self.scalars.iter().all(|&(x, c)| scalar_keeps_type(egraph, subst[x], subst[c]));
        consts_ok && types_ok && rows_ok && eps_ok && scalars_ok
    }
}

/// Whether class `c` is a scalar constant that multiplies class `x` without changing its type.
fn scalar_keeps_type(egraph: &KGraph, x: Id, c: Id) -> bool {
    let (Some(s), Some(t)) = (scalar_of(egraph, c), type_of(egraph, x)) else { return false };
    t.elem.as_scalar() == Some(s.dtype) && s.rank as usize <= t.rank()
}

/// A rule `lhs => rhs if req`.
fn rule(name: &str, lhs: &str, rhs: &str, req: Require) -> Rw {
    Rewrite::new(name, pat(lhs), ConditionalApplier { condition: req, applier: pat(rhs) })
        .expect("valid rule")
}

/// Instantiates `rhs` after binding `?one` and `?zero` to scalar 1 and 0 of `x`'s element type,
/// for the fused normalizations' neutral scale and bias.
struct WithUnits {
    rhs: Pattern<Kernel>,
    x: Var,
}

impl Applier<Kernel, TypeInfo> for WithUnits {
    fn apply_one(
        &self,
        egraph: &mut KGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Kernel>>,
        rule_name: Symbol,
    ) -> Vec<Id> {
        let Some(dtype) = type_of(egraph, subst[self.x]).and_then(|t| t.elem.as_scalar()) else {
            return vec![];
        };
        let one = egraph.add(Kernel::Num(Scalar::new(1.0, dtype, 0)));
        let zero = egraph.add(Kernel::Num(Scalar::new(0.0, dtype, 0)));
        let mut s = subst.clone();
        s.insert(var("?one"), one);
        s.insert(var("?zero"), zero);
        self.rhs.apply_one(egraph, eclass, &s, None, rule_name)
    }
}

fn rule_units(name: &str, lhs: &str, rhs: &str, req: Require) -> Rw {
    rule_units_of("?x", name, lhs, rhs, req)
}

/// [`rule_units`] with the units taking the element type of `x` instead of `?x`.
fn rule_units_of<C: Condition<Kernel, TypeInfo> + Send + Sync + 'static>(
    x: &str,
    name: &str,
    lhs: &str,
    rhs: &str,
    req: C,
) -> Rw {
    let applier = WithUnits { rhs: pat(rhs), x: var(x) };
    Rewrite::new(name, pat(lhs), ConditionalApplier { condition: req, applier }).expect("valid rule")
}

/// `x / c => x * (1/c)` for a non-zero scalar constant `c`: one canonical form for scaling, so the
/// activation rules need not list both.
struct DivByConst;

impl Applier<Kernel, TypeInfo> for DivByConst {
    fn apply_one(
        &self,
        egraph: &mut KGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Kernel>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let Some(c) = scalar_of(egraph, subst[var("?c")]) else { return vec![] };
        let inv = 1.0 / c.value();
        if !(c.dtype.is_float() && inv.is_finite()) {
            return vec![];
        }
        let r = egraph.add(Kernel::Num(Scalar::new(inv, c.dtype, c.rank)));
        let m = egraph.add(Kernel::Mul([subst[var("?x")], r]));
        if egraph.union(eclass, m) {
            vec![eclass]
        } else {
            vec![]
        }
    }
}

/// Algebra, kept small so that saturation terminates: commutativity of add and mul (the other
/// groups then list one operand order), `x*1 = x`, `x+0 = x`, `x/c = x*(1/c)` and `1/y =
/// recip(y)`. Identity casts are unioned with their operand when the graph is built.
pub fn algebra() -> Vec<Rw> {
    vec![
        rewrite!("add-comm"; "(add ?a ?b)" => "(add ?b ?a)"),
        rewrite!("mul-comm"; "(mul ?a ?b)" => "(mul ?b ?a)"),
        rule("mul-one", "(mul ?x ?c)", "?x", Require::new().constant("?c", 1.0).same_type("?x")),
        rule("add-zero", "(add ?x ?c)", "?x", Require::new().constant("?c", 0.0).same_type("?x")),
        Rewrite::new("div-const", pat("(div ?x ?c)"), DivByConst).expect("valid rule"),
        rule("div-recip", "(div ?c ?y)", "(recip ?y)", Require::new().constant("?c", 1.0).same_type("?y")),
    ]
}

/// The three ways `0.5 * x * inner` associates, with the constant named `?h`.
fn half_x_times(inner: &str) -> [String; 3] {
    [
        format!("(mul (mul ?x ?h) {inner})"),
        format!("(mul (mul ?x {inner}) ?h)"),
        format!("(mul ?x (mul {inner} ?h))"),
    ]
}

/// Activations: GELU's erf form `0.5*x*(1+erf(x/sqrt2))` and tanh form
/// `0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x^3)))` (the cube as `pow(x,3)` or a product) in every
/// association of the outer product; `x*sigmoid(x)` as swish (SiLU).
pub fn activation() -> Vec<Rw> {
    let mut rules =
        vec![rule("swish", "(mul ?x (sigmoid ?x))", "(swish ?x)", Require::new().same_type("?x"))];
    let erf_forms = [
        ("mul", "(add (erf (mul ?x ?k)) ?one)", std::f64::consts::FRAC_1_SQRT_2),
        ("div", "(add (erf (div ?x ?k)) ?one)", std::f64::consts::SQRT_2),
    ];
    for (form, inner, k) in erf_forms {
        for (i, lhs) in half_x_times(inner).iter().enumerate() {
            let req =
                Require::new().constant("?h", 0.5).constant("?one", 1.0).constant("?k", k).same_type("?x");
            rules.push(rule(&format!("gelu-erf-{form}-{i}"), lhs, "(gelu ?x)", req));
        }
    }
    let sqrt_2_over_pi = (2.0 / std::f64::consts::PI).sqrt();
    let cubes =
        [("pow", "(pow ?x ?three)"), ("mul", "(mul ?x (mul ?x ?x))"), ("mul2", "(mul (mul ?x ?x) ?x)")];
    for (form, cube) in cubes {
        let inner = format!("(add (tanh (mul (add ?x (mul {cube} ?c)) ?k)) ?one)");
        for (i, lhs) in half_x_times(&inner).iter().enumerate() {
            let mut req = Require::new()
                .constant("?h", 0.5)
                .constant("?one", 1.0)
                .constant("?k", sqrt_2_over_pi)
                .constant("?c", 0.044715)
                .same_type("?x");
            if form == "pow" {
                req = req.constant("?three", 3.0);
            }
            rules.push(rule(&format!("gelu-tanh-{form}-{i}"), lhs, "(gelu_tanh ?x)", req));
        }
    }
    rules
}

/// Normalizations over the last axis. LayerNorm: `(x - mean(x)) / sqrt(mean((x-mean(x))^2) +
/// eps)` (square as `pow 2` or a product, division or multiplication by the reciprocal) becomes a
/// layer norm with unit scale and zero bias; a following `* gamma` and `+ beta` (row parameters)
/// fold into it. RMSNorm: `x / sqrt(mean(x^2) + eps)` or `x * recip(sqrt(...))` likewise, with a
/// following `* w`. With the `algebra` group, `1/sqrt(..)` and commuted operands are covered.
pub fn normalization() -> Vec<Rw> {
    let mut rules = Vec::new();
    let d = "(sub ?x (mean:-1:k ?x))";
    let squares = [("pow", format!("(pow {d} ?two)")), ("mul", format!("(mul {d} {d})"))];
    for (sq, square) in &squares {
        let s = format!("(sqrt (add (mean:-1:k {square}) ?eps))");
        let norms = [("div", format!("(div {d} {s})")), ("recip", format!("(mul {d} (recip {s}))"))];
        for (form, lhs) in &norms {
            let mut req = Require::new().epsilon("?eps").same_type("?x");
            if *sq == "pow" {
                req = req.constant("?two", 2.0);
            }
            rules.push(rule_units(
                &format!("layer-norm-{sq}-{form}"),
                lhs,
                "(layer_norm ?x ?one ?zero ?eps)",
                req,
            ));
        }
    }
    rules.push(rule(
        "layer-norm-scale",
        "(mul (layer_norm ?x ?one ?zero ?eps) ?g)",
        "(layer_norm ?x ?g ?zero ?eps)",
        Require::new().constant("?one", 1.0).constant("?zero", 0.0).row_param("?x", "?g").same_type("?x"),
    ));
    rules.push(rule(
        "layer-norm-bias",
        "(add (layer_norm ?x ?g ?zero ?eps) ?b)",
        "(layer_norm ?x ?g ?b ?eps)",
        Require::new().constant("?zero", 0.0).row_param("?x", "?b").same_type("?x"),
    ));
    let squares = [("pow", "(pow ?x ?two)"), ("mul", "(mul ?x ?x)")];
    for (sq, square) in squares {
        let s = format!("(sqrt (add (mean:-1:k {square}) ?eps))");
        let norms = [("div", format!("(div ?x {s})")), ("recip", format!("(mul ?x (recip {s}))"))];
        for (form, lhs) in &norms {
            let mut req = Require::new().epsilon("?eps").same_type("?x");
            if sq == "pow" {
                req = req.constant("?two", 2.0);
            }
            rules.push(rule_units(&format!("rms-norm-{sq}-{form}"), lhs, "(rms_norm ?x ?one ?eps)", req));
        }
    }
    rules.push(rule(
        "rms-norm-scale",
        "(mul (rms_norm ?x ?one ?eps) ?w)",
        "(rms_norm ?x ?w ?eps)",
        Require::new().constant("?one", 1.0).row_param("?x", "?w").same_type("?x"),
    ));
    rules
}

/// `(mul (mul x a) b) => (mul x ab)` for scalar constants `a` and `b` that keep `x`'s type: one
/// scale however many factors an exporter split it into (`q*sqrt(s)` and `k*sqrt(s)` become one
/// `* s` once hoisted out of the matmul).
struct FoldScalars;

impl Applier<Kernel, TypeInfo> for FoldScalars {
    fn apply_one(
        &self,
        egraph: &mut KGraph,
        eclass: Id,
        subst: &Subst,
        _ast: Option<&PatternAst<Kernel>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let (x, a, b) = (subst[var("?x")], subst[var("?a")], subst[var("?b")]);
        if !(scalar_keeps_type(egraph, x, a) && scalar_keeps_type(egraph, x, b)) {
            return vec![];
        }
        let (Some(sa), Some(sb)) = (scalar_of(egraph, a), scalar_of(egraph, b)) else { return vec![] };
        if type_of(egraph, eclass) != type_of(egraph, x) {
            return vec![];
        }
        // The product in f64, rounded once to the constants' type, as a runtime folding them
        // would; a product that overflows or vanishes is left alone.
        let mut v = sa.value() * sb.value();
        if sa.dtype == ScalarType::F32 {
            v = v as f32 as f64;
        }
        if !(v.is_finite() && v != 0.0) {
            return vec![];
        }
        let c = egraph.add(Kernel::Num(Scalar::new(v, sa.dtype, sa.rank.max(sb.rank))));
        let m = egraph.add(Kernel::Mul([x, c]));
        if egraph.union(eclass, m) {
            vec![eclass]
        } else {
            vec![]
        }
    }
}

/// The rank-4 permutations (as axis lists).
fn perms4() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for a in 0..4u8 {
        for b in 0..4u8 {
            for c in 0..4u8 {
                for d in 0..4u8 {
                    let p = vec![a, b, c, d];
                    let mut s = p.clone();
                    s.sort_unstable();
                    if s == [0, 1, 2, 3] {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

/// What an attention rewrite requires of its match: 4-D float Q `[B, H, Sq, D]`, K `[B, Hk,
/// Skv, D]` and V `[B, Hk, Skv, Dv]` with `Hk` equal to `H` or 1 (the matmul broadcasts one
/// key/value head over all query heads, which `nn.attention` does as grouped-query heads), the
/// matched root of type `[B, H, Sq, Dv]`, a finite positive scale (the op applies its square
/// root to Q and K), and a mask of Q's element type that broadcasts to `[B, H, Sq, Skv]` with
/// its last dim exactly `Skv` (the op reads a shorter last dim as padding, not as a
/// broadcast).
#[derive(Clone)]
struct AttentionShapes {
    scale: Option<Var>,
    mask: Option<Var>,
}

impl Condition<Kernel, TypeInfo> for AttentionShapes {
    fn check(&self, egraph: &mut KGraph, eclass: Id, subst: &Subst) -> bool {
        let ty = |v: &str| type_of(egraph, subst[var(v)]);
        let (Some(q), Some(k), Some(v), Some(root)) = (ty("?q"), ty("?k"), ty("?v"), type_of(egraph, eclass))
        else {
            return false;
        };
        if [q, k, v].iter().any(|t| t.rank() != 4 || t.elem != q.elem)
            || !matches!(q.elem.as_scalar(), Some(ScalarType::F32 | ScalarType::F64))
        {
            return false;
        }
        let (b, h, sq, d) = (&q.dims[0], &q.dims[1], &q.dims[2], &q.dims[3]);
        let (hk, skv) = (&k.dims[1], &k.dims[2]);
        let one = Dim::Static(1);
        let shapes_ok = k.dims[0] == *b
            && v.dims[0] == *b
            && (hk == h || *hk == one)
            && v.dims[1] == *hk
            && k.dims[3] == *d
            && v.dims[2] == *skv
            && root.elem == q.elem
            && root.dims == [b.clone(), h.clone(), sq.clone(), v.dims[3].clone()];
        if !shapes_ok {
            return false;
        }
        let scale_ok = self.scale.is_none_or(|s| {
            scalar_of(egraph, subst[s]).is_some_and(|s| {
                s.value().is_finite() && s.value() > 0.0 && q.elem.as_scalar() == Some(s.dtype)
            })
        });
        let mask_ok = self.mask.is_none_or(|m| {
            let Some(m) = type_of(egraph, subst[m]) else { return false };
            if m.rank() == 0 || m.rank() > 4 || m.elem != q.elem || m.dims.last() != Some(skv) {
                return false;
            }
            let target = [b, h, sq];
            m.dims[..m.rank() - 1]
                .iter()
                .rev()
                .zip(target.iter().rev())
                .all(|(md, td)| md == *td || *md == one)
        });
        scale_ok && mask_ok
    }
}

/// Scaled dot-product attention `softmax(q @ k^T * s + mask) @ v` over 4-D `[B, H, S, D]`
/// operands, softmax over the last axis, becomes `nn.attention` (scale `s`, mask optional, the
/// scale 1 when there is none). Exporters write `k^T` as a transpose whose perm also moves the
/// heads (`[0,2,3,1]` of the `[B, S, H, D]` projection), put the scale after the matmul, as a
/// division, or split it over q and k (`q*sqrt(s)`, `k^T*sqrt(s)`), before or after the
/// transpose; the helper rules below bring all of those to the one form the rule matches:
/// - every rank-4 transpose on a matmul's right is also `swap_last(transpose(x, p'))`, so
///   `k = transpose(x, p')` (a plain `k^T` is the `p'` = identity case, `k = x`);
/// - a scalar constant moves out of a transpose and out of either matmul operand, and two
///   scalar factors fold into one (with `algebra`'s `x/c = x*(1/c)`).
///
/// Each helper only rewrites to an equal term of the same type; extraction keeps the input's
/// form unless the attention op (or a really cheaper form) is found.
pub fn attention() -> Vec<Rw> {
    let mut rules = Vec::new();
    let swap = Perm::swap_last(4);
    for p in perms4() {
        let perm = Perm(p.clone());
        if perm.is_identity() {
            continue;
        }
        rules.push(rule(
            &format!("transpose-scalar-{}", p.iter().map(|a| a.to_string()).collect::<String>()),
            &format!("({perm} (mul ?x ?c))"),
            &format!("(mul ({perm} ?x) ?c)"),
            Require::new().scalar_of("?x", "?c"),
        ));
        if perm == swap {
            continue;
        }
        // x^P = (x^Q)^swap with Q = P followed by the swap of the last two axes.
        let q = Perm(vec![p[0], p[1], p[3], p[2]]);
        let inner = if q.is_identity() { "?x".to_string() } else { format!("({q} ?x)") };
        rules.push(
            Rewrite::new(
                format!("key-transpose-{}", p.iter().map(|a| a.to_string()).collect::<String>()),
                pat(&format!("(matmul ?q ({perm} ?x))")),
                pat(&format!("(matmul ?q ({swap} {inner}))")),
            )
            .expect("valid rule"),
        );
    }
    rules.push(rule(
        "matmul-scalar-left",
        "(matmul (mul ?a ?c) ?b)",
        "(mul (matmul ?a ?b) ?c)",
        Require::new().scalar_of("?a", "?c"),
    ));
    rules.push(rule(
        "matmul-scalar-right",
        "(matmul ?a (mul ?b ?c))",
        "(mul (matmul ?a ?b) ?c)",
        Require::new().scalar_of("?b", "?c"),
    ));
    rules.push(Rewrite::new("fold-scalars", pat("(mul (mul ?x ?a) ?b)"), FoldScalars).expect("valid rule"));
    let scores = format!("(matmul ?q ({swap} ?k))");
    let forms = [
        ("scaled", format!("(mul {scores} ?s)"), "(attention ?q ?k ?v ?s)", Some("?s"), None),
        ("unscaled", scores.clone(), "(attention ?q ?k ?v ?one)", None, None),
        (
            "scaled-mask",
            format!("(add (mul {scores} ?s) ?m)"),
            "(attention_mask ?q ?k ?v ?m ?s)",
            Some("?s"),
            Some("?m"),
        ),
        (
            "unscaled-mask",
            format!("(add {scores} ?m)"),
            "(attention_mask ?q ?k ?v ?m ?one)",
            None,
            Some("?m"),
        ),
    ];
    for (name, s, rhs, scale, mask) in forms {
        let lhs = format!("(matmul (softmax:-1 {s}) ?v)");
        let cond = AttentionShapes { scale: scale.map(var), mask: mask.map(var) };
        rules.push(rule_units_of("?q", &format!("attention-{name}"), &lhs, rhs, cond));
    }
    rules
}

/// Every group, in the order the pass uses.
pub fn all() -> Vec<Rw> {
    let mut rules = algebra();
    rules.extend(activation());
    rules.extend(normalization());
    rules.extend(attention());
    rules
}
