//! The op table: one entry per ONNX op type of the default domain, mapping it to an IR
//! [`OpKind`] and a builder. Most ops need only [`simple`] (attributes converted by name,
//! inputs passed through), because the IR's graph-level ops take exactly the operands and
//! attributes of the newest ONNX opset. The builders below upgrade older opsets (attributes
//! that later became inputs, changed semantics) and implement the few ops the frontend
//! resolves itself (`Constant`, `Identity`, inference-mode `Dropout`, `CastLike`).
//!
//! The table is checked against the IR's op list by a test: every graph-level IR op must be
//! reachable from some ONNX op type.

use super::error::ImportError;
use super::import::{attr_kind, attr_type_name, Importer, Node, FOLD_MAX_ELEMENTS};
use super::proto::attr_type;
use super::tensor;
use bytes::Bytes;
use edgec_ir::ops::util::norm_axis;
use edgec_ir::{Attr, Attrs, ConstTensor, Dim, OpKind, ScalarType, Tensor, TensorType, Value};
use ndarray::{ArrayD, IxDyn};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Builds the IR for one node; returns one value per node output (up to the last one used).
pub type BuildFn = fn(&mut Importer, &Node, OpKind) -> Result<Vec<Value>, ImportError>;

pub struct Entry {
    pub op_type: &'static str,
    /// The IR op the node becomes (for frontend-resolved ops, the closest one; unused).
    pub kind: OpKind,
    pub build: BuildFn,
}

const fn e(op_type: &'static str, kind: OpKind, build: BuildFn) -> Entry {
    Entry { op_type, kind, build }
}

use OpKind as K;

