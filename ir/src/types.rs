//! Types of IR values: ranked tensors whose dims are static, symbolic or unknown, over
//! scalar or quantized element types.
//!
//! Text form (see `docs/ir.md`):
//! - `tensor<1x3x64x64xf32>` — static dims;
//! - `tensor<1x{seq}x128xf32>` — a symbolic dim named `seq`, bound at compile time with `--dim seq=128`;
//! - `tensor<?x4xi64>` — a dim unknown until run time (data-dependent, e.g. `NonZero`);
//! - `tensor<f32>` — a rank-0 tensor (scalar);
//! - `tensor<16x!q.uniform<i8:f32, 0.05, -3>>` — per-tensor quantized;
//! - `tensor<8x16x!q.uniform<i8:f32:0, {0.1:0, 0.2:0, ...}>>` — per-axis quantized along axis 0.
//!
//! Symbolic dims are kept in braces so a name may contain `x` or digits without making the
//! `AxBxC` form ambiguous.

use std::fmt;

/// A scalar element type. The storage type of a quantized element type is one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScalarType {
    F32,
    F16,
    BF16,
    F64,
    I64,
    I32,
    I16,
    I8,
    U64,
    U32,
    U16,
    U8,
    I4,
    U4,
    Bool,
}

impl ScalarType {
    pub const ALL: [ScalarType; 15] = [
        ScalarType::F32,
        ScalarType::F16,
        ScalarType::BF16,
        ScalarType::F64,
        ScalarType::I64,
        ScalarType::I32,
        ScalarType::I16,
        ScalarType::I8,
        ScalarType::U64,
        ScalarType::U32,
        ScalarType::U16,
        ScalarType::U8,
        ScalarType::I4,
        ScalarType::U4,
        ScalarType::Bool,
    ];

    /// The name used in the text form (`f32`, `i4`, `bool`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ScalarType::F32 => "f32",
            ScalarType::F16 => "f16",
            ScalarType::BF16 => "bf16",
            ScalarType::F64 => "f64",
            ScalarType::I64 => "i64",
            ScalarType::I32 => "i32",
            ScalarType::I16 => "i16",
            ScalarType::I8 => "i8",
            ScalarType::U64 => "u64",
            ScalarType::U32 => "u32",
            ScalarType::U16 => "u16",
            ScalarType::U8 => "u8",
            ScalarType::I4 => "i4",
            ScalarType::U4 => "u4",
            ScalarType::Bool => "bool",
        }
    }

    pub fn from_name(s: &str) -> Option<ScalarType> {
        ScalarType::ALL.iter().copied().find(|t| t.name() == s)
    }

    /// Size in bits of one element (4 for `i4`/`u4`, 8 for `bool`).
    pub fn bits(self) -> usize {
        match self {
            ScalarType::F64 | ScalarType::I64 | ScalarType::U64 => 64,
            ScalarType::F32 | ScalarType::I32 | ScalarType::U32 => 32,
            ScalarType::F16 | ScalarType::BF16 | ScalarType::I16 | ScalarType::U16 => 16,
            ScalarType::I8 | ScalarType::U8 | ScalarType::Bool => 8,
            ScalarType::I4 | ScalarType::U4 => 4,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, ScalarType::F32 | ScalarType::F16 | ScalarType::BF16 | ScalarType::F64)
    }

    pub fn is_int(self) -> bool {
        !self.is_float() && self != ScalarType::Bool
    }

    pub fn is_signed_int(self) -> bool {
        matches!(self, ScalarType::I64 | ScalarType::I32 | ScalarType::I16 | ScalarType::I8 | ScalarType::I4)
    }
}

impl fmt::Display for ScalarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Quantization parameters carried by a quantized element type: `real = scale * (q - zero_point)`.
#[derive(Clone, Debug, PartialEq)]
pub enum QuantParams {
    /// One scale and zero point for the whole tensor.
    PerTensor { scale: f64, zero_point: i64 },
    /// One scale and zero point per index along `axis`.
    PerAxis { axis: usize, scales: Vec<f64>, zero_points: Vec<i64> },
}

/// A uniform quantized element type: `!q.uniform<storage:expressed, params>`.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantType {
    pub storage: ScalarType,
    pub expressed: ScalarType,
    pub params: QuantParams,
}

/// The element type of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum ElemType {
    Scalar(ScalarType),
    Quant(Box<QuantType>),
}

impl ElemType {
    /// The type that holds the bits: the scalar itself, or a quantized type's storage type.
    pub fn storage(&self) -> ScalarType {
        match self {
            ElemType::Scalar(s) => *s,
            ElemType::Quant(q) => q.storage,
        }
    }

    pub fn as_scalar(&self) -> Option<ScalarType> {
        match self {
            ElemType::Scalar(s) => Some(*s),
            ElemType::Quant(_) => None,
        }
    }
}

impl From<ScalarType> for ElemType {
    fn from(s: ScalarType) -> Self {
        ElemType::Scalar(s)
    }
}

/// One dimension of a tensor shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// Known at compile time.
    Static(u64),
    /// Named; the same name means the same extent everywhere in a module. Bound by `--dim`.
    Sym(String),
    /// Not known until run time (data-dependent shapes).
    Unknown,
}

