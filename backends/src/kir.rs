//! Kernel IR: the loop-level form every machine backend starts from.
//!
//! A [`Kernel`] is a small imperative program over flat buffers: counted loops with static trip
//! counts, scalar expressions, loads and stores at computed element indices, mutable locals, and a
//! few coarse statements (GEMM, copies) that a backend may implement with a hand-tuned routine. All
//! shapes are static, so every loop bound is a constant. The form is target independent: the LLVM
//! backend lowers it to IR that LLVM's vectorizer handles, and a C-emitting backend can print it.
//!
//! Buffers are kernel parameters; a [`Program`](crate::lower::Program) says which arena slot,
//! graph input/output or constant each parameter of each kernel call is bound to.
//! [`print`](mod@print) gives both a stable text form (`docs/kernel-ir.md`).

use crate::quant::{QChannel, QGemmDesc, QOut, QWeights};
use edgec_ir::ScalarType;

pub mod print;
pub use print::print_kernel;

/// Defines a `u32` index newtype whose `Display` is `PREFIX<index>`, the name the text form
/// (`print`) gives it.
macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);

        impl $name {
            /// The handle of position `i`; a program never holds 2^32 of them.
            pub fn new(i: usize) -> Self {
                $name(u32::try_from(i).expect(concat!(stringify!($name), " out of range")))
            }
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

handle!(
    /// A kernel of a [`Program`](crate::lower::Program) (index into its `kernels`); prints as `k3`.
    KernelId,
    "k"
);
handle!(
    /// A constant of a [`Program`](crate::lower::Program) (index into its `consts`); prints as `c5`.
    ConstId,
    "c"
);

/// A kernel parameter (buffer) index.
pub type BufId = usize;
/// A scalar variable index (loop index or mutable local).
pub type VarId = usize;

/// Scalar types in kernel code. `Idx` is the target's pointer-sized integer, used for indices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    Idx,
    Bool,
    F16,
    BF16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
}

impl Ty {
    /// The kernel type of a tensor element type; sub-byte types have none.
    pub fn of(s: ScalarType) -> Option<Ty> {
        Some(match s {
            ScalarType::F32 => Ty::F32,
            ScalarType::F16 => Ty::F16,
            ScalarType::BF16 => Ty::BF16,
            ScalarType::F64 => Ty::F64,
            ScalarType::I64 => Ty::I64,
            ScalarType::I32 => Ty::I32,
            ScalarType::I16 => Ty::I16,
            ScalarType::I8 => Ty::I8,
            ScalarType::U64 => Ty::U64,
            ScalarType::U32 => Ty::U32,
            ScalarType::U16 => Ty::U16,
            ScalarType::U8 => Ty::U8,
            ScalarType::Bool => Ty::Bool,
            ScalarType::I4 | ScalarType::U4 => return None,
        })
    }
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::BF16 | Ty::F32 | Ty::F64)
    }
    pub fn is_signed(self) -> bool {
        matches!(self, Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 | Ty::Idx)
    }
    pub fn is_int(self) -> bool {
        !self.is_float() && self != Ty::Bool
    }
    /// Bytes one element occupies in memory (`Idx` never lives in memory).
    pub fn bytes(self) -> usize {
        match self {
            Ty::Bool | Ty::I8 | Ty::U8 => 1,
            Ty::F16 | Ty::BF16 | Ty::I16 | Ty::U16 => 2,
            Ty::F32 | Ty::I32 | Ty::U32 => 4,
            Ty::F64 | Ty::I64 | Ty::U64 | Ty::Idx => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Ty::Idx => "idx",
            Ty::Bool => "bool",
            Ty::F16 => "f16",
            Ty::BF16 => "bf16",
            Ty::F32 => "f32",
            Ty::F64 => "f64",
            Ty::I8 => "i8",
            Ty::I16 => "i16",
            Ty::I32 => "i32",
            Ty::I64 => "i64",
            Ty::U8 => "u8",
            Ty::U16 => "u16",
            Ty::U32 => "u32",
            Ty::U64 => "u64",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Abs,
    Sqrt,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    Trunc,
    /// Logical not for `Bool`, bitwise not for integers.
    Not,
    IsNan,
    /// +inf or -inf.
    IsInf,
    IsPosInf,
    IsNegInf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// Float division; integer division truncating toward zero.
    Div,
    /// Remainder with the sign of the dividend (C `%`, `fmod`).
    Rem,
    /// NaN-propagating for floats.
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    /// Logical for unsigned, arithmetic for signed.
    Shr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// The operator as C and the kernel-IR text form spell it.
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// Transcendental functions; machine backends expand them inline (no libm on bare metal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MathFn {
    Exp,
    Expm1,
    Log,
    Log1p,
    Tanh,
    Sigmoid,
    Erf,
    Sin,
    Cos,
    Tan,
    Atan,
    Asin,
    Acos,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
    /// `pow(x, y)`: two arguments.
    Pow,
}

impl MathFn {
    pub const ALL: [MathFn; 19] = [
        MathFn::Exp,
        MathFn::Expm1,
        MathFn::Log,
        MathFn::Log1p,
        MathFn::Tanh,
        MathFn::Sigmoid,
        MathFn::Erf,
        MathFn::Sin,
        MathFn::Cos,
        MathFn::Tan,
        MathFn::Atan,
        MathFn::Asin,
        MathFn::Acos,
        MathFn::Sinh,
        MathFn::Cosh,
        MathFn::Asinh,
        MathFn::Acosh,
        MathFn::Atanh,
        MathFn::Pow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MathFn::Exp => "exp",
            MathFn::Expm1 => "expm1",
            MathFn::Log => "log",
            MathFn::Log1p => "log1p",
            MathFn::Tanh => "tanh",
            MathFn::Sigmoid => "sigmoid",
            MathFn::Erf => "erf",
            MathFn::Sin => "sin",
            MathFn::Cos => "cos",
            MathFn::Tan => "tan",
            MathFn::Atan => "atan",
            MathFn::Asin => "asin",
            MathFn::Acos => "acos",
            MathFn::Sinh => "sinh",
            MathFn::Cosh => "cosh",
            MathFn::Asinh => "asinh",
            MathFn::Acosh => "acosh",
            MathFn::Atanh => "atanh",
            MathFn::Pow => "pow",
        }
    }

    /// Number of (scalar float) arguments.
    pub fn arity(self) -> usize {
        if self == MathFn::Pow {
            2
        } else {
            1
        }
    }
}