static TABLE: &[Entry] = &[
    // Resolved by the frontend.
    e("Constant", K::Constant, constant),
    e("Identity", K::Constant, identity),
    e("Dropout", K::Dropout, dropout),
    e("CastLike", K::Cast, cast_like),
    // math
    e("Add", K::Add, simple),
    e("Sub", K::Sub, simple),
    e("Mul", K::Mul, simple),
    e("Div", K::Div, simple),
    e("Pow", K::Pow, simple),
    e("Mod", K::Mod, simple),
    e("BitShift", K::BitShift, simple),
    e("Min", K::Min, simple),
    e("Max", K::Max, simple),
    e("Sum", K::Sum, simple),
    e("Mean", K::Mean, simple),
    e("Equal", K::Equal, simple),
    e("Less", K::Less, simple),
    e("LessOrEqual", K::LessOrEqual, simple),
    e("Greater", K::Greater, simple),
    e("GreaterOrEqual", K::GreaterOrEqual, simple),
    e("And", K::And, simple),
    e("Or", K::Or, simple),
    e("Xor", K::Xor, simple),
    e("Not", K::Not, simple),
    e("Where", K::Where, simple),
    e("Sqrt", K::Sqrt, simple),
    e("Reciprocal", K::Reciprocal, simple),
    e("Neg", K::Neg, simple),
    e("Abs", K::Abs, simple),
    e("Exp", K::Exp, simple),
    e("Log", K::Log, simple),
    e("Erf", K::Erf, simple),
    e("Tanh", K::Tanh, simple),
    e("Sigmoid", K::Sigmoid, simple),
    e("Relu", K::Relu, simple),
    e("LeakyRelu", K::LeakyRelu, simple),
    e("Elu", K::Elu, simple),
    e("Selu", K::Selu, simple),
    e("Gelu", K::Gelu, simple),
    e("HardSigmoid", K::HardSigmoid, simple),
    e("HardSwish", K::HardSwish, simple),
    e("Softplus", K::Softplus, simple),
    e("Mish", K::Mish, simple),
    e("Sin", K::Sin, simple),
    e("Cos", K::Cos, simple),
    e("Floor", K::Floor, simple),
    e("Ceil", K::Ceil, simple),
    e("Round", K::Round, simple),
    e("Sign", K::Sign, simple),
    e("IsNaN", K::IsNaN, simple),
    e("IsInf", K::IsInf, simple),
    e("Clip", K::Clip, simple),
    e("Cast", K::Cast, simple),
    e("Acos", K::Acos, simple),
    e("Asin", K::Asin, simple),
    e("Atan", K::Atan, simple),
    e("Acosh", K::Acosh, simple),
    e("Asinh", K::Asinh, simple),
    e("Atanh", K::Atanh, simple),
    e("Sinh", K::Sinh, simple),
    e("Cosh", K::Cosh, simple),
    e("Tan", K::Tan, simple),
    e("Softsign", K::Softsign, simple),
    e("ThresholdedRelu", K::ThresholdedRelu, simple),
    e("Celu", K::Celu, simple),
    e("Swish", K::Swish, simple),
    e("Shrink", K::Shrink, simple),
    e("PRelu", K::PRelu, simple),
    e("BitwiseAnd", K::BitwiseAnd, simple),
    e("BitwiseOr", K::BitwiseOr, simple),
    e("BitwiseXor", K::BitwiseXor, simple),
    e("BitwiseNot", K::BitwiseNot, simple),
    // reductions and normalizations
    e("ReduceMean", K::ReduceMean, reduce),
    e("ReduceSum", K::ReduceSum, reduce),
    e("ReduceMax", K::ReduceMax, reduce),
    e("ReduceMin", K::ReduceMin, reduce),
    e("ReduceProd", K::ReduceProd, reduce),
    e("ReduceL2", K::ReduceL2, reduce),
    e("ReduceSumSquare", K::ReduceSumSquare, reduce),
    e("ReduceL1", K::ReduceL1, reduce),
    e("ReduceLogSum", K::ReduceLogSum, reduce),
    e("ReduceLogSumExp", K::ReduceLogSumExp, reduce),
    e("ArgMax", K::ArgMax, simple),
    e("ArgMin", K::ArgMin, simple),
    e("Softmax", K::Softmax, softmax),
    e("LogSoftmax", K::LogSoftmax, softmax),
    e("CumSum", K::CumSum, simple),
    e("CumProd", K::CumProd, simple),
    e("Hardmax", K::Hardmax, softmax),
    e("LpNormalization", K::LpNorm, simple),
    e("MeanVarianceNormalization", K::MeanVarianceNorm, simple),
    e("TopK", K::TopK, simple),
    e("LayerNormalization", K::LayerNorm, simple),
    e("BatchNormalization", K::BatchNorm, batch_norm),
    e("InstanceNormalization", K::InstanceNorm, simple),
    e("GroupNormalization", K::GroupNorm, group_norm),
    e("RMSNormalization", K::RmsNorm, simple),
    e("ReduceL1", K::ReduceL1, reduce),
    e("ReduceLogSum", K::ReduceLogSum, reduce),
    e("ReduceLogSumExp", K::ReduceLogSumExp, reduce),
    e("CumProd", K::CumProd, simple),
    e("Hardmax", K::Hardmax, softmax),
    e("LpNormalization", K::LpNorm, simple),
    e("MeanVarianceNormalization", K::MeanVarianceNorm, simple),
    // linear algebra, convolution, pooling, attention
    e("MatMul", K::MatMul, simple),
    e("Gemm", K::Gemm, simple),
    e("Conv", K::Conv, simple),
    e("ConvTranspose", K::ConvTranspose, simple),
    e("Einsum", K::Einsum, simple),
    e("Attention", K::Attention, simple),
    e("RotaryEmbedding", K::RotaryEmbedding, simple),
    e("MaxPool", K::MaxPool, simple),
    e("AveragePool", K::AveragePool, simple),
    e("GlobalAveragePool", K::GlobalAveragePool, simple),
    e("GlobalMaxPool", K::GlobalMaxPool, simple),
    // shape and data movement
    e("Reshape", K::Reshape, simple),
    e("Transpose", K::Transpose, simple),
    e("Concat", K::Concat, simple),
    e("Split", K::Split, split),
    e("Slice", K::Slice, simple),
    e("Gather", K::Gather, simple),
    e("GatherElements", K::GatherElements, simple),
    e("GatherND", K::GatherNd, simple),
    e("ScatterND", K::ScatterNd, simple),
    e("ScatterElements", K::ScatterElements, simple),
    e("Expand", K::Expand, simple),
    e("Squeeze", K::Squeeze, squeeze),
    e("Unsqueeze", K::Unsqueeze, squeeze),
    e("Flatten", K::Flatten, simple),
    e("Tile", K::Tile, simple),
    e("Pad", K::Pad, simple),
    e("Resize", K::Resize, resize),
    e("DepthToSpace", K::DepthToSpace, simple),
    e("SpaceToDepth", K::SpaceToDepth, simple),
    e("Shape", K::Shape, simple),
    e("Size", K::Size, simple),
    e("ConstantOfShape", K::ConstantOfShape, simple),
    e("Range", K::Range, simple),
    e("Trilu", K::Trilu, simple),
    e("OneHot", K::OneHot, simple),
    e("NonZero", K::NonZero, simple),
    // quantization
    e("QuantizeLinear", K::QuantizeLinear, simple),
    e("DequantizeLinear", K::DequantizeLinear, simple),
    e("DynamicQuantizeLinear", K::DynamicQuantizeLinear, simple),
    e("MatMulInteger", K::MatMulInteger, simple),
    e("ConvInteger", K::ConvInteger, simple),
    e("QLinearMatMul", K::QLinearMatMul, simple),
    e("QLinearConv", K::QLinearConv, simple),
];

