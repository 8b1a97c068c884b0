//! `math.*`: elementwise arithmetic, comparisons, logic, activations, casts (numpy broadcasting).
//!
//! Every op here has ONNX semantics, operands and attribute names. Binary and variadic ops
//! broadcast their operands numpy-style; operands must share one element type, except `Pow`
//! (any numeric exponent type), `Where` (a bool condition) and `Cast`. Comparisons and the
//! float predicates (`is_nan`, `is_inf`) give bool.
//!
//! Each op's scalar rule is written once and expanded per element type by the macros of
//! [`super::elementwise_kernels`], which also explains the numeric conventions (half-precision
//! computed in f32, wrapping integers, errors for integer division by zero).

use super::elementwise_kernels::{
    cast, map_pred, map_same, select, try_zip2, zip2, zip_pred, zip_same, CastDst, CastSrc, IntElem, Real,
};
use super::util::{broadcast_dims, input, operand};
use super::{AttrDef, EvalCtx, InferCtx, OpDef, OpResult, Traits};
use crate::attr::AttrKind;
use crate::tensor::Tensor;
use crate::types::{ScalarType, TensorType};
use ndarray::{ArrayD, IxDyn};

const EW: Traits = Traits::PURE.union(Traits::ELEMENTWISE);
const EW_COMM: Traits = EW.union(Traits::COMMUTATIVE);

// ---------------------------------------------------------------------------------------------
// Shape rules

/// The element types an op accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Float,
    /// Floats and 8- to 64-bit integers.
    Numeric,
    /// Floats and signed 8- to 64-bit integers.
    SignedNumeric,
    /// 8- to 64-bit integers.
    Int,
    Bool,
    NumericOrBool,
    Any,
}

impl Class {
    fn admits(self, s: ScalarType) -> bool {
        let wide_int = s.is_int() && s.bits() >= 8;
        match self {
            Class::Float => s.is_float(),
            Class::Numeric => s.is_float() || wide_int,
            Class::SignedNumeric => s.is_float() || wide_int && s.is_signed_int(),
            Class::Int => wide_int,
            Class::Bool => s == ScalarType::Bool,
            Class::NumericOrBool => s.is_float() || wide_int || s == ScalarType::Bool,
            Class::Any => true,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Class::Float => "a float type",
            Class::Numeric => "a float or 8- to 64-bit integer type",
            Class::SignedNumeric => "a float or signed 8- to 64-bit integer type",
            Class::Int => "an 8- to 64-bit integer type",
            Class::Bool => "bool",
            Class::NumericOrBool => "a float, 8- to 64-bit integer or bool type",
            Class::Any => "any type",
        }
    }
}

/// The scalar element type of operand `i`, checked against `class`.
fn elem(c: &InferCtx, i: usize, class: Class) -> OpResult<ScalarType> {
    let t = operand(c, i)?;
    let s = t
        .elem
        .as_scalar()
        .ok_or_else(|| format!("operand #{i} has quantized element type {}; dequantize it first", t.elem))?;
    if !class.admits(s) {
        return Err(format!("operand #{i} has element type {s}, expected {}", class.describe()));
    }
    Ok(s)
}

/// Unary ops: the result has the operand's dims, and its element type or `out`.
fn infer_map(c: &InferCtx, class: Class, out: Option<ScalarType>) -> OpResult<Vec<TensorType>> {
    let s = elem(c, 0, class)?;
    Ok(vec![TensorType::new(operand(c, 0)?.dims.clone(), out.unwrap_or(s))])
}

/// Binary and variadic ops: every operand has the same element type (in `class`); the result
/// has the broadcast dims, and that element type or `out`.
fn infer_bcast(c: &InferCtx, class: Class, out: Option<ScalarType>) -> OpResult<Vec<TensorType>> {
    let s = elem(c, 0, class)?;
    let mut dims = operand(c, 0)?.dims.clone();
    for i in 1..c.operands.len() {
        let si = elem(c, i, class)?;
        if si != s {
            return Err(format!("operand #{i} has element type {si} but operand #0 has {s}"));
        }
        dims = broadcast_dims(&dims, &c.operands[i].dims)?;
    }
    Ok(vec![TensorType::new(dims, out.unwrap_or(s))])
}

fn infer_float(c: &InferCtx) -> OpResult<Vec<TensorType>> {
    infer_map(c, Class::Float, None)
}

fn infer_float_pred(c: &InferCtx) -> OpResult<Vec<TensorType>> {
    infer_map(c, Class::Float, Some(ScalarType::Bool))
}

fn infer_arith(c: &InferCtx) -> OpResult<Vec<TensorType>> {
    infer_bcast(c, Class::Numeric, None)
}

fn infer_compare(c: &InferCtx) -> OpResult<Vec<TensorType>> {
    infer_bcast(c, Class::NumericOrBool, Some(ScalarType::Bool))
}

fn infer_logic(c: &InferCtx) -> OpResult<Vec<TensorType>> {
    infer_bcast(c, Class::Bool, None)
}

// ---------------------------------------------------------------------------------------------
// Evaluation helpers

fn float_attr(c: &EvalCtx, name: &str, default: f64) -> f64 {
    c.attrs.float(name).unwrap_or(default)
}

/// Maps a float tensor; the expression sees `x: F` (the compute type).
macro_rules! float_map {
    ($t:expr, $what:expr, |$x:ident| $body:expr) => {
        map_same!($t, $what, [F32 F64 F16 BF16], |$x| $body, [], |_i| Ok(0))
    };
}

/// Declares a unary op on float tensors whose rule needs no attributes.
macro_rules! float_unary {
    ($id:ident, $name:literal, $summary:literal, |$x:ident| $body:expr) => {
        pub static $id: OpDef = OpDef {
            name: $name,
            summary: $summary,
            operands: &["x"],
            results: &["y"],
            attrs: &[],
            traits: EW,
            infer: infer_float,
            eval: |c| Ok(vec![float_map!(input(c, 0)?, $name, |$x| $body)]),
        };
    };
}

/// Broadcast arithmetic on any numeric type: a float rule (on `F`) and an integer rule
/// (giving `OpResult<T>`).
macro_rules! arith {
    ($a:expr, $b:expr, $what:expr, |$x:ident, $y:ident| $fb:expr, $ib:expr) => {
        zip_same!($a, $b, $what, [F32 F64 F16 BF16], |$x, $y| $fb, [I64 I32 I16 I8 U64 U32 U16 U8], |$x, $y| $ib)
    };
}

/// Declares a binary arithmetic op on numeric tensors.
macro_rules! arith_binary {
    ($id:ident, $name:literal, $summary:literal, $traits:expr, |$x:ident, $y:ident| $fb:expr, $ib:expr) => {
        pub static $id: OpDef = OpDef {
            name: $name,
            summary: $summary,
            operands: &["a", "b"],
            results: &["c"],
            attrs: &[],
            traits: $traits,
            infer: infer_arith,
            eval: |c| Ok(vec![arith!(input(c, 0)?, input(c, 1)?, $name, |$x, $y| $fb, $ib)]),
        };
    };
}

/// Declares a comparison (bool result).
macro_rules! compare {
    ($id:ident, $name:literal, $summary:literal, $traits:expr, |$x:ident, $y:ident| $body:expr) => {
        pub static $id: OpDef = OpDef {
            name: $name,
            summary: $summary,
            operands: &["a", "b"],
            results: &["c"],
            attrs: &[],
            traits: $traits,
            infer: infer_compare,
            eval: |c| Ok(vec![zip_pred!(input(c, 0)?, input(c, 1)?, $name, |$x, $y| $body)]),
        };
    };
}

