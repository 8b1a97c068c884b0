//! The op registry: every op is declared exactly once, as an [`OpDef`] static in its family
//! file (`builtin.rs`, `elementwise.rs`, `reduce.rs`, `linalg.rs`, `shape.rs`, `quant.rs`, `quant_nbits.rs`).
//! An `OpDef` holds the op's name, documentation, operand/result/attribute signature, traits, its
//! shape rule ([`OpDef::infer`]) and its reference semantics ([`OpDef::eval`]). The
//! [`OpKind`] enum and its lookup tables are generated from the table at the bottom of this file;
//! the printer, parser, verifier and interpreter all read the declaration, so adding an op is
//! adding one `OpDef` and one table line (see `docs/add-an-op.md`).
//!
//! ## Conventions for graph-level ops
//! Ops imported from ONNX take the operands and attribute names of the newest ONNX opset that
//! defines them (the frontend upgrades older forms). An optional operand that is absent is
//! either omitted (when no later operand is present) or given as a zero-element constant; the
//! helpers [`EvalCtx::opt_input`] and [`InferCtx::opt_const`] treat both the same way.

pub mod builtin;
pub mod elementwise;
pub mod elementwise_kernels;
pub mod layout;
pub mod linalg;
mod linalg_attention;
mod linalg_conv;
pub use linalg_conv::{conv_geometry, conv_transpose_geometry, pool_geometry, ConvGeometry};
mod linalg_einsum;
mod linalg_pool;
#[cfg(test)]
mod linalg_testdata;
pub mod qint8;
pub mod quant;
pub mod quant_nbits;
pub mod random;
pub mod reduce;
pub mod reduce_norm;
pub mod shape;
pub mod shape_index;
pub mod shape_resample;
pub mod util;

use crate::attr::{AttrKind, Attrs};
use crate::tensor::Tensor;
use crate::types::TensorType;
use std::collections::HashMap;
use std::sync::OnceLock;

bitflags::bitflags! {
    /// Properties that passes may rely on.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Traits: u32 {
        /// No side effects: may be removed when unused, deduplicated, constant-folded.
        const PURE = 1;
        /// Operands 0 and 1 may be swapped.
        const COMMUTATIVE = 1 << 1;
        /// Computes each output element from the same-index elements of its (broadcast) inputs.
        const ELEMENTWISE = 1 << 2;
        /// Must be the last op of its block.
        const TERMINATOR = 1 << 3;
        /// Produces a compile-time constant from attributes alone.
        const CONSTANT_LIKE = 1 << 4;
        /// Holds regions (subgraphs).
        const HAS_REGIONS = 1 << 5;
        /// Only rearranges or selects elements; never changes values (reshape, transpose, slice...).
        const DATA_MOVEMENT = 1 << 6;
    }
}

/// Whether an attribute must be present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttrReq {
    Required,
    /// May be absent; the op's documented default applies.
    Optional,
}

/// Declaration of one attribute of an op.
#[derive(Clone, Copy, Debug)]
pub struct AttrDef {
    pub name: &'static str,
    pub kind: AttrKind,
    pub req: AttrReq,
    /// The default in text form, for documentation (`""` when there is none).
    pub default: &'static str,
}

impl AttrDef {
    pub const fn req(name: &'static str, kind: AttrKind) -> AttrDef {
        AttrDef { name, kind, req: AttrReq::Required, default: "" }
    }
    pub const fn opt(name: &'static str, kind: AttrKind, default: &'static str) -> AttrDef {
        AttrDef { name, kind, req: AttrReq::Optional, default }
    }
}

/// An error from an op's shape rule or evaluation; the caller adds the op and location.
pub type OpResult<T> = Result<T, String>;

/// What a shape rule sees.
pub struct InferCtx<'a> {
    pub attrs: &'a Attrs,
    pub operands: &'a [TensorType],
    /// Constant value of each operand when known at compile time (weights, folded shapes).
    pub consts: &'a [Option<Tensor>],
    /// How many results the op instance has (for ops with optional or variadic results).
    pub num_results: usize,
}