/// The table entry for an ONNX op type of the default domain.
/// For models older than opset 11: the oldest opset at which `op_type` already has the inputs
/// and attributes of its opset-11 version (from ONNX's schema history), so that the builders,
/// written for opset 11 and later, apply unchanged. Ops not listed have had their current form
/// since opset 1; ops introduced after opset 11 cannot occur in such models.
pub fn oldest_opset_with_current_form(op_type: &str) -> i64 {
    const TABLE: &[(&str, i64)] = &[
        ("Constant", 11),
        ("Dropout", 7),
        ("Add", 7),
        ("Sub", 7),
        ("Mul", 7),
        ("Div", 7),
        ("Pow", 7),
        ("Mod", 10),
        ("Min", 6),
        ("Max", 6),
        ("Sum", 6),
        ("Mean", 6),
        ("Equal", 7),
        ("Less", 7),
        ("Greater", 7),
        ("And", 7),
        ("Or", 7),
        ("Xor", 7),
        ("Where", 9),
        ("Sqrt", 6),
        ("Reciprocal", 6),
        ("Neg", 6),
        ("Abs", 6),
        ("Exp", 6),
        ("Log", 6),
        ("Erf", 9),
        ("Tanh", 6),
        ("Sigmoid", 6),
        ("Relu", 6),
        ("LeakyRelu", 6),
        ("Elu", 6),
        ("Selu", 6),
        ("HardSigmoid", 6),
        ("Sin", 7),
        ("Cos", 7),
        ("Floor", 6),
        ("Ceil", 6),
        ("Round", 11),
        ("Sign", 9),
        ("IsNaN", 9),
        ("IsInf", 10),
        ("Clip", 11),
        ("Acos", 7),
        ("Asin", 7),
        ("Atan", 7),
        ("Acosh", 9),
        ("Asinh", 9),
        ("Atanh", 9),
        ("Sinh", 9),
        ("Cosh", 9),
        ("Tan", 7),
        ("ThresholdedRelu", 10),
        ("Shrink", 9),
        ("PRelu", 6),
        ("CumSum", 11),
        ("TopK", 11),
        ("BatchNormalization", 9),
        ("InstanceNormalization", 6),
        ("Gemm", 7),
        ("MaxPool", 10),
        ("AveragePool", 10),
        ("Reshape", 5),
        ("Split", 2),
        ("Slice", 10),
        ("GatherElements", 11),
        ("GatherND", 11),
        ("ScatterND", 11),
        ("ScatterElements", 11),
        ("Expand", 8),
        ("Tile", 6),
        ("Pad", 11),
        ("Resize", 11),
        ("DepthToSpace", 11),
        ("ConstantOfShape", 9),
        ("Range", 11),
        ("OneHot", 9),
        ("NonZero", 9),
        ("QuantizeLinear", 10),
        ("DequantizeLinear", 10),
        ("DynamicQuantizeLinear", 11),
        ("MatMulInteger", 10),
        ("ConvInteger", 10),
        ("QLinearMatMul", 10),
        ("QLinearConv", 10),
        // Cast-1..5 took `to` as a string; Concat-1..3 had an optional axis.
        ("Cast", 6),
        ("Concat", 4),
    ];
    TABLE.iter().find(|(op, _)| *op == op_type).map(|&(_, v)| v).unwrap_or(1)
}

