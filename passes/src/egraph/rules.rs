//! Rewrite rules, in groups. Every rule that produces a different-looking term checks that the
//! matched root has the type of the term it is equated with (constants may broadcast a result to
//! a higher rank, and then the rewrite would be wrong), and constants are matched by value with a
//! relative tolerance, because exporters write f32 roundings (`0.7071067690849304`,
//! `1.4142135381698608`) of the exact constants.

use super::lang::{scalar_of, type_of, KGraph, Kernel, Scalar, TypeInfo};
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
        consts_ok && types_ok && rows_ok && eps_ok
    }
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
    let applier = WithUnits { rhs: pat(rhs), x: var("?x") };
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

/// Every group, in the order the pass uses.
pub fn all() -> Vec<Rw> {
    let mut rules = algebra();
    rules.extend(activation());
    rules.extend(normalization());
    rules
}