/// A scalar expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A float constant of the given float type.
    FConst(f64, Ty),
    /// An integer (or bool, or index) constant of the given type.
    IConst(i64, Ty),
    Var(VarId),
    /// Element `index` of a buffer.
    Load(BufId, Box<Expr>),
    Un(UnOp, Box<Expr>),
    Bin(BinOp, Box<Expr>, Box<Expr>),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Numeric conversion (float→int truncates toward zero, saturating; to `Bool` is `!= 0`).
    Cast(Ty, Box<Expr>),
    Math(MathFn, Vec<Expr>),
}

/// A run of elements of a buffer, for the coarse statements.
#[derive(Clone, Debug, PartialEq)]
pub struct View {
    pub buf: BufId,
    /// First element.
    pub offset: Expr,
}

/// Shape and layout of a matrix multiply `C (m×n) = A (m×k) · B (k×n)` on row-major views: what
/// the f32 ([`GemmSpec`]) and int8 ([`QGemmSpec`]) products have in common.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmShape {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A is stored K×M (transposed).
    pub a_trans: bool,
    /// B is stored N×K (transposed).
    pub b_trans: bool,
    /// Elements between consecutive stored rows of A, B and C.
    pub lda: usize,
    pub ldb: usize,
    pub ldc: usize,
}

impl GemmShape {
    /// Dense `C[m×n] = A[m×k]·B[k×n]`, nothing transposed, tight leading dimensions (`lda = k`,
    /// `ldb = ldc = n`). Callers override what differs with struct update syntax.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmShape { m, n, k, a_trans: false, b_trans: false, lda: k, ldb: n, ldc: n }
    }
}

/// A matrix multiply on f32 views (`Stmt::Gemm`).
#[derive(Clone, Debug, PartialEq)]
pub struct GemmSpec {
    pub shape: GemmShape,
    /// `C += A·B` instead of `C = A·B`.
    pub accumulate: bool,
    /// B is a compile-time table already in the backend's packed panel layout (see
    /// `LowerOptions::gemm_pack_b`); `ldb`/`b_trans` describe the original constant.
    pub b_prepacked: bool,
}

impl GemmSpec {
    /// `C = A·B` of this shape, with B read as stored.
    pub fn new(shape: GemmShape) -> Self {
        GemmSpec { shape, accumulate: false, b_prepacked: false }
    }
}

/// A bias added to every element of a GEMM's result: `C[i][j] += bias[i]` (`per_row`, one value
/// per row of C) or `bias[j]`. Added once, after the product (and after C's old value when the
/// product accumulates).
#[derive(Clone, Debug, PartialEq)]
pub struct GemmBias {
    pub view: View,
    pub per_row: bool,
}