pub fn lookup(op_type: &str) -> Option<&'static Entry> {
    static MAP: OnceLock<HashMap<&'static str, &'static Entry>> = OnceLock::new();
    MAP.get_or_init(|| TABLE.iter().map(|e| (e.op_type, e)).collect()).get(op_type).copied()
}

/// Every ONNX op type the frontend maps.
pub fn supported_op_types() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|e| e.op_type)
}

/// The element type of the zero-element constant that stands for an omitted optional input
/// `i` followed by a present one. Where ONNX fixes the type (`Resize`'s `roi`/`scales`,
/// `Pad`'s `pads`/`axes`), that type; otherwise the type the op shares with its first input
/// (clip bounds, pad value, zero points, attention masks...).
pub fn absent_input_dtype(imp: &Importer, node: &Node, i: usize) -> ScalarType {
    let ty_of = |j: usize| node.input(j).map(|v| imp.ty(v).scalar());
    match (node.op_type, i) {
        ("Resize", 1 | 2) => ScalarType::F32,
        ("Pad", 1 | 3) => ScalarType::I64,
        ("Slice", _) => ty_of(1).unwrap_or(ScalarType::I64),
        ("MatMulInteger" | "ConvInteger", 3) => ty_of(1).unwrap_or(ScalarType::U8),
        _ => ty_of(0).unwrap_or(ScalarType::F32),
    }
}

/// Attributes converted by name, inputs passed through.
fn simple(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    let attrs = imp.convert_attrs(node, kind, &[])?;
    let operands = imp.operands(node, kind)?;
    imp.emit(node, kind, operands, attrs, node.num_outputs())
}

fn required_input(node: &Node, i: usize) -> Result<Value, ImportError> {
    node.input(i).ok_or_else(|| node.bad_input(format!("required input #{i} is missing")))
}

fn scalar_tensor<T: Clone>(v: T) -> ArrayD<T> {
    ArrayD::from_elem(IxDyn(&[]), v)
}

/// `Constant`: one of `value`, `value_float(s)`, `value_int(s)` becomes a `builtin.constant`.
fn constant(imp: &mut Importer, node: &Node, _: OpKind) -> Result<Vec<Value>, ImportError> {
    let mut value: Option<ConstTensor> = None;
    for a in &node.proto.attribute {
        let name = a.name.as_deref().unwrap_or("");
        let k = attr_kind(a);
        let expect = |want: i32| -> Result<(), ImportError> {
            if k == want {
                Ok(())
            } else {
                Err(node
                    .bad_attr(name, format!("must be {}, found {}", attr_type_name(want), attr_type_name(k))))
            }
        };
        let c = match name {
            "value" => {
                expect(attr_type::TENSOR)?;
                let t =
                    a.t.as_ref().ok_or_else(|| node.bad_attr(name, "tensor attribute without a tensor"))?;
                tensor::const_tensor(t, &mut imp.ext).map_err(|m| node.bad_attr(name, m))?
            }
            "value_float" => {
                expect(attr_type::FLOAT)?;
                ConstTensor::from_tensor(&Tensor::F32(scalar_tensor(a.f.unwrap_or(0.0))))
            }
            "value_floats" => {
                expect(attr_type::FLOATS)?;
                let v = a.floats.clone();
                ConstTensor::from_tensor(&Tensor::F32(
                    ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1-D"),
                ))
            }
            "value_int" => {
                expect(attr_type::INT)?;
                ConstTensor::from_tensor(&Tensor::I64(scalar_tensor(a.i.unwrap_or(0))))
            }
            "value_ints" => {
                expect(attr_type::INTS)?;
                let v = a.ints.clone();
                ConstTensor::from_tensor(&Tensor::I64(
                    ArrayD::from_shape_vec(IxDyn(&[v.len()]), v).expect("1-D"),
                ))
            }
            "value_string" | "value_strings" => {
                return Err(node.unsupported("string tensors are not supported"));
            }
            "sparse_value" => return Err(node.unsupported("sparse constants are not supported")),
            other => return Err(node.bad_attr(other, "is not an attribute of Constant")),
        };
        if value.replace(c).is_some() {
            return Err(node.bad_attr(name, "a Constant must have exactly one value attribute"));
        }
    }
    let c =
        value.ok_or_else(|| node.bad_attr("value", "a Constant must have exactly one value attribute"))?;
    Ok(vec![imp.constant(c, &node.loc)])
}