impl InferCtx<'_> {
    /// The constant value of operand `i`, or `None` if the operand is absent, empty, or not
    /// known at compile time.
    pub fn opt_const(&self, i: usize) -> Option<&Tensor> {
        match self.consts.get(i) {
            Some(Some(t)) if !t.is_empty() => Some(t),
            _ => None,
        }
    }

    /// Whether operand `i` is present and not a zero-element constant.
    pub fn has_operand(&self, i: usize) -> bool {
        match self.consts.get(i) {
            None => false,
            Some(Some(t)) => !t.is_empty(),
            Some(None) => !matches!(self.operands[i].num_elements(), Some(0)),
        }
    }
}

/// What a reference evaluation sees.
pub struct EvalCtx<'a> {
    pub attrs: &'a Attrs,
    pub inputs: &'a [Tensor],
    /// Declared types of the operands (carry quantization parameters).
    pub operand_types: &'a [TensorType],
    /// Declared types of the results (may contain symbolic or unknown dims).
    pub result_types: &'a [TensorType],
}

impl EvalCtx<'_> {
    /// Operand `i` unless it is absent or a zero-element tensor.
    pub fn opt_input(&self, i: usize) -> Option<&Tensor> {
        self.inputs.get(i).filter(|t| !t.is_empty())
    }
}

pub type InferFn = fn(&InferCtx) -> OpResult<Vec<TensorType>>;
pub type EvalFn = fn(&EvalCtx) -> OpResult<Vec<Tensor>>;

/// The single declaration of an op.
pub struct OpDef {
    /// `dialect.name`, as printed.
    pub name: &'static str,
    /// One line for the op reference.
    pub summary: &'static str,
    /// Operand names; a trailing `?` marks an optional operand, a trailing `...` a variadic one
    /// (zero or more, or one or more when written `+`).
    pub operands: &'static [&'static str],
    /// Result names, with the same markers.
    pub results: &'static [&'static str],
    pub attrs: &'static [AttrDef],
    pub traits: Traits,
    pub infer: InferFn,
    pub eval: EvalFn,
}

/// Minimum and maximum (None = unbounded) count of a signature list.
pub fn arity(list: &[&str]) -> (usize, Option<usize>) {
    let mut min = 0;
    let mut max = Some(0usize);
    for name in list {
        if name.ends_with("...") {
            max = None;
        } else if name.ends_with('+') {
            min += 1;
            max = None;
        } else if name.ends_with('?') {
            max = max.map(|m| m + 1);
        } else {
            min += 1;
            max = max.map(|m| m + 1);
        }
    }
    (min, max)
}

impl OpDef {
    pub fn operand_arity(&self) -> (usize, Option<usize>) {
        arity(self.operands)
    }
    pub fn result_arity(&self) -> (usize, Option<usize>) {
        arity(self.results)
    }
    pub fn dialect(&self) -> &'static str {
        self.name.split('.').next().unwrap_or("")
    }
    pub fn attr(&self, name: &str) -> Option<&AttrDef> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

macro_rules! op_table {
    ($($variant:ident => $def:path),* $(,)?) => {
        /// Every op the IR knows. Generated from the table in `ops/mod.rs`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpKind { $($variant),* }

        impl OpKind {
            pub const ALL: &'static [OpKind] = &[$(OpKind::$variant),*];

            /// The op's declaration.
            pub fn def(self) -> &'static OpDef {
                match self { $(OpKind::$variant => &$def),* }
            }
        }
    };
}

impl OpKind {
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// Looks an op up by its printed name.
    pub fn from_name(name: &str) -> Option<OpKind> {
        static MAP: OnceLock<HashMap<&'static str, OpKind>> = OnceLock::new();
        MAP.get_or_init(|| OpKind::ALL.iter().map(|&k| (k.name(), k)).collect()).get(name).copied()
    }

    pub fn traits(self) -> Traits {
        self.def().traits
    }
}