/// Shape and quantization of an int8 product with int32 accumulation (`Stmt::QGemm`):
/// `C[i][j] = clamp(requantize(Σ_k (A[i][k] − a_zp)(B[k][j] − b_zp) + bias[ch], mult[ch],
/// shift[ch]) + c_zp, act_min, act_max)`, `ch = i` (per row) or `j` (per column). The fields are
/// those of [`QGemmDesc`] (see `crate::quant` for the exact arithmetic) except its bias flag,
/// which is whether the statement has a bias view.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QGemmSpec {
    pub shape: GemmShape,
    pub a_zp: i32,
    pub b_zp: i32,
    pub c_zp: i32,
    pub act_min: i32,
    pub act_max: i32,
    pub channel: QChannel,
    /// The operand holding the (signed) weights; only it can be prepacked.
    pub weights: QWeights,
    /// The weight operand is a compile-time table in the backend's packed layout (panels plus
    /// sums along K); `*_trans`/`ld*` describe the original constant.
    pub prepacked: bool,
    /// [`QOut::I8`]: C is `I8`, requantized. [`QOut::I32`]: C is `I32`, the raw accumulators
    /// (plus the bias, if any); `mult`/`shift` are not read.
    pub out: QOut,
}

impl QGemmSpec {
    /// Dense `C[m×n] = A[m×k]·B[k×n]` ([`GemmShape::new`]) with the defaults of
    /// [`QGemmSpec::with_shape`].
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        QGemmSpec::with_shape(GemmShape::new(m, n, k))
    }

    /// A product of this shape whose weights are B (prepacked, one channel per column); zero
    /// points 0; int8 output over the whole range. Callers override what differs with struct
    /// update syntax.
    pub fn with_shape(shape: GemmShape) -> Self {
        QGemmSpec {
            shape,
            a_zp: 0,
            b_zp: 0,
            c_zp: 0,
            act_min: -128,
            act_max: 127,
            channel: QChannel::PerCol,
            weights: QWeights::B,
            prepacked: true,
            out: QOut::I8,
        }
    }

    /// The routine's description, with or without a bias.
    pub fn desc(&self, bias: bool) -> QGemmDesc {
        let s = &self.shape;
        QGemmDesc {
            m: s.m,
            n: s.n,
            k: s.k,
            a_trans: s.a_trans,
            b_trans: s.b_trans,
            lda: s.lda,
            ldb: s.ldb,
            ldc: s.ldc,
            a_zp: self.a_zp,
            b_zp: self.b_zp,
            c_zp: self.c_zp,
            act_min: self.act_min,
            act_max: self.act_max,
            channel: self.channel,
            bias,
            weights: self.weights,
            prepacked: self.prepacked,
            out: self.out,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `for var in 0..extent`.
    For {
        var: VarId,
        extent: u64,
        body: Vec<Stmt>,
    },
    Store {
        buf: BufId,
        index: Expr,
        value: Expr,
    },
    /// Declares (or re-initializes) a mutable local.
    Let {
        var: VarId,
        value: Expr,
    },
    Assign {
        var: VarId,
        value: Expr,
    },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    /// f32 GEMM on views, plus an optional bias (folded into the routine's store of C, so the
    /// result is not read back); `scratch` is a buffer of at least the backend's packing size.
    Gemm {
        spec: GemmSpec,
        a: View,
        b: View,
        c: View,
        bias: Option<GemmBias>,
        scratch: Option<BufId>,
    },
    /// int8 GEMM with int32 accumulation and per-channel requantization ([`QGemmSpec`]).
    /// `a`, `b` are `I8` views (a prepacked weight operand is the `I8` packed table), `c` is
    /// `I8` (or `I32` for [`QOut::I32`], whose `mult`/`shift` are not read); `bias` (len =
    /// channels), `mult` and `shift` are `I32` views; `scratch` is a buffer of at least the
    /// backend's scratch size for this product (4-byte aligned).
    QGemm {
        spec: QGemmSpec,
        a: View,
        b: View,
        c: View,
        bias: Option<View>,
        mult: View,
        shift: View,
        scratch: Option<BufId>,
    },
    /// Copies `elems` elements between buffers of the same element type.
    Copy {
        dst: View,
        src: View,
        elems: u64,
    },
    /// `y[i] = table[x[i] + 128]` for `i < elems`: `x`, `y` and the 256-entry `table` are `I8`
    /// (`q.lookup`; the backend uses byte permutes where the target has them).
    Lookup {
        x: View,
        y: View,
        table: View,
        elems: u64,
    },
}

/// How a kernel uses a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// Temporary storage private to one call.
    Scratch,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub ty: Ty,
    /// Length in elements.
    pub len: u64,
    pub access: Access,
}