impl Dim {
    pub fn as_static(&self) -> Option<u64> {
        match self {
            Dim::Static(n) => Some(*n),
            _ => None,
        }
    }
}

impl From<u64> for Dim {
    fn from(n: u64) -> Self {
        Dim::Static(n)
    }
}

/// A ranked tensor type.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    pub dims: Vec<Dim>,
    pub elem: ElemType,
}

impl TensorType {
    pub fn new(dims: Vec<Dim>, elem: impl Into<ElemType>) -> Self {
        TensorType { dims, elem: elem.into() }
    }

    /// A fully static tensor type.
    pub fn of(shape: &[usize], elem: impl Into<ElemType>) -> Self {
        TensorType { dims: shape.iter().map(|&d| Dim::Static(d as u64)).collect(), elem: elem.into() }
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The static shape, if every dim is static.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.dims.iter().map(|d| d.as_static().map(|n| n as usize)).collect()
    }

    pub fn is_static(&self) -> bool {
        self.dims.iter().all(|d| matches!(d, Dim::Static(_)))
    }

    /// Number of elements if static.
    pub fn num_elements(&self) -> Option<u64> {
        self.dims.iter().try_fold(1u64, |acc, d| d.as_static().and_then(|n| acc.checked_mul(n)))
    }

    /// Size in bytes of the tensor's storage if static (4-bit types round up per tensor); `None`
    /// also when the size does not fit in a `u64`.
    pub fn size_bytes(&self) -> Option<u64> {
        self.num_elements()?.checked_mul(self.elem.storage().bits() as u64).map(|b| b.div_ceil(8))
    }

    /// The exact size in bytes of a static tensor, computed wide (`None` if not static or beyond
    /// even 128 bits), for messages about sizes that do not fit.
    pub fn size_bytes_wide(&self) -> Option<u128> {
        let n = self
            .dims
            .iter()
            .try_fold(1u128, |acc, d| d.as_static().and_then(|n| acc.checked_mul(n as u128)))?;
        n.checked_mul(self.elem.storage().bits() as u128).map(|b| b.div_ceil(8))
    }

    pub fn scalar(&self) -> ScalarType {
        self.elem.storage()
    }

    /// Whether a value of type `other` may flow where `self` is declared: same element type and
    /// rank, and every dim either equal or not static on one side.
    pub fn is_compatible_with(&self, other: &TensorType) -> bool {
        self.elem == other.elem
            && self.rank() == other.rank()
            && self.dims.iter().zip(&other.dims).all(|(a, b)| match (a, b) {
                (Dim::Static(x), Dim::Static(y)) => x == y,
                (Dim::Sym(x), Dim::Sym(y)) => x == y,
                _ => true,
            })
    }
}

/// The type of an IR value. Only tensors for now; the enum leaves room for tokens or tuples.
pub type Type = TensorType;

fn fmt_f64(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    // `{:?}` prints the shortest representation that parses back to the same f64.
    write!(f, "{v:?}")
}

impl fmt::Display for QuantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "!q.uniform<{}:{}", self.storage, self.expressed)?;
        match &self.params {
            QuantParams::PerTensor { scale, zero_point } => {
                f.write_str(", ")?;
                fmt_f64(f, *scale)?;
                write!(f, ", {zero_point}>")
            }
            QuantParams::PerAxis { axis, scales, zero_points } => {
                write!(f, ":{axis}, {{")?;
                for (i, (s, z)) in scales.iter().zip(zero_points).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    fmt_f64(f, *s)?;
                    write!(f, ":{z}")?;
                }
                f.write_str("}>")
            }
        }
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElemType::Scalar(s) => write!(f, "{s}"),
            ElemType::Quant(q) => write!(f, "{q}"),
        }
    }
}

/// Whether a symbolic dim name can be printed bare inside braces.
pub(crate) fn is_plain_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Static(n) => write!(f, "{n}"),
            Dim::Sym(s) if is_plain_ident(s) => write!(f, "{{{s}}}"),
            Dim::Sym(s) => write!(f, "{{{s:?}}}"),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tensor<")?;
        for d in &self.dims {
            write!(f, "{d}x")?;
        }
        write!(f, "{}>", self.elem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_forms() {
        let t = TensorType::new(vec![Dim::Static(1), Dim::Sym("seq".into()), Dim::Unknown], ScalarType::F32);
        assert_eq!(t.to_string(), "tensor<1x{seq}x?xf32>");
        assert_eq!(TensorType::of(&[], ScalarType::I64).to_string(), "tensor<i64>");
        let q = ElemType::Quant(Box::new(QuantType {
            storage: ScalarType::I8,
            expressed: ScalarType::F32,
            params: QuantParams::PerAxis { axis: 0, scales: vec![0.5, 0.25], zero_points: vec![0, 1] },
        }));
        assert_eq!(
            TensorType::new(vec![Dim::Static(2)], q).to_string(),
            "tensor<2x!q.uniform<i8:f32:0, {0.5:0, 0.25:1}>>"
        );
    }
}