/// `Identity`: the output is the input value itself.
fn identity(_: &mut Importer, node: &Node, _: OpKind) -> Result<Vec<Value>, ImportError> {
    Ok(vec![required_input(node, 0)?])
}

/// `Dropout`: at inference (no `training_mode`, or a constant false) the output is the input and
/// the mask all true. Otherwise the node becomes `nn.dropout`, whose random stream edgec defines
/// (see `edgec_ir::ops::random`).
fn dropout(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    let x = required_input(node, 0)?;
    if imp.opset >= 12 {
        let inference = match node.input(2) {
            None => true,
            Some(t) => imp.const_value(t).is_some_and(|v| v.to_f64_vec().iter().all(|&b| b == 0.0)),
        };
        if !inference {
            return simple(imp, node, kind);
        }
    }
    let mut outs = vec![x];
    if node.wants_output(1) {
        // Every element is kept: the mask is all true, of the input's shape.
        let ty = imp.ty(x).clone();
        let small = ty.num_elements().is_some_and(|n| n <= FOLD_MAX_ELEMENTS);
        let mask = match ty.static_shape() {
            Some(shape) if small => {
                let t = Tensor::Bool(ArrayD::from_elem(IxDyn(&shape), true));
                imp.const_from(&t, &node.loc)
            }
            _ => {
                let shape = imp.emit1(node, OpKind::Shape, vec![x], Attrs::new())?;
                let one = ConstTensor::from_tensor(&Tensor::Bool(ArrayD::from_elem(IxDyn(&[1]), true)));
                imp.emit1(
                    node,
                    OpKind::ConstantOfShape,
                    vec![shape],
                    Attrs::new().with("value", Attr::Tensor(one)),
                )?
            }
        };
        outs.push(mask);
    }
    Ok(outs)
}

/// `CastLike`: a cast to the element type of the second input.
fn cast_like(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    let x = required_input(node, 0)?;
    let target = required_input(node, 1)?;
    let to = imp.ty(target).scalar();
    let mut attrs = imp.convert_attrs(node, kind, &["to"])?;
    attrs.set("to", Attr::Type(to));
    Ok(vec![imp.emit1(node, kind, vec![x], attrs)?])
}

/// `Squeeze`/`Unsqueeze`: before opset 13 `axes` was an attribute; it is now an input.
fn squeeze(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    if imp.opset >= 13 {
        return simple(imp, node, kind);
    }
    axes_attr_to_input(imp, node, kind, kind == OpKind::Unsqueeze)
}