/// One kernel: a function over its parameter buffers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Kernel {
    pub name: String,
    pub params: Vec<Param>,
    /// Type of each variable.
    pub vars: Vec<Ty>,
    pub body: Vec<Stmt>,
    /// `(read param, write param)` pairs that may share storage: the kernel reads each element
    /// of the first only at the index where it then writes the second, and nothing else touches
    /// either at that index, so the planner may put the result over an operand that dies here
    /// (see [`Kernel::in_place`]).
    pub inplace: Vec<(BufId, BufId)>,
    /// Set when the kernel only copies operands into contiguous runs of one output (a concat):
    /// the output parameter and, per operand parameter, the element offset of its run. The
    /// planner may let the operands' producers write there directly and drop the call.
    pub concat: Option<(BufId, Vec<(BufId, u64)>)>,
}

impl Kernel {
    /// The variant of this kernel that computes `out` over `input`'s storage: loads of `input`
    /// read `out` instead (the caller binds both to the same bytes; `input` is left unread, so
    /// the parameters stay `noalias`). `(input, out)` must be one of [`Kernel::inplace`]'s pairs.
    pub fn in_place(&self, input: BufId, out: BufId) -> Kernel {
        fn expr(e: &mut Expr, from: BufId, to: BufId) {
            match e {
                Expr::Load(b, i) => {
                    if *b == from {
                        *b = to;
                    }
                    expr(i, from, to);
                }
                Expr::FConst(..) | Expr::IConst(..) | Expr::Var(_) => {}
                Expr::Un(_, a) | Expr::Cast(_, a) => expr(a, from, to),
                Expr::Bin(_, a, b) | Expr::Cmp(_, a, b) => {
                    expr(a, from, to);
                    expr(b, from, to);
                }
                Expr::Select(a, b, c) => {
                    expr(a, from, to);
                    expr(b, from, to);
                    expr(c, from, to);
                }
                Expr::Math(_, args) => args.iter_mut().for_each(|a| expr(a, from, to)),
            }
        }
        fn stmts(ss: &mut [Stmt], from: BufId, to: BufId) {
            for s in ss {
                match s {
                    Stmt::For { body, .. } => stmts(body, from, to),
                    Stmt::Store { index, value, .. } => {
                        expr(index, from, to);
                        expr(value, from, to);
                    }
                    Stmt::Let { value, .. } | Stmt::Assign { value, .. } => expr(value, from, to),
                    Stmt::If { cond, then, els } => {
                        expr(cond, from, to);
                        stmts(then, from, to);
                        stmts(els, from, to);
                    }
                    // In-place pairs are only declared for loop-nest kernels.
                    Stmt::Gemm { .. } | Stmt::QGemm { .. } | Stmt::Copy { .. } | Stmt::Lookup { .. } => {}
                }
            }
        }
        debug_assert!(self.inplace.contains(&(input, out)));
        let mut k = self.clone();
        stmts(&mut k.body, input, out);
        k.inplace.clear();
        k.concat = None;
        k.name = format!("{}_inplace{input}", self.name);
        k
    }

    pub fn new(name: impl Into<String>) -> Kernel {
        Kernel { name: name.into(), ..Default::default() }
    }
    pub fn param(&mut self, ty: Ty, len: u64, access: Access) -> BufId {
        self.params.push(Param { ty, len, access });
        self.params.len() - 1
    }
    pub fn var(&mut self, ty: Ty) -> VarId {
        self.vars.push(ty);
        self.vars.len() - 1
    }

    /// The type an expression evaluates to.
    pub fn ty(&self, e: &Expr) -> Ty {
        match e {
            Expr::FConst(_, t) | Expr::IConst(_, t) | Expr::Cast(t, _) => *t,
            Expr::Var(v) => self.vars[*v],
            Expr::Load(b, _) => self.params[*b].ty,
            Expr::Un(UnOp::IsNan | UnOp::IsInf | UnOp::IsPosInf | UnOp::IsNegInf, _) => Ty::Bool,
            Expr::Un(_, a) | Expr::Bin(_, a, _) => self.ty(a),
            Expr::Math(_, args) => self.ty(&args[0]),
            Expr::Cmp(..) => Ty::Bool,
            Expr::Select(_, a, _) => self.ty(a),
        }
    }