/// Declares a binary op on bool tensors.
macro_rules! logic {
    ($id:ident, $name:literal, $summary:literal, $traits:expr, $f:expr) => {
        pub static $id: OpDef = OpDef {
            name: $name,
            summary: $summary,
            operands: &["a", "b"],
            results: &["c"],
            attrs: &[],
            traits: $traits,
            infer: infer_logic,
            eval: |c| match (input(c, 0)?, input(c, 1)?) {
                (Tensor::Bool(a), Tensor::Bool(b)) => Ok(vec![Tensor::Bool(zip2(a, b, $f)?)]),
                (a, b) => Err(super::elementwise_kernels::unsupported2($name, a, b)),
            },
        };
    };
}

/// NaN-propagating minimum (numpy `minimum`), the rule of `Min` and of `Clip`'s upper bound.
fn min2(a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    Ok(arith!(a, b, "math.min", |x, y| if x.is_nan() || x < y { x } else { y }, Ok(x.min(y))))
}

/// NaN-propagating maximum (numpy `maximum`).
fn max2(a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    Ok(arith!(a, b, "math.max", |x, y| if x.is_nan() || x > y { x } else { y }, Ok(x.max(y))))
}

fn add2(a: &Tensor, b: &Tensor) -> OpResult<Tensor> {
    Ok(arith!(a, b, "math.add", |x, y| x + y, Ok(x.wrapping_add(y))))
}

/// Folds the operands of a variadic op with a binary rule (broadcasting step by step gives the
/// same result as broadcasting all operands at once).
fn fold(c: &EvalCtx, f: fn(&Tensor, &Tensor) -> OpResult<Tensor>) -> OpResult<Tensor> {
    let (first, rest) = c.inputs.split_first().ok_or("expects at least one operand")?;
    let mut acc = first.clone();
    for t in rest {
        acc = f(&acc, t)?;
    }
    Ok(acc)
}

/// The single element of a bound operand (`Clip`'s min and max) as a rank-0 tensor.
fn to_scalar(t: &Tensor, what: &str) -> OpResult<Tensor> {
    if t.len() != 1 {
        return Err(format!("{what} must hold one element, found shape {:?}", t.shape()));
    }
    Ok(crate::map_tensor!(t, a => ArrayD::from_elem(IxDyn(&[]), a[IxDyn(&vec![0; a.ndim()])])))
}

// ---------------------------------------------------------------------------------------------
// Binary arithmetic

arith_binary!(
    ADD,
    "math.add",
    "Sum of two tensors (integers wrap).",
    EW_COMM,
    |x, y| x + y,
    Ok(x.wrapping_add(y))
);
arith_binary!(
    SUB,
    "math.sub",
    "Difference of two tensors (integers wrap).",
    EW,
    |x, y| x - y,
    Ok(x.wrapping_sub(y))
);
arith_binary!(
    MUL,
    "math.mul",
    "Product of two tensors (integers wrap).",
    EW_COMM,
    |x, y| x * y,
    Ok(x.wrapping_mul(y))
);
arith_binary!(
    DIV,
    "math.div",
    "Quotient of two tensors; integer division truncates toward zero and rejects a zero divisor.",
    EW,
    |x, y| x / y,
    x.trunc_div(y)
);

pub static POW: OpDef = OpDef {
    name: "math.pow",
    summary: "`x` to the power `y`; `y` may have any numeric type, the result has `x`'s type.",
    operands: &["x", "y"],
    results: &["z"],
    attrs: &[],
    traits: EW,
    infer: |c| {
        let s = elem(c, 0, Class::Numeric)?;
        elem(c, 1, Class::Numeric)?;
        let dims = broadcast_dims(&operand(c, 0)?.dims, &operand(c, 1)?.dims)?;
        Ok(vec![TensorType::new(dims, s)])
    },
    eval: |c| Ok(vec![pow(input(c, 0)?, input(c, 1)?)?]),
};

/// `Pow` with numpy's type rules: same-type floats compute in their own precision, integers
/// raised to integers stay exact (wrapping), and any other mix computes in f64 and converts to
/// the base's type (truncating toward zero for an integer base).
fn pow(x: &Tensor, y: &Tensor) -> OpResult<Tensor> {
    macro_rules! powf {
        ($a:expr, $b:expr) => {
            zip_same!($a, $b, "math.pow", [F32 F64 F16 BF16], |p, q| p.powf(q), [], |_p, _q| Ok(0))
        };
    }
    let (xs, ys) = (x.scalar_type(), y.scalar_type());
    if xs == ys && xs.is_float() {
        return Ok(powf!(x, y));
    }
    if xs.is_int() && ys.is_int() {
        // Exponents beyond i64 (u64 > 2^63) wrap; no base other than 0 and ±1 survives them.
        let e = cast(y, ScalarType::I64);
        macro_rules! arms {
            ($($V:ident)*) => {
                match (x, &e) {
                    $( (Tensor::$V(a), Tensor::I64(e)) => Tensor::$V(try_zip2(a, e, |p, q| p.ipow(q))?), )*
                    _ => return Err(format!("math.pow does not support base type {xs}")),
                }
            };
        }
        return Ok(arms!(I64 I32 I16 I8 U64 U32 U16 U8));
    }
    if !(xs.is_float() || xs.is_int()) || !(ys.is_float() || ys.is_int()) {
        return Err(format!("math.pow does not support element types {xs} and {ys}"));
    }
    let r = powf!(&cast(x, ScalarType::F64), &cast(y, ScalarType::F64));
    Ok(cast(&r, xs))
}

pub static MOD: OpDef = OpDef {
    name: "math.mod",
    summary: "Remainder: with the divisor's sign (`fmod=0`, numpy `mod`) or the dividend's \
              (`fmod=1`, C `fmod`); integers reject a zero divisor.",
    operands: &["a", "b"],
    results: &["c"],
    attrs: &[AttrDef::opt("fmod", AttrKind::Int, "0")],
    traits: EW,
    infer: |c| {
        fmod_attr(c.attrs.int("fmod"))?;
        infer_arith(c)
    },
    eval: |c| {
        let (a, b) = (input(c, 0)?, input(c, 1)?);
        Ok(vec![if fmod_attr(c.attrs.int("fmod"))? {
            arith!(a, b, "math.mod", |x, y| x % y, x.trunc_mod(y))
        } else {
            arith!(a, b, "math.mod", |x, y| x.floor_mod(y), IntElem::floor_mod(x, y))
        }])
    },
};

/// Whether `Mod` truncates (`fmod=1`) rather than floors (`fmod=0`, the default).
fn fmod_attr(v: Option<i64>) -> OpResult<bool> {
    match v.unwrap_or(0) {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(format!("fmod must be 0 or 1, found {v}")),
    }
}

pub static BIT_SHIFT: OpDef = OpDef {
    name: "math.bit_shift",
    summary: "Shifts `x` by `y` bits (`direction` LEFT or RIGHT; arithmetic for signed types).",
    operands: &["x", "y"],
    results: &["z"],
    attrs: &[AttrDef::req("direction", AttrKind::Str)],
    traits: EW,
    infer: |c| {
        shift_left(c.attrs.str("direction"))?;
        infer_bcast(c, Class::Int, None)
    },
    eval: |c| {
        let left = shift_left(c.attrs.str("direction"))?;
        Ok(vec![zip_same!(input(c, 0)?, input(c, 1)?, "math.bit_shift", [], |_p, _q| 0.0,
            [I64 I32 I16 I8 U64 U32 U16 U8], |x, y| Ok(x.shift(y, left)))])
    },
};