op_table! {
    // builtin / func
    Constant => builtin::CONSTANT,
    Return => builtin::RETURN,
    Subgraph => builtin::SUBGRAPH,
    Yield => builtin::YIELD,
    FusedKernel => builtin::FUSED_KERNEL,

    // math: elementwise
    Add => elementwise::ADD,
    Sub => elementwise::SUB,
    Mul => elementwise::MUL,
    Div => elementwise::DIV,
    Pow => elementwise::POW,
    Mod => elementwise::MOD,
    BitShift => elementwise::BIT_SHIFT,
    Min => elementwise::MIN,
    Max => elementwise::MAX,
    Sum => elementwise::SUM,
    Mean => elementwise::MEAN,
    Equal => elementwise::EQUAL,
    Less => elementwise::LESS,
    LessOrEqual => elementwise::LESS_OR_EQUAL,
    Greater => elementwise::GREATER,
    GreaterOrEqual => elementwise::GREATER_OR_EQUAL,
    And => elementwise::AND,
    Or => elementwise::OR,
    Xor => elementwise::XOR,
    Not => elementwise::NOT,
    Where => elementwise::WHERE,
    Sqrt => elementwise::SQRT,
    Reciprocal => elementwise::RECIPROCAL,
    Neg => elementwise::NEG,
    Abs => elementwise::ABS,
    Exp => elementwise::EXP,
    Log => elementwise::LOG,
    Erf => elementwise::ERF,
    Tanh => elementwise::TANH,
    Sigmoid => elementwise::SIGMOID,
    Relu => elementwise::RELU,
    LeakyRelu => elementwise::LEAKY_RELU,
    Elu => elementwise::ELU,
    Selu => elementwise::SELU,
    Gelu => elementwise::GELU,
    HardSigmoid => elementwise::HARD_SIGMOID,
    HardSwish => elementwise::HARD_SWISH,
    Softplus => elementwise::SOFTPLUS,
    Mish => elementwise::MISH,
    Sin => elementwise::SIN,
    Cos => elementwise::COS,
    Floor => elementwise::FLOOR,
    Ceil => elementwise::CEIL,
    Round => elementwise::ROUND,
    Sign => elementwise::SIGN,
    IsNaN => elementwise::IS_NAN,
    IsInf => elementwise::IS_INF,
    Clip => elementwise::CLIP,
    Cast => elementwise::CAST,
    Acos => elementwise::ACOS,
    Asin => elementwise::ASIN,
    Atan => elementwise::ATAN,
    Acosh => elementwise::ACOSH,
    Asinh => elementwise::ASINH,
    Atanh => elementwise::ATANH,
    Sinh => elementwise::SINH,
    Cosh => elementwise::COSH,
    Tan => elementwise::TAN,
    Softsign => elementwise::SOFTSIGN,
    ThresholdedRelu => elementwise::THRESHOLDED_RELU,
    Celu => elementwise::CELU,
    Swish => elementwise::SWISH,
    Shrink => elementwise::SHRINK,
    PRelu => elementwise::PRELU,
    BitwiseAnd => elementwise::BITWISE_AND,
    BitwiseOr => elementwise::BITWISE_OR,
    BitwiseXor => elementwise::BITWISE_XOR,
    BitwiseNot => elementwise::BITWISE_NOT,

    // nn: reductions and normalizations
    ReduceMean => reduce::REDUCE_MEAN,
    ReduceSum => reduce::REDUCE_SUM,
    ReduceMax => reduce::REDUCE_MAX,
    ReduceMin => reduce::REDUCE_MIN,
    ReduceProd => reduce::REDUCE_PROD,
    ReduceL2 => reduce::REDUCE_L2,
    ReduceSumSquare => reduce::REDUCE_SUM_SQUARE,
    ArgMax => reduce::ARG_MAX,
    ArgMin => reduce::ARG_MIN,
    Softmax => reduce::SOFTMAX,
    LogSoftmax => reduce::LOG_SOFTMAX,
    CumSum => reduce::CUM_SUM,
    TopK => reduce::TOP_K,
    LayerNorm => reduce::LAYER_NORM,
    BatchNorm => reduce::BATCH_NORM,
    InstanceNorm => reduce::INSTANCE_NORM,
    GroupNorm => reduce::GROUP_NORM,
    RmsNorm => reduce::RMS_NORM,
    ReduceL1 => reduce::REDUCE_L1,
    ReduceLogSum => reduce::REDUCE_LOG_SUM,
    ReduceLogSumExp => reduce::REDUCE_LOG_SUM_EXP,
    CumProd => reduce::CUM_PROD,
    Hardmax => reduce::HARDMAX,
    LpNorm => reduce::LP_NORM,
    MeanVarianceNorm => reduce::MEAN_VARIANCE_NORM,

    // nn: linear algebra, convolution, pooling, attention
    MatMul => linalg::MATMUL,
    Gemm => linalg::GEMM,
    Conv => linalg::CONV,
    ConvTranspose => linalg::CONV_TRANSPOSE,
    Einsum => linalg::EINSUM,
    Attention => linalg::ATTENTION,
    RotaryEmbedding => linalg::ROTARY_EMBEDDING,
    MaxPool => linalg::MAX_POOL,
    AveragePool => linalg::AVERAGE_POOL,
    GlobalAveragePool => linalg::GLOBAL_AVERAGE_POOL,
    GlobalMaxPool => linalg::GLOBAL_MAX_POOL,
    LpPool => linalg::LP_POOL,
    Lrn => linalg::LRN,

    // shape: data movement and shape computation
    Reshape => shape::RESHAPE,
    Transpose => shape::TRANSPOSE,
    FromPanels => layout::FROM_PANELS,
    Concat => shape::CONCAT,
    Split => shape::SPLIT,
    Slice => shape::SLICE,
    Gather => shape::GATHER,
    GatherElements => shape::GATHER_ELEMENTS,
    GatherNd => shape::GATHER_ND,
    ScatterNd => shape::SCATTER_ND,
    ScatterElements => shape::SCATTER_ELEMENTS,
    Expand => shape::EXPAND,
    Squeeze => shape::SQUEEZE,
    Unsqueeze => shape::UNSQUEEZE,
    Flatten => shape::FLATTEN,
    Tile => shape::TILE,
    Pad => shape::PAD,
    Resize => shape::RESIZE,
    DepthToSpace => shape::DEPTH_TO_SPACE,
    SpaceToDepth => shape::SPACE_TO_DEPTH,
    Shape => shape::SHAPE,
    Size => shape::SIZE,
    ConstantOfShape => shape::CONSTANT_OF_SHAPE,
    Range => shape::RANGE,
    Trilu => shape::TRILU,
    OneHot => shape::ONE_HOT,
    NonZero => shape::NON_ZERO,

    // nn: random
    Dropout => random::DROPOUT,

    // q: quantization
    QuantizeLinear => quant::QUANTIZE_LINEAR,
    DequantizeLinear => quant::DEQUANTIZE_LINEAR,
    DynamicQuantizeLinear => quant::DYNAMIC_QUANTIZE_LINEAR,
    MatMulInteger => quant::MATMUL_INTEGER,
    ConvInteger => quant::CONV_INTEGER,
    QLinearMatMul => quant::QLINEAR_MATMUL,
    QLinearConv => quant::QLINEAR_CONV,
    // q: integer kernels with TFLite arithmetic (what quantization produces)
    QQuantize => qint8::QUANTIZE,
    QDequantize => qint8::DEQUANTIZE,
    QRequantize => qint8::REQUANTIZE,
    QAdd => qint8::QADD,
    QConv => qint8::QCONV,
    QConvTranspose => qint8::QCONV_TRANSPOSE,
    QFullyConnected => qint8::QFULLY_CONNECTED,
    QGather => qint8::QGATHER,
    QLookup => qint8::LOOKUP,
    MatMulNBits => quant_nbits::MATMUL_NBITS,
    GatherNBits => quant_nbits::GATHER_NBITS,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_dialect_prefixed() {
        let mut seen = std::collections::HashSet::new();
        for &k in OpKind::ALL {
            let d = k.def();
            assert!(seen.insert(d.name), "duplicate op name {}", d.name);
            assert!(d.name.contains('.'), "{} lacks a dialect prefix", d.name);
            assert_eq!(OpKind::from_name(d.name), Some(k));
            assert!(!d.summary.is_empty(), "{} has no summary", d.name);
        }
    }

    #[test]
    fn arity_markers() {
        assert_eq!(arity(&["a", "b?"]), (1, Some(2)));
        assert_eq!(arity(&["xs+"]), (1, None));
        assert_eq!(arity(&["xs..."]), (0, None));
    }
}