    /// A loop nest over `shape` (row-major); `body` gets the index variables as expressions.
    pub fn nest(
        &mut self,
        shape: &[usize],
        body: impl FnOnce(&mut Kernel, &[Expr]) -> Vec<Stmt>,
    ) -> Vec<Stmt> {
        match self.try_nest(shape, |k, ix| Ok::<_, std::convert::Infallible>(body(k, ix))) {
            Ok(s) => s,
        }
    }

    /// [`Kernel::nest`] for a body that can fail (e.g. on an unsupported attribute).
    pub fn try_nest<E>(
        &mut self,
        shape: &[usize],
        body: impl FnOnce(&mut Kernel, &[Expr]) -> Result<Vec<Stmt>, E>,
    ) -> Result<Vec<Stmt>, E> {
        let vars: Vec<VarId> = shape.iter().map(|_| self.var(Ty::Idx)).collect();
        let idx: Vec<Expr> = vars.iter().map(|&v| Expr::Var(v)).collect();
        let mut stmts = body(self, &idx)?;
        for (d, &v) in vars.iter().enumerate().rev() {
            stmts = vec![Stmt::For { var: v, extent: shape[d] as u64, body: stmts }];
        }
        Ok(stmts)
    }
}

// ---- expression helpers -------------------------------------------------------------------------

pub fn idx(n: i64) -> Expr {
    Expr::IConst(n, Ty::Idx)
}
pub fn fc(x: f64, t: Ty) -> Expr {
    Expr::FConst(x, t)
}
/// A constant of type `t` (float or integer) with value `x`.
pub fn cnst(x: f64, t: Ty) -> Expr {
    if t.is_float() {
        Expr::FConst(x, t)
    } else {
        Expr::IConst(x as i64, t)
    }
}
pub fn load(b: BufId, i: Expr) -> Expr {
    Expr::Load(b, Box::new(i))
}
pub fn un(op: UnOp, a: Expr) -> Expr {
    Expr::Un(op, Box::new(a))
}
pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
    Expr::Bin(op, Box::new(a), Box::new(b))
}
pub fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
    Expr::Cmp(op, Box::new(a), Box::new(b))
}
pub fn select(c: Expr, a: Expr, b: Expr) -> Expr {
    Expr::Select(Box::new(c), Box::new(a), Box::new(b))
}
pub fn cast(t: Ty, a: Expr) -> Expr {
    Expr::Cast(t, Box::new(a))
}
pub fn math(f: MathFn, a: Expr) -> Expr {
    Expr::Math(f, vec![a])
}
pub fn add(a: Expr, b: Expr) -> Expr {
    // Index arithmetic folds constants so printed kernels stay readable.
    match (&a, &b) {
        (Expr::IConst(0, _), _) => b,
        (_, Expr::IConst(0, _)) => a,
        (Expr::IConst(x, t), Expr::IConst(y, _)) => Expr::IConst(x + y, *t),
        _ => bin(BinOp::Add, a, b),
    }
}
pub fn sub(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (_, Expr::IConst(0, _)) => a,
        (Expr::IConst(x, t), Expr::IConst(y, _)) => Expr::IConst(x - y, *t),
        _ => bin(BinOp::Sub, a, b),
    }
}
pub fn mul(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::IConst(1, _), _) => b,
        (_, Expr::IConst(1, _)) => a,
        (Expr::IConst(0, t), _) | (_, Expr::IConst(0, t)) => Expr::IConst(0, *t),
        (Expr::IConst(x, t), Expr::IConst(y, _)) => Expr::IConst(x * y, *t),
        _ => bin(BinOp::Mul, a, b),
    }
}
pub fn div(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (_, Expr::IConst(1, _)) => a,
        _ => bin(BinOp::Div, a, b),
    }
}
pub fn rem(a: Expr, b: Expr) -> Expr {
    bin(BinOp::Rem, a, b)
}

/// `Σ idx[d] · strides[d]`, skipping zero strides (broadcast dimensions).
pub fn linear(idx: &[Expr], strides: &[usize]) -> Expr {
    let mut e = self::idx(0);
    for (i, &s) in idx.iter().zip(strides) {
        if s != 0 {
            e = add(e, mul(i.clone(), self::idx(s as i64)));
        }
    }
    e
}

/// Row-major strides of a shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Strides for reading a tensor of shape `from` broadcast (numpy rules) to `to`: 0 on broadcast
/// dimensions, right-aligned.
pub fn broadcast_strides(from: &[usize], to: &[usize]) -> Vec<usize> {
    let s = strides(from);
    let off = to.len() - from.len();
    (0..to.len()).map(|d| if d < off || from[d - off] == 1 { 0 } else { s[d - off] }).collect()
}