fn shift_left(direction: Option<&str>) -> OpResult<bool> {
    match direction {
        Some("LEFT") => Ok(true),
        Some("RIGHT") => Ok(false),
        Some(d) => Err(format!("direction must be \"LEFT\" or \"RIGHT\", found {d:?}")),
        None => Err("missing attribute `direction`".into()),
    }
}

// ---------------------------------------------------------------------------------------------
// Variadic

pub static MIN: OpDef = OpDef {
    name: "math.min",
    summary: "Elementwise minimum of one or more tensors (NaN if any operand is NaN).",
    operands: &["data_0+"],
    results: &["min"],
    attrs: &[],
    traits: EW_COMM,
    infer: infer_arith,
    eval: |c| Ok(vec![fold(c, min2)?]),
};

pub static MAX: OpDef = OpDef {
    name: "math.max",
    summary: "Elementwise maximum of one or more tensors (NaN if any operand is NaN).",
    operands: &["data_0+"],
    results: &["max"],
    attrs: &[],
    traits: EW_COMM,
    infer: infer_arith,
    eval: |c| Ok(vec![fold(c, max2)?]),
};

pub static SUM: OpDef = OpDef {
    name: "math.sum",
    summary: "Elementwise sum of one or more tensors.",
    operands: &["data_0+"],
    results: &["sum"],
    attrs: &[],
    traits: EW_COMM,
    infer: infer_arith,
    eval: |c| Ok(vec![fold(c, add2)?]),
};

pub static MEAN: OpDef = OpDef {
    name: "math.mean",
    summary: "Elementwise mean of one or more float tensors.",
    operands: &["data_0+"],
    results: &["mean"],
    attrs: &[],
    traits: EW_COMM,
    infer: |c| infer_bcast(c, Class::Float, None),
    eval: |c| {
        let n = c.inputs.len();
        Ok(vec![float_map!(&fold(c, add2)?, "math.mean", |x| x / n as F)])
    },
};

// ---------------------------------------------------------------------------------------------
// Comparisons and logic

compare!(EQUAL, "math.equal", "Whether the elements are equal (bool result).", EW_COMM, |x, y| x == y);
compare!(LESS, "math.less", "Whether `a < b` (bool result).", EW, |x, y| x < y);
compare!(LESS_OR_EQUAL, "math.less_equal", "Whether `a <= b` (bool result).", EW, |x, y| x <= y);
compare!(GREATER, "math.greater", "Whether `a > b` (bool result).", EW, |x, y| x > y);
compare!(GREATER_OR_EQUAL, "math.greater_equal", "Whether `a >= b` (bool result).", EW, |x, y| x >= y);

logic!(AND, "math.and", "Logical and of bool tensors.", EW_COMM, |x, y| x & y);
logic!(OR, "math.or", "Logical or of bool tensors.", EW_COMM, |x, y| x | y);
logic!(XOR, "math.xor", "Logical exclusive or of bool tensors.", EW_COMM, |x, y| x ^ y);

pub static NOT: OpDef = OpDef {
    name: "math.not",
    summary: "Logical negation of a bool tensor.",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: |c| infer_map(c, Class::Bool, None),
    eval: |c| match input(c, 0)? {
        Tensor::Bool(a) => Ok(vec![Tensor::Bool(a.mapv(|v| !v))]),
        t => Err(super::elementwise_kernels::unsupported("math.not", t)),
    },
};

pub static WHERE: OpDef = OpDef {
    name: "math.where",
    summary: "Elements of `x` where `condition` holds, else of `y` (all three broadcast).",
    operands: &["condition", "x", "y"],
    results: &["output"],
    attrs: &[],
    traits: EW,
    infer: |c| {
        elem(c, 0, Class::Bool)?;
        let s = elem(c, 1, Class::Any)?;
        let sy = elem(c, 2, Class::Any)?;
        if s != sy {
            return Err(format!("x has element type {s} but y has {sy}"));
        }
        let dims = broadcast_dims(&operand(c, 0)?.dims, &operand(c, 1)?.dims)?;
        let dims = broadcast_dims(&dims, &operand(c, 2)?.dims)?;
        Ok(vec![TensorType::new(dims, s)])
    },
    eval: |c| Ok(vec![select(input(c, 0)?, input(c, 1)?, input(c, 2)?)?]),
};

// ---------------------------------------------------------------------------------------------
// Unary math

float_unary!(SQRT, "math.sqrt", "Square root.", |x| x.sqrt());
float_unary!(RECIPROCAL, "math.reciprocal", "`1 / x`.", |x| 1.0 / x);
float_unary!(EXP, "math.exp", "Natural exponential.", |x| x.exp());
float_unary!(LOG, "math.log", "Natural logarithm.", |x| x.ln());
float_unary!(ERF, "math.erf", "Gauss error function.", |x| Real::erf(x));
float_unary!(TANH, "math.tanh", "Hyperbolic tangent.", |x| x.tanh());
float_unary!(SIN, "math.sin", "Sine.", |x| x.sin());
float_unary!(COS, "math.cos", "Cosine.", |x| x.cos());
float_unary!(FLOOR, "math.floor", "Largest integer not above `x`.", |x| x.floor());
float_unary!(CEIL, "math.ceil", "Smallest integer not below `x`.", |x| x.ceil());
float_unary!(ROUND, "math.round", "Nearest integer, halves to even.", |x| x.round_ties_even());
float_unary!(SIGMOID, "math.sigmoid", "Logistic function `1 / (1 + exp(-x))`.", |x| sigmoid(x));
float_unary!(SOFTPLUS, "math.softplus", "`ln(1 + exp(x))`.", |x| softplus(x));
float_unary!(MISH, "math.mish", "`x * tanh(softplus(x))`.", |x| x * softplus(x).tanh());
float_unary!(HARD_SWISH, "math.hard_swish", "`x * max(0, min(1, x / 6 + 1 / 2))`.", |x| x * unit_clamp(
    x / 6.0 + 0.5
));

/// Logistic function, written so that neither branch overflows.
fn sigmoid<F: num_traits::Float>(x: F) -> F {
    if x >= F::zero() {
        F::one() / (F::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::one() + e)
    }
}