/// Moves an `axes` attribute to a constant second operand.
fn axes_attr_to_input(
    imp: &mut Importer,
    node: &Node,
    kind: OpKind,
    required: bool,
) -> Result<Vec<Value>, ImportError> {
    let x = required_input(node, 0)?;
    if node.inputs.len() > 1 {
        return Err(node.bad_input(format!(
            "takes 1 input at opset {}, found {}",
            imp.opset,
            node.inputs.len()
        )));
    }
    let attrs = imp.convert_attrs(node, kind, &["axes"])?;
    let mut operands = vec![x];
    match node.attr_ints("axes")? {
        Some(axes) => operands.push(imp.const_i64(&axes, &node.loc)),
        None if required => return Err(node.bad_attr("axes", "is required but missing")),
        None => {}
    }
    imp.emit(node, kind, operands, attrs, 1)
}

/// Reductions: `axes` became an input at opset 13 for `ReduceSum` and at 18 for the others.
fn reduce(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    let since = if kind == OpKind::ReduceSum { 13 } else { 18 };
    if imp.opset >= since {
        return simple(imp, node, kind);
    }
    axes_attr_to_input(imp, node, kind, false)
}

/// `Split`: `split` was an attribute before opset 13; `num_outputs` appeared at 18.
fn split(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    let n = node.num_outputs().max(1);
    if imp.opset >= 18 {
        return simple(imp, node, kind);
    }
    let mut operands;
    let mut attrs;
    if imp.opset < 13 {
        let x = required_input(node, 0)?;
        if node.inputs.len() > 1 {
            return Err(node.bad_input(format!(
                "takes 1 input at opset {}, found {}",
                imp.opset,
                node.inputs.len()
            )));
        }
        attrs = imp.convert_attrs(node, kind, &["split"])?;
        operands = vec![x];
        if let Some(split) = node.attr_ints("split")? {
            operands.push(imp.const_i64(&split, &node.loc));
        }
    } else {
        attrs = imp.convert_attrs(node, kind, &[])?;
        operands = imp.operands(node, kind)?;
    }
    // Without explicit sizes, older opsets split evenly into as many parts as there are
    // outputs; the newest form says so with `num_outputs`.
    if operands.len() < 2 {
        attrs.set("num_outputs", Attr::Int(n as i64));
    }
    imp.emit(node, kind, operands, attrs, n)
}

/// `Softmax`/`LogSoftmax`/`Hardmax` before opset 13 normalize over the input coerced to 2-D at `axis`
/// (all dims from `axis` on), which is not the per-axis softmax of opset 13: it is lowered to
/// flatten → softmax over the last axis → reshape back.
fn softmax(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    if imp.opset >= 13 {
        return simple(imp, node, kind);
    }
    let x = required_input(node, 0)?;
    let ty = imp.ty(x).clone();
    let rank = ty.rank();
    let axis = node.attr_int("axis", 1)?;
    let a = norm_axis(axis, rank).map_err(|m| node.bad_attr("axis", m))?;
    let extra = imp.convert_attrs(node, kind, &["axis"])?;
    if rank == 0 || a + 1 == rank {
        // Coercing at the last axis keeps the rows intact: same as the per-axis form.
        let attrs = extra.with("axis", Attr::Int(-1));
        return Ok(vec![imp.emit1(node, kind, vec![x], attrs)?]);
    }
    let flat = imp.emit1(node, OpKind::Flatten, vec![x], Attrs::new().with("axis", Attr::Int(a as i64)))?;
    let sm = imp.emit1(node, kind, vec![flat], extra.with("axis", Attr::Int(-1)))?;
    let shape = match ty.static_shape() {
        Some(s) => imp.const_i64(&s.iter().map(|&d| d as i64).collect::<Vec<_>>(), &node.loc),
        None => imp.emit1(node, OpKind::Shape, vec![x], Attrs::new())?,
    };
    // `allowzero`: the shape is the input's actual shape, zeros included.
    let out =
        imp.emit1(node, OpKind::Reshape, vec![sm, shape], Attrs::new().with("allowzero", Attr::Int(1)))?;
    Ok(vec![out])
}