/// `ln(1 + exp(x))` without overflow for large `x`.
fn softplus<F: num_traits::Float>(x: F) -> F {
    if x > F::zero() {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// Clamps to [0, 1], keeping NaN (numpy's `clip`).
fn unit_clamp<F: num_traits::Float>(v: F) -> F {
    if v < F::zero() {
        F::zero()
    } else if v > F::one() {
        F::one()
    } else {
        v
    }
}

pub static NEG: OpDef = OpDef {
    name: "math.neg",
    summary: "Negation (float or signed integer; integers wrap).",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: |c| infer_map(c, Class::SignedNumeric, None),
    eval: |c| {
        Ok(vec![map_same!(input(c, 0)?, "math.neg", [F32 F64 F16 BF16], |x| -x,
            [I64 I32 I16 I8], |x| Ok(x.wrapping_neg()))])
    },
};

pub static ABS: OpDef = OpDef {
    name: "math.abs",
    summary: "Absolute value (integers wrap: the most negative value stays itself).",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: |c| infer_map(c, Class::Numeric, None),
    eval: |c| {
        Ok(vec![map_same!(input(c, 0)?, "math.abs", [F32 F64 F16 BF16], |x| x.abs(),
            [I64 I32 I16 I8 U64 U32 U16 U8], |x| Ok(if x.is_negative() { x.wrapping_neg() } else { x }))])
    },
};

pub static SIGN: OpDef = OpDef {
    name: "math.sign",
    summary: "-1, 0 or 1 by the sign of `x` (NaN stays NaN).",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: |c| infer_map(c, Class::Numeric, None),
    eval: |c| {
        Ok(vec![map_same!(input(c, 0)?, "math.sign", [F32 F64 F16 BF16],
            |x| if x > 0.0 { 1.0 } else if x < 0.0 { -1.0 } else { x },
            [I64 I32 I16 I8 U64 U32 U16 U8], |x| Ok(x.sign()))])
    },
};

pub static RELU: OpDef = OpDef {
    name: "math.relu",
    summary: "`max(0, x)`.",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: |c| infer_map(c, Class::SignedNumeric, None),
    eval: |c| {
        Ok(vec![map_same!(input(c, 0)?, "math.relu", [F32 F64 F16 BF16], |x| if x < 0.0 { 0.0 } else { x },
            [I64 I32 I16 I8], |x| Ok(x.max(0)))])
    },
};

// ---------------------------------------------------------------------------------------------
// Activations with attributes

pub static LEAKY_RELU: OpDef = OpDef {
    name: "math.leaky_relu",
    summary: "`x` for `x >= 0`, else `alpha * x`.",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::opt("alpha", AttrKind::Float, "0.01")],
    traits: EW,
    infer: infer_float,
    eval: |c| {
        let alpha = float_attr(c, "alpha", 0.01);
        Ok(vec![float_map!(input(c, 0)?, "math.leaky_relu", |x| if x < 0.0 { alpha as F * x } else { x })])
    },
};

pub static ELU: OpDef = OpDef {
    name: "math.elu",
    summary: "`x` for `x >= 0`, else `alpha * (exp(x) - 1)`.",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::opt("alpha", AttrKind::Float, "1.0")],
    traits: EW,
    infer: infer_float,
    eval: |c| {
        let alpha = float_attr(c, "alpha", 1.0);
        Ok(vec![float_map!(input(c, 0)?, "math.elu", |x| if x < 0.0 { alpha as F * x.exp_m1() } else { x })])
    },
};

/// SELU's default constants, as ONNX stores them (f32).
const SELU_ALPHA: f64 = 1.673_263_192_176_818_847_656_25;
const SELU_GAMMA: f64 = 1.050_701_022_148_132_324_218_75;

pub static SELU: OpDef = OpDef {
    name: "math.selu",
    summary: "`gamma * x` for `x > 0`, else `gamma * alpha * (exp(x) - 1)`.",
    operands: &["x"],
    results: &["y"],
    attrs: &[
        AttrDef::opt("alpha", AttrKind::Float, "1.67326319217681884765625"),
        AttrDef::opt("gamma", AttrKind::Float, "1.05070102214813232421875"),
    ],
    traits: EW,
    infer: infer_float,
    eval: |c| {
        let alpha = float_attr(c, "alpha", SELU_ALPHA);
        let gamma = float_attr(c, "gamma", SELU_GAMMA);
        Ok(vec![float_map!(input(c, 0)?, "math.selu", |x| {
            let (a, g) = (alpha as F, gamma as F);
            if x > 0.0 {
                g * x
            } else {
                g * (a * x.exp() - a)
            }
        })])
    },
};

pub static GELU: OpDef = OpDef {
    name: "math.gelu",
    summary: "Gaussian error linear unit, exact (`approximate=\"none\"`) or with the tanh \
              approximation (`approximate=\"tanh\"`).",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::opt("approximate", AttrKind::Str, "\"none\"")],
    traits: EW,
    infer: |c| {
        gelu_tanh(c.attrs.str("approximate"))?;
        infer_float(c)
    },
    eval: |c| {
        let x = input(c, 0)?;
        Ok(vec![if gelu_tanh(c.attrs.str("approximate"))? {
            float_map!(x, "math.gelu", |x| {
                let k = (2.0 / std::f64::consts::PI).sqrt() as F;
                0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
            })
        } else {
            float_map!(x, "math.gelu", |x| 0.5
                * x
                * (1.0 + Real::erf(x * std::f64::consts::FRAC_1_SQRT_2 as F)))
        }])
    },
};

fn gelu_tanh(approximate: Option<&str>) -> OpResult<bool> {
    match approximate.unwrap_or("none") {
        "none" => Ok(false),
        "tanh" => Ok(true),
        a => Err(format!("approximate must be \"none\" or \"tanh\", found {a:?}")),
    }
}

pub static HARD_SIGMOID: OpDef = OpDef {
    name: "math.hard_sigmoid",
    summary: "`max(0, min(1, alpha * x + beta))`.",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::opt("alpha", AttrKind::Float, "0.2"), AttrDef::opt("beta", AttrKind::Float, "0.5")],
    traits: EW,
    infer: infer_float,
    eval: |c| {
        let alpha = float_attr(c, "alpha", 0.2);
        let beta = float_attr(c, "beta", 0.5);
        Ok(vec![float_map!(input(c, 0)?, "math.hard_sigmoid", |x| unit_clamp(alpha as F * x + beta as F))])
    },
};

// ---------------------------------------------------------------------------------------------
// Float predicates

pub static IS_NAN: OpDef = OpDef {
    name: "math.is_nan",
    summary: "Whether each element is NaN (bool result).",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: infer_float_pred,
    eval: |c| Ok(vec![map_pred!(input(c, 0)?, "math.is_nan", |x| x.is_nan())]),
};

pub static IS_INF: OpDef = OpDef {
    name: "math.is_inf",
    summary: "Whether each element is infinite, counting -inf and +inf as selected by \
              `detect_negative` and `detect_positive` (bool result).",
    operands: &["x"],
    results: &["y"],
    attrs: &[
        AttrDef::opt("detect_negative", AttrKind::Int, "1"),
        AttrDef::opt("detect_positive", AttrKind::Int, "1"),
    ],
    traits: EW,
    infer: infer_float_pred,
    eval: |c| {
        let neg = c.attrs.int("detect_negative").unwrap_or(1) != 0;
        let pos = c.attrs.int("detect_positive").unwrap_or(1) != 0;
        Ok(vec![
            map_pred!(input(c, 0)?, "math.is_inf", |x| x.is_infinite() && if x > 0.0 { pos } else { neg })
        ])
    },
};

// ---------------------------------------------------------------------------------------------
// Clip and Cast

pub static CLIP: OpDef = OpDef {
    name: "math.clip",
    summary: "Limits `input` to [`min`, `max`] (each optional, one element); \
              `min(max(input, min), max)`, so `min > max` gives `max`.",
    operands: &["input", "min?", "max?"],
    results: &["output"],
    attrs: &[],
    traits: EW,
    infer: |c| {
        let s = elem(c, 0, Class::Numeric)?;
        for i in 1..c.operands.len().min(3) {
            if !c.has_operand(i) {
                continue;
            }
            let si = elem(c, i, Class::Numeric)?;
            if si != s {
                return Err(format!("operand #{i} has element type {si} but input has {s}"));
            }
            if let Some(n) = c.operands[i].num_elements().filter(|&n| n != 1) {
                return Err(format!("operand #{i} (a bound) must hold one element, found {n}"));
            }
        }
        Ok(vec![operand(c, 0)?.clone()])
    },
    eval: |c| {
        let mut out = input(c, 0)?.clone();
        if let Some(lo) = c.opt_input(1) {
            out = max2(&out, &to_scalar(lo, "min")?)?;
        }
        if let Some(hi) = c.opt_input(2) {
            out = min2(&out, &to_scalar(hi, "max")?)?;
        }
        Ok(vec![out])
    },
};

pub static CAST: OpDef = OpDef {
    name: "math.cast",
    summary: "Converts to the element type `to` (floats round to nearest even, floats to \
              integers truncate, integers wrap, non-zero is true). `saturate` and \
              `round_mode` concern only float8 targets.",
    operands: &["input"],
    results: &["output"],
    attrs: &[
        AttrDef::req("to", AttrKind::Type),
        AttrDef::opt("saturate", AttrKind::Int, "1"),
        AttrDef::opt("round_mode", AttrKind::Str, "\"up\""),
    ],
    traits: EW,
    infer: |c| {
        elem(c, 0, Class::Any)?;
        let to = c.attrs.ty("to").ok_or("missing attribute `to`")?;
        Ok(vec![TensorType::new(operand(c, 0)?.dims.clone(), to)])
    },
    eval: |c| {
        let to = c.attrs.ty("to").ok_or("missing attribute `to`")?;
        Ok(vec![cast(input(c, 0)?, to)])
    },
};

// ---------------------------------------------------------------------------------------------
// Further ONNX elementwise ops

float_unary!(ACOS, "math.acos", "Inverse cosine.", |x| x.acos());
float_unary!(ASIN, "math.asin", "Inverse sine.", |x| x.asin());
float_unary!(ATAN, "math.atan", "Inverse tangent.", |x| x.atan());
float_unary!(ACOSH, "math.acosh", "Inverse hyperbolic cosine.", |x| x.acosh());
float_unary!(ASINH, "math.asinh", "Inverse hyperbolic sine.", |x| x.asinh());
float_unary!(ATANH, "math.atanh", "Inverse hyperbolic tangent.", |x| x.atanh());
float_unary!(SINH, "math.sinh", "Hyperbolic sine.", |x| x.sinh());
float_unary!(COSH, "math.cosh", "Hyperbolic cosine.", |x| x.cosh());
float_unary!(TAN, "math.tan", "Tangent.", |x| x.tan());
float_unary!(SOFTSIGN, "math.softsign", "`x / (1 + |x|)`.", |x| x / (1.0 + x.abs()));

pub static THRESHOLDED_RELU: OpDef = OpDef {
    name: "math.thresholded_relu",
    summary: "`x` for `x > alpha`, else 0.",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::opt("alpha", AttrKind::Float, "1.0")],
    traits: EW,
    infer: infer_float,
    eval: |c| {
        let alpha = float_attr(c, "alpha", 1.0);
        Ok(vec![float_map!(input(c, 0)?, "math.thresholded_relu", |x| if x > alpha as F { x } else { 0.0 })])
    },
};

pub static CELU: OpDef = OpDef {
    name: "math.celu",
    summary: "`max(0, x) + min(0, alpha * (exp(x / alpha) - 1))`.",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::opt("alpha", AttrKind::Float, "1.0")],
    traits: EW,
    infer: infer_float,
    eval: |c| {
        let alpha = float_attr(c, "alpha", 1.0);
        Ok(vec![float_map!(input(c, 0)?, "math.celu", |x| {
            let a = alpha as F;
            if x > 0.0 {
                x
            } else {
                a * (x / a).exp_m1()
            }
        })])
    },
};

pub static SWISH: OpDef = OpDef {
    name: "math.swish",
    summary: "`x * sigmoid(alpha * x)`.",
    operands: &["x"],
    results: &["y"],
    attrs: &[AttrDef::opt("alpha", AttrKind::Float, "1.0")],
    traits: EW,
    infer: infer_float,
    eval: |c| {
        let alpha = float_attr(c, "alpha", 1.0);
        Ok(vec![float_map!(input(c, 0)?, "math.swish", |x| x * sigmoid(alpha as F * x))])
    },
};

pub static SHRINK: OpDef = OpDef {
    name: "math.shrink",
    summary: "`x + bias` for `x < -lambd`, `x - bias` for `x > lambd`, else 0.",
    operands: &["input"],
    results: &["output"],
    attrs: &[AttrDef::opt("bias", AttrKind::Float, "0.0"), AttrDef::opt("lambd", AttrKind::Float, "0.5")],
    traits: EW,
    infer: |c| infer_map(c, Class::Numeric, None),
    eval: |c| {
        let bias = float_attr(c, "bias", 0.0);
        let lambd = float_attr(c, "lambd", 0.5);
        Ok(vec![map_same!(input(c, 0)?, "math.shrink", [F32 F64 F16 BF16],
            |x| shrink(x as f64, lambd, bias) as F,
            [I64 I32 I16 I8 U64 U32 U16 U8], |x| Ok(cast_scalar(shrink(cast_scalar::<_, f64>(x), lambd, bias))))])
    },
};

fn shrink(x: f64, lambd: f64, bias: f64) -> f64 {
    if x < -lambd {
        x + bias
    } else if x > lambd {
        x - bias
    } else {
        0.0
    }
}

/// One element through the `Cast` rules.
fn cast_scalar<S: CastSrc, D: CastDst>(v: S) -> D {
    v.cast()
}