/// `Resize`-11/13 differ from the newest form only in which inputs are optional (handled by
/// the empty-constant convention) and in a coordinate mode that was dropped at 13.
fn resize(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    if let Some(mode) = node.attr_str("coordinate_transformation_mode")? {
        if mode == "tf_half_pixel_for_nn" {
            return Err(node.unsupported("coordinate_transformation_mode \"tf_half_pixel_for_nn\" (removed in opset 13) is not supported"));
        }
    }
    simple(imp, node, kind)
}

/// `BatchNormalization` before opset 14 had training outputs with different meanings
/// (saved mean/variance); only the inference form (one output) maps onto the newest op.
fn batch_norm(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    if imp.opset < 14 && node.num_outputs() > 1 {
        return Err(node.unsupported(format!(
            "BatchNormalization training outputs are not supported at opset {} (only Y)",
            imp.opset
        )));
    }
    simple(imp, node, kind)
}

/// `GroupNormalization`-18 takes one scale/bias per group; opset 21 takes one per channel.
/// Per-group values are repeated `C / num_groups` times.
fn group_norm(imp: &mut Importer, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
    if imp.opset >= 21 {
        return simple(imp, node, kind);
    }
    let x = required_input(node, 0)?;
    let scale = required_input(node, 1)?;
    let bias = required_input(node, 2)?;
    let attrs = imp.convert_attrs(node, kind, &[])?;
    let groups = node.attr_int("num_groups", 0)?;
    let xty = imp.ty(x).clone();
    let c = match xty.dims.get(1) {
        Some(Dim::Static(c)) => *c,
        _ => {
            return Err(node.unsupported(
                "GroupNormalization before opset 21 needs a static channel dim to expand per-group scale and bias",
            ))
        }
    };
    if groups <= 0 || c % groups as u64 != 0 {
        return Err(node.bad_attr("num_groups", format!("{groups} does not divide the {c} channels")));
    }
    let per = c / groups as u64;
    let scale = per_channel(imp, node, scale, groups as u64, per)?;
    let bias = per_channel(imp, node, bias, groups as u64, per)?;
    imp.emit(node, kind, vec![x, scale, bias], attrs, 1)
}

/// Repeats each of the `groups` elements of `v` `per` times (a 1-D tensor of `groups * per`).
fn per_channel(
    imp: &mut Importer,
    node: &Node,
    v: Value,
    groups: u64,
    per: u64,
) -> Result<Value, ImportError> {
    let ty = imp.ty(v).clone();
    if ty.num_elements() == Some(groups * per) && ty.rank() == 1 {
        return Ok(v); // already per channel
    }
    if ty.rank() != 1 || ty.dims[0] != Dim::Static(groups) {
        return Err(
            node.bad_input(format!("scale and bias must have {groups} elements (one per group), found {ty}"))
        );
    }
    let elem = ty.elem.clone();
    // Constants are expanded in place unless the result would be large (the channel count
    // comes from the file; a bogus one must not make the importer allocate gigabytes).
    let small = (groups * per) <= FOLD_MAX_ELEMENTS;
    if let Some(c) = imp.const_tensor(v).filter(|_| small).cloned() {
        let width = elem.storage().bits() / 8;
        if width > 0 && c.bytes.len() as u64 == groups * width as u64 {
            let mut out = Vec::with_capacity(c.bytes.len() * per as usize);
            for chunk in c.bytes.chunks(width) {
                for _ in 0..per {
                    out.extend_from_slice(chunk);
                }
            }
            let t = ConstTensor {
                ty: TensorType::new(vec![Dim::Static(groups * per)], elem),
                bytes: Bytes::from(out),
            };
            return Ok(imp.constant(t, &node.loc));
        }
    }
    let axes = imp.const_i64(&[1], &node.loc);
    let col = imp.emit1(node, OpKind::Unsqueeze, vec![v, axes], Attrs::new())?;
    let shape = imp.const_i64(&[groups as i64, per as i64], &node.loc);
    let wide = imp.emit1(node, OpKind::Expand, vec![col, shape], Attrs::new())?;
    let flat = imp.const_i64(&[(groups * per) as i64], &node.loc);
    imp.emit1(node, OpKind::Reshape, vec![wide, flat], Attrs::new())
}