pub static PRELU: OpDef = OpDef {
    name: "math.prelu",
    summary: "`x` for `x >= 0`, else `slope * x` (`slope` broadcasts to `x`).",
    operands: &["x", "slope"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: |c| {
        let r = infer_bcast(c, Class::Numeric, None)?;
        // ONNX broadcasts slope to x only ("unidirectional"): the result keeps x's rank.
        if r[0].rank() != operand(c, 0)?.rank() {
            return Err(format!(
                "slope of rank {} does not broadcast to x of rank {}",
                operand(c, 1)?.rank(),
                operand(c, 0)?.rank()
            ));
        }
        Ok(r)
    },
    eval: |c| {
        Ok(vec![arith!(
            input(c, 0)?,
            input(c, 1)?,
            "math.prelu",
            |x, s| if x < 0.0 { s * x } else { x },
            Ok(if x.is_negative() { x.wrapping_mul(s) } else { x })
        )])
    },
};

/// Declares a binary bitwise op on integer tensors.
macro_rules! bitwise {
    ($id:ident, $name:literal, $summary:literal, |$x:ident, $y:ident| $body:expr) => {
        pub static $id: OpDef = OpDef {
            name: $name,
            summary: $summary,
            operands: &["a", "b"],
            results: &["c"],
            attrs: &[],
            traits: EW_COMM,
            infer: |c| infer_bcast(c, Class::Int, None),
            eval: |c| {
        Ok(vec![zip_same!(input(c, 0)?, input(c, 1)?, $name, [], |_p, _q| 0.0,
                    [I64 I32 I16 I8 U64 U32 U16 U8], |$x, $y| Ok($body))])
            },
        };
    };
}

bitwise!(BITWISE_AND, "math.bitwise_and", "Bitwise and of integer tensors.", |x, y| x & y);
bitwise!(BITWISE_OR, "math.bitwise_or", "Bitwise or of integer tensors.", |x, y| x | y);
bitwise!(BITWISE_XOR, "math.bitwise_xor", "Bitwise exclusive or of integer tensors.", |x, y| x ^ y);

pub static BITWISE_NOT: OpDef = OpDef {
    name: "math.bitwise_not",
    summary: "Bitwise complement of an integer tensor.",
    operands: &["x"],
    results: &["y"],
    attrs: &[],
    traits: EW,
    infer: |c| infer_map(c, Class::Int, None),
    eval: |c| {
        Ok(vec![map_same!(input(c, 0)?, "math.bitwise_not", [], |_p| 0.0,
            [I64 I32 I16 I8 U64 U32 U16 U8], |x| Ok(!x))])
    },
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attr::{Attr, Attrs};
    use crate::types::Dim;
    use half::f16;

    fn t<T: Clone>(shape: &[usize], v: &[T]) -> ArrayD<T> {
        ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).expect("test shape")
    }

    fn run_attrs(op: &OpDef, attrs: Attrs, inputs: Vec<Tensor>) -> OpResult<Tensor> {
        let operand_types: Vec<TensorType> = inputs.iter().map(Tensor::ty).collect();
        let consts: Vec<Option<Tensor>> = inputs.iter().map(|t| Some(t.clone())).collect();
        let ictx = InferCtx { attrs: &attrs, operands: &operand_types, consts: &consts, num_results: 1 };
        let result_types = (op.infer)(&ictx)?;
        let ctx = EvalCtx {
            attrs: &attrs,
            inputs: &inputs,
            operand_types: &operand_types,
            result_types: &result_types,
        };
        let mut out = (op.eval)(&ctx)?;
        assert_eq!(out.len(), 1);
        let out = out.remove(0);
        // The evaluation must agree with the shape rule.
        crate::interp::check_value(&result_types[0], &out)?;
        Ok(out)
    }

    fn run(op: &OpDef, inputs: Vec<Tensor>) -> OpResult<Tensor> {
        run_attrs(op, Attrs::new(), inputs)
    }

    fn f32s(x: &Tensor) -> Vec<f32> {
        x.to_f64_vec().into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn add_broadcasts() {
        let a = Tensor::F32(t(&[2, 1, 3], &[0., 1., 2., 3., 4., 5.]));
        let b = Tensor::F32(t(&[4, 1], &[0., 10., 20., 30.]));
        let c = run(&ADD, vec![a, b]).unwrap();
        assert_eq!(c.shape(), &[2, 4, 3]);
        let v = f32s(&c);
        assert_eq!(&v[..6], &[0., 1., 2., 10., 11., 12.]);
        assert_eq!(v[23], 35.);
        let bad = run(&ADD, vec![Tensor::F32(t(&[2], &[0.; 2])), Tensor::F32(t(&[3], &[0.; 3]))]);
        assert!(bad.unwrap_err().contains("broadcast"));
        let mixed = run(&ADD, vec![Tensor::F32(t(&[1], &[0.])), Tensor::I32(t(&[1], &[0]))]);
        assert!(mixed.unwrap_err().contains("element type"));
    }

    #[test]
    fn integer_arithmetic_wraps_and_truncates() {
        let c = run(&ADD, vec![Tensor::I8(t(&[2], &[127, -128])), Tensor::I8(t(&[2], &[1, -1]))]).unwrap();
        assert_eq!(c, Tensor::I8(t(&[2], &[-128, 127])));
        let c = run(&DIV, vec![Tensor::I32(t(&[4], &[7, -7, 7, -7])), Tensor::I32(t(&[4], &[2, 2, -2, -2]))])
            .unwrap();
        assert_eq!(c, Tensor::I32(t(&[4], &[3, -3, -3, 3])));
        let z = run(&DIV, vec![Tensor::U8(t(&[1], &[1])), Tensor::U8(t(&[1], &[0]))]);
        assert!(z.unwrap_err().contains("division by zero"));
    }

    #[test]
    fn half_precision_computes_in_f32() {
        let a = Tensor::F16(t(&[2], &[f16::from_f32(1.0), f16::from_f32(2048.0)]));
        let b = Tensor::F16(t(&[2], &[f16::from_f32(1.0 / 3.0), f16::from_f32(1.0)]));
        let c = run(&ADD, vec![a.clone(), b]).unwrap();
        // 2048 + 1 is a tie in f16 (spacing 2) and rounds to even.
        assert_eq!(f32s(&c), vec![f16::from_f32(1.0 + 1.0 / 3.0).to_f32(), 2048.0]);
        let m = run(&MEAN, vec![a.clone(), a]).unwrap();
        assert_eq!(f32s(&m), vec![1.0, 2048.0]);
    }

    fn mod_attrs(fmod: i64) -> Attrs {
        Attrs::new().with("fmod", Attr::Int(fmod))
    }

    #[test]
    fn mod_sign_rules() {
        // Expected values from numpy's `mod` and `fmod`.
        let a = Tensor::I8(t(&[6], &[-7, -3, 3, 7, 0, -128]));
        let b = Tensor::I8(t(&[6], &[3, -3, -2, -2, 5, -1]));
        let m0 = run_attrs(&MOD, mod_attrs(0), vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(m0, Tensor::I8(t(&[6], &[2, 0, -1, -1, 0, 0])));
        let m1 = run_attrs(&MOD, mod_attrs(1), vec![a, b]).unwrap();
        assert_eq!(m1, Tensor::I8(t(&[6], &[-1, 0, 1, 1, 0, 0])));
        let u = run(&MOD, vec![Tensor::U16(t(&[2], &[7, 65535])), Tensor::U16(t(&[1], &[4]))]).unwrap();
        assert_eq!(u, Tensor::U16(t(&[2], &[3, 3])));
        let z = run(&MOD, vec![Tensor::I64(t(&[1], &[3])), Tensor::I64(t(&[1], &[0]))]);
        assert!(z.is_err());

        let inf = f32::INFINITY;
        let fa = Tensor::F32(t(&[7], &[-4.5, 4.5, -0.0, 5.0, -5.0, inf, 3.0]));
        let fb = Tensor::F32(t(&[7], &[2.0, -2.0, 3.0, inf, inf, 2.0, 0.0]));
        let m0 = f32s(&run_attrs(&MOD, mod_attrs(0), vec![fa.clone(), fb.clone()]).unwrap());
        assert_eq!(&m0[..5], &[1.5, -1.5, 0.0, 5.0, inf]);
        assert!(m0[2].is_sign_positive());
        assert!(m0[5].is_nan() && m0[6].is_nan());
        let m1 = f32s(&run_attrs(&MOD, mod_attrs(1), vec![fa, fb]).unwrap());
        assert_eq!(&m1[..5], &[-0.5, 0.5, -0.0, 5.0, -5.0]);
        assert!(m1[5].is_nan() && m1[6].is_nan());
        assert!(run_attrs(&MOD, mod_attrs(2), vec![Tensor::F32(t(&[1], &[1.0])); 2]).is_err());
    }

    #[test]
    fn pow_type_mixes() {
        // int base, float exponent: computed in f64, truncated (numpy: [1, 9, -8]).
        let p = run(&POW, vec![Tensor::I32(t(&[3], &[2, 3, -2])), Tensor::F32(t(&[3], &[0.5, 2.0, 3.0]))])
            .unwrap();
        assert_eq!(p, Tensor::I32(t(&[3], &[1, 9, -8])));
        // float base, integer exponent.
        let p = run(&POW, vec![Tensor::F32(t(&[2], &[2.0, 4.0])), Tensor::I64(t(&[2], &[-1, 3]))]).unwrap();
        assert_eq!(p, Tensor::F32(t(&[2], &[0.5, 64.0])));
        // integers stay exact beyond 2^53 and wrap on overflow.
        let p =
            run(&POW, vec![Tensor::I64(t(&[3], &[3, 2, -1])), Tensor::I64(t(&[3], &[39, 64, -3]))]).unwrap();
        assert_eq!(p, Tensor::I64(t(&[3], &[4052555153018976267, 0, -1])));
        assert!(run(&POW, vec![Tensor::I32(t(&[1], &[0])), Tensor::I32(t(&[1], &[-1]))]).is_err());
        // scalar exponent broadcast.
        let p = run(&POW, vec![Tensor::F32(t(&[2], &[3.0, -2.0])), Tensor::F32(t(&[], &[2.0]))]).unwrap();
        assert_eq!(f32s(&p), vec![9.0, 4.0]);
    }

    #[test]
    fn round_is_half_to_even() {
        let x = Tensor::F32(t(&[6], &[0.5, 1.5, 2.5, -0.5, -1.5, 2.4999]));
        assert_eq!(f32s(&run(&ROUND, vec![x]).unwrap()), vec![0.0, 2.0, 2.0, -0.0, -2.0, 2.0]);
    }

    #[test]
    fn clip_bounds() {
        let x = || Tensor::F32(t(&[4], &[-2.0, 0.5, 3.0, f32::NAN]));
        let none = Tensor::F32(t(&[0], &[]));
        let hi = Tensor::F32(t(&[], &[1.0]));
        // min absent (empty placeholder in the middle), max given.
        let c = f32s(&run(&CLIP, vec![x(), none, hi.clone()]).unwrap());
        assert_eq!(&c[..3], &[-2.0, 0.5, 1.0]);
        assert!(c[3].is_nan());
        // min only, as a one-element 1-D tensor.
        let c = f32s(&run(&CLIP, vec![x(), Tensor::F32(t(&[1], &[0.0]))]).unwrap());
        assert_eq!(&c[..3], &[0.0, 0.5, 3.0]);
        // min > max gives max everywhere.
        let c = f32s(&run(&CLIP, vec![x(), Tensor::F32(t(&[], &[2.0])), hi]).unwrap());
        assert_eq!(&c[..3], &[1.0, 1.0, 1.0]);
        // no bounds, integers.
        let i = Tensor::I8(t(&[3], &[-128, 0, 127]));
        assert_eq!(run(&CLIP, vec![i.clone()]).unwrap(), i);
        let c = run(&CLIP, vec![i, Tensor::I8(t(&[], &[-5])), Tensor::I8(t(&[], &[5]))]).unwrap();
        assert_eq!(c, Tensor::I8(t(&[3], &[-5, 0, 5])));
        assert!(run(&CLIP, vec![x(), Tensor::F32(t(&[2], &[0.0, 1.0]))]).is_err());
    }

    fn cast_to(x: Tensor, to: ScalarType) -> Tensor {
        run_attrs(&CAST, Attrs::new().with("to", Attr::Type(to)), vec![x]).unwrap()
    }

    #[test]
    fn cast_rules() {
        let f = Tensor::F32(t(&[5], &[-9.0, -1.7, 0.0, 1.9, 8.0]));
        assert_eq!(cast_to(f.clone(), ScalarType::I32), Tensor::I32(t(&[5], &[-9, -1, 0, 1, 8])));
        // 4-bit targets wrap (ONNX node tests: -9 -> 7, 8 -> -8; unsigned -9 -> 7).
        assert_eq!(cast_to(f.clone(), ScalarType::I4), Tensor::I4(t(&[5], &[7, -1, 0, 1, -8])));
        assert_eq!(cast_to(f.clone(), ScalarType::U4), Tensor::U4(t(&[5], &[7, 15, 0, 1, 8])));
        assert_eq!(cast_to(f, ScalarType::Bool), Tensor::Bool(t(&[5], &[true, true, false, true, true])));
        assert_eq!(
            cast_to(Tensor::F32(t(&[1], &[f32::NAN])), ScalarType::Bool),
            Tensor::Bool(t(&[1], &[true]))
        );
        // Integers narrow by keeping the low bits.
        assert_eq!(
            cast_to(Tensor::I32(t(&[2], &[300, -200])), ScalarType::I8),
            Tensor::I8(t(&[2], &[44, 56]))
        );
        assert_eq!(cast_to(Tensor::I8(t(&[1], &[-1])), ScalarType::U16), Tensor::U16(t(&[1], &[65535])));
        assert_eq!(
            cast_to(Tensor::Bool(t(&[2], &[true, false])), ScalarType::F32),
            Tensor::F32(t(&[2], &[1.0, 0.0]))
        );
        assert_eq!(
            cast_to(Tensor::U64(t(&[1], &[u64::MAX])), ScalarType::F32),
            Tensor::F32(t(&[1], &[1.8446744e19]))
        );
        // f32 -> f16 rounds to nearest even; overflow gives inf.
        let h = cast_to(Tensor::F32(t(&[3], &[1.0 + 1.0 / 2048.0, 65520.0, 0.1])), ScalarType::F16);
        assert_eq!(f32s(&h), vec![1.0, f32::INFINITY, f16::from_f32(0.1).to_f32()]);
        // f64 -> f16 rounds once: just above a tie rounds up (rounding through f32 would not).
        let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
        let Tensor::F16(h) = cast_to(Tensor::F64(t(&[1], &[x])), ScalarType::F16) else { panic!() };
        assert_eq!(h.iter().next().map(|v| v.to_bits()), Some(0x3C01));
        // i4 -> i8 keeps the sign.
        assert_eq!(cast_to(Tensor::I4(t(&[2], &[-8, 7])), ScalarType::I8), Tensor::I8(t(&[2], &[-8, 7])));
        // bf16 -> f32 is exact.
        let b = Tensor::BF16(t(&[1], &[half::bf16::from_f32(0.478516)]));
        assert_eq!(f32s(&cast_to(b, ScalarType::F32)), vec![half::bf16::from_f32(0.478516).to_f32()]);
    }

    #[test]
    fn bit_shift_rules() {
        let dir = |d: &str| Attrs::new().with("direction", Attr::Str(d.into()));
        let x = Tensor::I8(t(&[5], &[-16, 16, 1, -1, 64]));
        let y = Tensor::I8(t(&[5], &[2, 2, 8, -1, 1]));
        assert_eq!(
            run_attrs(&BIT_SHIFT, dir("RIGHT"), vec![x.clone(), y.clone()]).unwrap(),
            Tensor::I8(t(&[5], &[-4, 4, 0, -1, 32]))
        );
        assert_eq!(
            run_attrs(&BIT_SHIFT, dir("LEFT"), vec![x, y]).unwrap(),
            Tensor::I8(t(&[5], &[-64, 64, 0, 0, -128]))
        );
        let u = Tensor::U8(t(&[2], &[255, 1]));
        assert_eq!(
            run_attrs(&BIT_SHIFT, dir("RIGHT"), vec![u, Tensor::U8(t(&[1], &[4]))]).unwrap(),
            Tensor::U8(t(&[2], &[15, 0]))
        );
        assert!(run_attrs(&BIT_SHIFT, dir("UP"), vec![Tensor::U8(t(&[1], &[1])); 2]).is_err());
    }

    #[test]
    fn comparisons_and_where() {
        let a = Tensor::I32(t(&[3], &[1, 2, 3]));
        let b = Tensor::I32(t(&[], &[2]));
        assert_eq!(
            run(&LESS, vec![a.clone(), b.clone()]).unwrap(),
            Tensor::Bool(t(&[3], &[true, false, false]))
        );
        assert_eq!(run(&EQUAL, vec![a, b]).unwrap(), Tensor::Bool(t(&[3], &[false, true, false])));
        let nan = Tensor::F32(t(&[1], &[f32::NAN]));
        assert_eq!(run(&EQUAL, vec![nan.clone(), nan]).unwrap(), Tensor::Bool(t(&[1], &[false])));
        let cond = Tensor::Bool(t(&[2, 1], &[true, false]));
        let x = Tensor::I64(t(&[2], &[1, 2]));
        let y = Tensor::I64(t(&[], &[9]));
        let w = run(&WHERE, vec![cond, x, y]).unwrap();
        assert_eq!(w, Tensor::I64(t(&[2, 2], &[1, 2, 9, 9])));
    }

    #[test]
    fn variadic_min_max_sum() {
        let a = Tensor::F32(t(&[3], &[1.0, f32::NAN, 5.0]));
        let b = Tensor::F32(t(&[1], &[2.0]));
        let c = Tensor::F32(t(&[2, 1], &[0.0, 3.0]));
        let m = f32s(&run(&MIN, vec![a.clone(), b.clone(), c.clone()]).unwrap());
        assert_eq!(m[0], 0.0);
        assert!(m[1].is_nan() && m[4].is_nan());
        assert_eq!(m[5], 2.0);
        let s = run(&SUM, vec![a.clone(), b, c]).unwrap();
        assert_eq!(s.shape(), &[2, 3]);
        assert_eq!(run(&MAX, vec![a.clone()]).unwrap().shape(), &[3]);
        let u = run(&MAX, vec![Tensor::U64(t(&[2], &[u64::MAX, 0])), Tensor::U64(t(&[1], &[7]))]).unwrap();
        assert_eq!(u, Tensor::U64(t(&[2], &[u64::MAX, 7])));
    }

    #[test]
    fn activations() {
        let x = Tensor::F32(t(&[4], &[-1000.0, -1.0, 0.0, 1000.0]));
        let s = f32s(&run(&SIGMOID, vec![x.clone()]).unwrap());
        assert_eq!(s, vec![0.0, 1.0 / (1.0 + 1f32.exp()), 0.5, 1.0]);
        let sp = f32s(&run(&SOFTPLUS, vec![x.clone()]).unwrap());
        assert_eq!((sp[0], sp[3]), (0.0, 1000.0));
        let g = f32s(&run(&GELU, vec![Tensor::F32(t(&[1], &[1.0]))]).unwrap());
        assert!((g[0] - 0.841_344_7).abs() < 1e-6);
        let tanh = Attrs::new().with("approximate", Attr::Str("tanh".into()));
        let g = f32s(&run_attrs(&GELU, tanh, vec![Tensor::F32(t(&[1], &[1.0]))]).unwrap());
        assert!((g[0] - 0.841_192).abs() < 1e-5);
        let l =
            run_attrs(&LEAKY_RELU, Attrs::new().with("alpha", Attr::Float(0.1)), vec![x.clone()]).unwrap();
        assert_eq!(f32s(&l), vec![-100.0, -0.1, 0.0, 1000.0]);
        let h = f32s(&run(&HARD_SWISH, vec![Tensor::F32(t(&[3], &[-4.0, 1.0, 4.0]))]).unwrap());
        assert_eq!(h, vec![0.0, 1.0 * (1.0 / 6.0 + 0.5), 4.0]);
        let r = run(&RELU, vec![Tensor::I8(t(&[2], &[-3, 3]))]).unwrap();
        assert_eq!(r, Tensor::I8(t(&[2], &[0, 3])));
        assert!(run(&SQRT, vec![Tensor::I32(t(&[1], &[4]))]).is_err());
    }

    #[test]
    fn predicates() {
        let x = Tensor::F16(t(&[3], &[f16::INFINITY, f16::NEG_INFINITY, f16::NAN]));
        assert_eq!(run(&IS_NAN, vec![x.clone()]).unwrap(), Tensor::Bool(t(&[3], &[false, false, true])));
        let neg_only = Attrs::new().with("detect_positive", Attr::Int(0));
        assert_eq!(
            run_attrs(&IS_INF, neg_only, vec![x]).unwrap(),
            Tensor::Bool(t(&[3], &[false, true, false]))
        );
    }

    #[test]
    fn shape_rules_keep_symbolic_dims() {
        let a = TensorType::new(vec![Dim::Sym("n".into()), Dim::Static(1)], ScalarType::F32);
        let b = TensorType::new(vec![Dim::Static(4)], ScalarType::F32);
        let attrs = Attrs::new();
        let ops = [a, b];
        let ctx = InferCtx { attrs: &attrs, operands: &ops, consts: &[None, None], num_results: 1 };
        let r = (LESS.infer)(&ctx).unwrap();
        assert_eq!(r[0], TensorType::new(vec![Dim::Sym("n".into()), Dim::Static(4)], ScalarType::Bool));
    }

    #[test]
    fn further_ops() {
        let x = Tensor::F32(t(&[4], &[-2.0, -0.25, 0.25, 2.0]));
        let sh = Attrs::new().with("lambd", Attr::Float(0.5)).with("bias", Attr::Float(0.5));
        assert_eq!(
            f32s(&run_attrs(&SHRINK, sh.clone(), vec![x.clone()]).unwrap()),
            vec![-1.5, 0.0, 0.0, 1.5]
        );
        let xi = Tensor::I32(t(&[3], &[-3, 0, 3]));
        assert_eq!(run_attrs(&SHRINK, sh, vec![xi]).unwrap(), Tensor::I32(t(&[3], &[-2, 0, 2])));
        let slope = Tensor::F32(t(&[1], &[0.5]));
        assert_eq!(f32s(&run(&PRELU, vec![x.clone(), slope]).unwrap()), vec![-1.0, -0.125, 0.25, 2.0]);
        let wide = Tensor::F32(t(&[2, 4], &[0.0; 8]));
        assert!(run(&PRELU, vec![x.clone(), wide]).is_err());
        let c = f32s(&run(&CELU, vec![x.clone()]).unwrap());
        assert_eq!((c[0], c[3]), ((-2f32).exp_m1(), 2.0));
        let th = f32s(&run(&THRESHOLDED_RELU, vec![x]).unwrap());
        assert_eq!(th, vec![0.0, 0.0, 0.0, 2.0]);
        let a = Tensor::U8(t(&[2], &[0b1100, 0xff]));
        let b = Tensor::U8(t(&[1], &[0b1010]));
        assert_eq!(run(&BITWISE_XOR, vec![a.clone(), b]).unwrap(), Tensor::U8(t(&[2], &[0b0110, 0xf5])));
        assert_eq!(run(&BITWISE_NOT, vec![a]).unwrap(), Tensor::U8(t(&[2], &[0xf3, 0])));
        assert!(run(&BITWISE_AND, vec![Tensor::F32(t(&[1], &[1.0])); 2]).is_err());
    }
}
