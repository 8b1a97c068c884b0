//! The graph importer: checks the model header (opset, symbolic dims), orders the nodes,
//! creates parameters and constants, hands each node to its builder in [`super::ops`], folds
//! constant subexpressions, drops dead ops and verifies the result.

use super::error::ImportError;
use super::ops;
use super::proto::{
    attr_type, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, ValueInfoProto,
};
use super::tensor::{self, ExternalData};
use super::ImportOptions;
use edgec_ir::module::ValueDef;
use edgec_ir::ops::{AttrReq, EvalCtx, Traits};
use edgec_ir::{
    Attr, AttrKind, Attrs, Builder, ConstTensor, Dim, Function, Loc, Module, OpKind, ScalarType, Tensor,
    TensorType, Value,
};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::path::Path;

/// Oldest default-domain opset the importer accepts at all. Below opset 11 a model is accepted
/// node by node: each op must already have its opset-11 form there (see
/// `oldest_opset_with_current_form` in `onnx/ops.rs`); otherwise the node is reported and the model should
/// be upgraded with `onnx.version_converter` first.
pub const MIN_OPSET: i64 = 1;
/// From this opset on, the builders in `ops.rs` upgrade every older form themselves.
pub const UPGRADED_FROM_OPSET: i64 = 11;
/// Newest default-domain opset the importer knows (onnx 1.23's schemas).
pub const MAX_OPSET: i64 = 28;

/// Folding evaluates a pure op at import time only if its results have at most this many
/// elements in total: enough for every shape computation, small enough to keep weights-sized
/// tensors out of the IR as duplicated constants.
pub const FOLD_MAX_ELEMENTS: u64 = 65_536;

/// One ONNX node as the op builders see it.
pub struct Node<'m> {
    pub proto: &'m NodeProto,
    /// The node's name, or `OpType#index` when it has none (for messages and locations).
    pub name: String,
    pub op_type: &'m str,
    /// One entry per ONNX input; `None` where the input name is empty (an omitted optional).
    pub inputs: Vec<Option<Value>>,
    pub loc: Loc,
}

impl<'m> Node<'m> {
    /// Input `i`, or `None` when it is omitted.
    pub fn input(&self, i: usize) -> Option<Value> {
        self.inputs.get(i).copied().flatten()
    }

    /// Number of outputs the node asks for (trailing empty output names dropped).
    pub fn num_outputs(&self) -> usize {
        self.proto.output.iter().rposition(|o| !o.is_empty()).map_or(0, |i| i + 1)
    }

    /// Whether output `i` is used by name.
    pub fn wants_output(&self, i: usize) -> bool {
        self.proto.output.get(i).is_some_and(|o| !o.is_empty())
    }

    pub fn attr(&self, name: &str) -> Option<&'m AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name.as_deref() == Some(name))
    }

    pub fn bad_attr(&self, attr: &str, message: impl Into<String>) -> ImportError {
        ImportError::BadAttribute {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            attr: attr.to_string(),
            message: message.into(),
        }
    }

    pub fn bad_input(&self, message: impl Into<String>) -> ImportError {
        ImportError::BadInput {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            message: message.into(),
        }
    }

    pub fn unsupported(&self, message: impl Into<String>) -> ImportError {
        ImportError::Unsupported {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            message: message.into(),
        }
    }

    pub fn shape_error(&self, message: impl Into<String>) -> ImportError {
        ImportError::Shape {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            message: message.into(),
        }
    }

    /// An INT attribute, or `default` when absent.
    pub fn attr_int(&self, name: &str, default: i64) -> Result<i64, ImportError> {
        match self.attr(name) {
            None => Ok(default),
            Some(a) => match attr_kind(a) {
                attr_type::INT => Ok(a.i.unwrap_or(0)),
                k => Err(self.bad_attr(name, format!("must be an int, found {}", attr_type_name(k)))),
            },
        }
    }

    /// An INTS attribute, if present.
    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>, ImportError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match attr_kind(a) {
                attr_type::INTS => Ok(Some(a.ints.clone())),
                k => Err(self.bad_attr(name, format!("must be a list of ints, found {}", attr_type_name(k)))),
            },
        }
    }

    /// A STRING attribute, if present.
    pub fn attr_str(&self, name: &str) -> Result<Option<String>, ImportError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => match attr_kind(a) {
                attr_type::STRING => String::from_utf8(a.s.clone().unwrap_or_default())
                    .map(Some)
                    .map_err(|_| self.bad_attr(name, "is not valid UTF-8")),
                k => Err(self.bad_attr(name, format!("must be a string, found {}", attr_type_name(k)))),
            },
        }
    }
}

/// The kind of an attribute; old writers leave `type` unset, so infer it from the set field.
pub fn attr_kind(a: &AttributeProto) -> i32 {
    match a.r#type {
        Some(t) if t != attr_type::UNDEFINED => t,
        _ => {
            if a.f.is_some() {
                attr_type::FLOAT
            } else if a.i.is_some() {
                attr_type::INT
            } else if a.s.is_some() {
                attr_type::STRING
            } else if a.t.is_some() {
                attr_type::TENSOR
            } else if a.g.is_some() {
                attr_type::GRAPH
            } else if !a.floats.is_empty() {
                attr_type::FLOATS
            } else if !a.ints.is_empty() {
                attr_type::INTS
            } else if !a.strings.is_empty() {
                attr_type::STRINGS
            } else {
                attr_type::UNDEFINED
            }
        }
    }
}

pub fn attr_type_name(k: i32) -> &'static str {
    match k {
        attr_type::FLOAT => "float",
        attr_type::INT => "int",
        attr_type::STRING => "string",
        attr_type::TENSOR => "tensor",
        attr_type::GRAPH => "graph",
        attr_type::FLOATS => "floats",
        attr_type::INTS => "ints",
        attr_type::STRINGS => "strings",
        attr_type::TENSORS => "tensors",
        attr_type::GRAPHS => "graphs",
        attr_type::SPARSE_TENSOR => "sparse tensor",
        attr_type::SPARSE_TENSORS => "sparse tensors",
        attr_type::TYPE_PROTO => "type",
        attr_type::TYPE_PROTOS => "types",
        _ => "undefined",
    }
}

/// The import state: the function being built and the ONNX-name → value environment.
pub struct Importer {
    /// The model's default-domain opset.
    pub opset: i64,
    pub func: Function,
    pub ext: ExternalData,
    env: HashMap<String, Value>,
}

pub fn import(
    model: &ModelProto,
    base_dir: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Module, ImportError> {
    let graph = model.graph.as_ref().ok_or(ImportError::MissingGraph)?;
    let opset = default_opset(model)?;
    check_dims(graph, opts)?;
    check_ops(graph, model)?;
    let order = topo_order(graph)?;

    let mut imp = Importer {
        opset,
        func: Function::new("main"),
        ext: ExternalData::new(base_dir),
        env: HashMap::new(),
    };

    let mut initializers: HashSet<&str> = HashSet::new();
    for t in &graph.initializer {
        let name = t.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err(ImportError::BadTensor {
                tensor: String::new(),
                message: "initializer without a name".into(),
            });
        }
        if !initializers.insert(name) {
            return Err(dup(name, "an initializer", "another initializer"));
        }
    }
    if let Some(s) = graph.sparse_initializer.first() {
        let name = s.values.as_ref().and_then(|v| v.name.clone()).unwrap_or_default();
        return Err(ImportError::BadTensor {
            tensor: name,
            message: "sparse initializers are not supported".into(),
        });
    }
    let mut params: HashSet<&str> = HashSet::new();
    for vi in &graph.input {
        let name = vi.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err(ImportError::BadValueType {
                kind: "input",
                name: String::new(),
                message: "has no name".into(),
            });
        }
        if initializers.contains(name) {
            // Listed as an input and as an initializer: a constant with an overridable default
            // in ONNX Runtime; edgec compiles it as the constant.
            continue;
        }
        if !params.insert(name) {
            return Err(dup(name, "a graph input", "another graph input"));
        }
        let ty = value_type(vi, "input", opts)?;
        let v = imp.func.add_param(ty, Some(param_name(name, &graph.input)));
        imp.env.insert(name.to_string(), v);
    }
    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        let c = tensor::const_tensor(t, &mut imp.ext)
            .map_err(|message| ImportError::BadTensor { tensor: name.clone(), message })?;
        let v = Builder::new(&mut imp.func).constant(c, Loc::Name(name.clone()));
        imp.env.insert(name, v);
    }

    for &i in &order {
        let proto = &graph.node[i];
        imp.node(proto, i)?;
    }

    let mut results = Vec::new();
    let mut names = Vec::new();
    for vi in &graph.output {
        let name = vi.name.clone().unwrap_or_default();
        let v = *imp.env.get(&name).ok_or_else(|| ImportError::UndefinedOutput(name.clone()))?;
        let declared = vi.r#type.as_ref().and_then(|t| t.value.as_ref());
        if !matches!(declared, None | Some(type_proto::Value::TensorType(_))) {
            return Err(ImportError::BadValueType {
                kind: "output",
                name,
                message: "is not a tensor (sequences, maps and optionals are not supported)".into(),
            });
        }
        results.push(v);
        names.push(name);
    }
    Builder::new(&mut imp.func).ret(results);
    imp.func.result_names = names;
    remove_dead_ops(&mut imp.func);

    let mut module = Module::new();
    module.functions.push(imp.func);
    edgec_ir::verify::verify_module(&module).map_err(ImportError::Verify)?;
    Ok(module)
}

fn dup(tensor: &str, first: &str, second: &str) -> ImportError {
    ImportError::Duplicate {
        tensor: tensor.to_string(),
        first: first.to_string(),
        second: second.to_string(),
    }
}

/// All-digit names are reserved for the printer's numbering; such ONNX names get a `_` prefix
/// (more if that collides with another input's name).
fn param_name(name: &str, inputs: &[ValueInfoProto]) -> String {
    if !name.chars().all(|c| c.is_ascii_digit()) {
        return name.to_string();
    }
    let mut n = format!("_{name}");
    while inputs.iter().any(|vi| vi.name.as_deref() == Some(n.as_str())) {
        n.insert(0, '_');
    }
    n
}

fn default_opset(model: &ModelProto) -> Result<i64, ImportError> {
    let v = model
        .opset_import
        .iter()
        .find(|o| matches!(o.domain.as_deref(), None | Some("") | Some("ai.onnx")))
        .map(|o| o.version.unwrap_or(0))
        .ok_or_else(|| {
            ImportError::UnsupportedOpset("the model does not import the default ONNX opset".into())
        })?;
    if !(MIN_OPSET..=MAX_OPSET).contains(&v) {
        return Err(ImportError::UnsupportedOpset(format!(
            "the model uses ONNX opset {v}; edgec supports opsets {MIN_OPSET} to {MAX_OPSET} \
             (convert it with onnx.version_converter)"
        )));
    }
    Ok(v)
}

fn node_name(n: &NodeProto, index: usize) -> String {
    match n.name.as_deref() {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("{}#{index}", n.op_type.as_deref().unwrap_or("")),
    }
}

/// Rejects unsupported ops before anything else, so that an unknown op is reported as such
/// rather than as a consequence (e.g. an undefined tensor or a shape error downstream).
fn check_ops(graph: &GraphProto, model: &ModelProto) -> Result<(), ImportError> {
    for (i, n) in graph.node.iter().enumerate() {
        let op_type = n.op_type.as_deref().unwrap_or("");
        let domain = n.domain.as_deref().unwrap_or("");
        let default_domain = domain.is_empty() || domain == "ai.onnx";
        if !default_domain || ops::lookup(op_type).is_none() {
            let local = model
                .functions
                .iter()
                .any(|f| f.name.as_deref() == Some(op_type) && f.domain.as_deref().unwrap_or("") == domain);
            if local {
                return Err(ImportError::Unsupported {
                    node: node_name(n, i),
                    op_type: op_type.to_string(),
                    message: "calls a model-local function, which edgec does not inline".into(),
                });
            }
            return Err(ImportError::UnsupportedOp {
                node: node_name(n, i),
                op_type: op_type.to_string(),
                domain: domain.to_string(),
            });
        }
    }
    Ok(())
}

/// Symbolic dim names used in the graph's declared types.
fn symbolic_dims(graph: &GraphProto) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for vi in graph.input.iter().chain(&graph.output).chain(&graph.value_info) {
        if let Some(type_proto::Value::TensorType(t)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
            for d in t.shape.iter().flat_map(|s| &s.dim) {
                if let Some(super::proto::tensor_shape_proto::dimension::Value::DimParam(p)) = &d.value {
                    if !p.is_empty() {
                        out.insert(p.clone());
                    }
                }
            }
        }
    }
    out
}

fn check_dims(graph: &GraphProto, opts: &ImportOptions) -> Result<(), ImportError> {
    let known = symbolic_dims(graph);
    let unknown: Vec<&String> = opts.dims.keys().filter(|k| !known.contains(*k)).collect();
    if !unknown.is_empty() {
        let list = |v: Vec<&String>| v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let have = if known.is_empty() { "none".to_string() } else { list(known.iter().collect()) };
        return Err(ImportError::Dims(format!(
            "--dim {} does not name a symbolic dim of the model (its symbolic dims: {have})",
            list(unknown)
        )));
    }
    Ok(())
}

/// The IR type of a graph input.
fn value_type(
    vi: &ValueInfoProto,
    kind: &'static str,
    opts: &ImportOptions,
) -> Result<TensorType, ImportError> {
    let name = vi.name.clone().unwrap_or_default();
    let bad = |message: String| ImportError::BadValueType { kind, name: name.clone(), message };
    let t = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        None => return Err(bad("has no type".into())),
        Some(type_proto::Value::SequenceType(_)) => {
            return Err(bad("is a sequence; only tensors are supported".into()))
        }
        Some(type_proto::Value::MapType(_)) => {
            return Err(bad("is a map; only tensors are supported".into()))
        }
        Some(type_proto::Value::OptionalType(_)) => {
            return Err(bad("is an optional; only tensors are supported".into()))
        }
        Some(type_proto::Value::SparseTensorType(_)) => {
            return Err(bad("is a sparse tensor; only dense tensors are supported".into()))
        }
        Some(type_proto::Value::OpaqueType(_)) => {
            return Err(bad("has an opaque type; only tensors are supported".into()))
        }
    };
    let elem = tensor::scalar_type(t.elem_type.unwrap_or(0)).map_err(bad)?;
    let shape = t.shape.as_ref().ok_or_else(|| bad("has no shape (its rank is unknown)".into()))?;
    let mut dims = Vec::with_capacity(shape.dim.len());
    for d in &shape.dim {
        use super::proto::tensor_shape_proto::dimension::Value as D;
        dims.push(match &d.value {
            Some(D::DimValue(v)) => {
                Dim::Static(u64::try_from(*v).map_err(|_| bad(format!("has negative dim {v}")))?)
            }
            Some(D::DimParam(p)) if !p.is_empty() => match opts.dims.get(p) {
                Some(&n) => Dim::Static(n),
                None => Dim::Sym(p.clone()),
            },
            _ => Dim::Unknown,
        });
    }
    Ok(TensorType::new(dims, elem))
}

/// Orders the nodes so that every tensor is defined before use; among ready nodes the one
/// earliest in the file goes first, so an already sorted graph keeps its order.
fn topo_order(graph: &GraphProto) -> Result<Vec<usize>, ImportError> {
    let n = graph.node.len();
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut outer: HashSet<&str> = HashSet::new();
    for t in &graph.initializer {
        outer.insert(t.name.as_deref().unwrap_or(""));
    }
    for vi in &graph.input {
        outer.insert(vi.name.as_deref().unwrap_or(""));
    }
    for (i, node) in graph.node.iter().enumerate() {
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            let me = format!("node {:?}", node_name(node, i));
            if outer.contains(o.as_str()) {
                return Err(dup(o, "a graph input or initializer", &me));
            }
            if let Some(&j) = producer.get(o.as_str()) {
                return Err(dup(o, &format!("node {:?}", node_name(&graph.node[j], j)), &me));
            }
            producer.insert(o, i);
        }
    }
    let mut indegree = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, node) in graph.node.iter().enumerate() {
        for inp in node.input.iter().filter(|s| !s.is_empty()) {
            if let Some(&j) = producer.get(inp.as_str()) {
                indegree[i] += 1;
                users[j].push(i);
                preds[i].push(j);
            } else if !outer.contains(inp.as_str()) {
                return Err(ImportError::UndefinedTensor {
                    node: node_name(node, i),
                    op_type: node.op_type.clone().unwrap_or_default(),
                    tensor: inp.clone(),
                });
            }
        }
    }
    // Undefined graph outputs are reported before any node is built.
    for o in &graph.output {
        let name = o.name.as_deref().unwrap_or("");
        if !producer.contains_key(name) && !outer.contains(name) {
            return Err(ImportError::UndefinedOutput(name.to_string()));
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &u in &users[i] {
            indegree[u] -= 1;
            if indegree[u] == 0 {
                ready.push(Reverse(u));
            }
        }
    }
    if order.len() < n {
        // Every node left has a predecessor that is also left; walking predecessors must
        // therefore revisit a node, and that node is on a cycle.
        let mut cur = (0..n).find(|&i| indegree[i] > 0).expect("some node is left");
        let mut seen = vec![false; n];
        while !seen[cur] {
            seen[cur] = true;
            cur = *preds[cur].iter().find(|&&p| indegree[p] > 0).expect("a left node has a left predecessor");
        }
        let node = &graph.node[cur];
        return Err(ImportError::Cycle {
            node: node_name(node, cur),
            op_type: node.op_type.clone().unwrap_or_default(),
        });
    }
    Ok(order)
}

/// Removes ops whose results are unused (constants folded away, unused initializers, ...),
/// keeping the function's parameters and everything the return depends on.
pub fn remove_dead_ops(f: &mut Function) {
    let ops: Vec<_> = f.body_ops().to_vec();
    let mut live: HashSet<Value> = HashSet::new();
    let mut keep = vec![false; ops.len()];
    for (i, &op) in ops.iter().enumerate().rev() {
        let d = &f.ops[op];
        let needed = d.kind.traits().contains(Traits::TERMINATOR)
            || !d.kind.traits().contains(Traits::PURE)
            || d.results.iter().any(|r| live.contains(r));
        if needed {
            keep[i] = true;
            live.extend(d.operands.iter().copied());
        }
    }
    let body = f.body;
    f.blocks[body].ops = ops.into_iter().zip(keep).filter(|(_, k)| *k).map(|(o, _)| o).collect();
}

impl Importer {
    fn node(&mut self, proto: &NodeProto, index: usize) -> Result<(), ImportError> {
        let op_type = proto.op_type.as_deref().unwrap_or("");
        let name = node_name(proto, index);
        let mut inputs = Vec::with_capacity(proto.input.len());
        for inp in &proto.input {
            if inp.is_empty() {
                inputs.push(None);
            } else {
                let v = self.env.get(inp.as_str()).copied().ok_or_else(|| ImportError::UndefinedTensor {
                    node: name.clone(),
                    op_type: op_type.to_string(),
                    tensor: inp.clone(),
                })?;
                inputs.push(Some(v));
            }
        }
        let node = Node { proto, loc: Loc::Name(name.clone()), name, op_type, inputs };
        let entry = ops::lookup(op_type).ok_or_else(|| ImportError::UnsupportedOp {
            node: node.name.clone(),
            op_type: op_type.to_string(),
            domain: proto.domain.clone().unwrap_or_default(),
        })?;
        if self.opset < UPGRADED_FROM_OPSET {
            let oldest = ops::oldest_opset_with_current_form(op_type);
            if self.opset < oldest {
                return Err(node.unsupported(format!(
                    "{op_type} at opset {} has an older form than edgec imports (needs opset {oldest} or newer); \
                     upgrade the model with onnx.version_converter",
                    self.opset
                )));
            }
        }
        let values = (entry.build)(self, &node, entry.kind)?;
        for (i, out) in proto.output.iter().enumerate() {
            if out.is_empty() {
                continue;
            }
            let v = values.get(i).copied().ok_or_else(|| {
                node.bad_input(format!(
                    "the node has {} outputs but the op produces {}",
                    node.num_outputs(),
                    values.len()
                ))
            })?;
            self.env.insert(out.clone(), v);
        }
        Ok(())
    }

    pub fn ty(&self, v: Value) -> &TensorType {
        &self.func.values[v].ty
    }

    /// The value of `v` if it is a (small) compile-time constant.
    pub fn const_value(&self, v: Value) -> Option<Tensor> {
        edgec_ir::verify::constant_value(&self.func, v)
    }

    /// The constant behind `v` whatever its size (no copy of the data).
    pub fn const_tensor(&self, v: Value) -> Option<&ConstTensor> {
        match self.func.values[v].def {
            ValueDef::Result { op, .. } if self.func.ops[op].kind == OpKind::Constant => {
                self.func.ops[op].attrs.tensor("value")
            }
            _ => None,
        }
    }

    pub fn constant(&mut self, c: ConstTensor, loc: &Loc) -> Value {
        Builder::new(&mut self.func).constant(c, loc.clone())
    }

    pub fn const_from(&mut self, t: &Tensor, loc: &Loc) -> Value {
        self.constant(ConstTensor::from_tensor(t), loc)
    }

    /// A 1-D `i64` constant.
    pub fn const_i64(&mut self, values: &[i64], loc: &Loc) -> Value {
        let t = Tensor::I64(
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[values.len()]), values.to_vec()).expect("1-D"),
        );
        self.const_from(&t, loc)
    }

    /// A zero-element 1-D constant: the marker of an omitted optional operand.
    pub fn empty_const(&mut self, elem: ScalarType, loc: &Loc) -> Value {
        self.const_from(&Tensor::zeros(elem, &[0]), loc)
    }

    /// Converts the node's attributes for `kind`, skipping `skip` (attributes the builder
    /// handles itself). Attributes the IR op does not declare are an error; dtype-valued
    /// attributes (declared with kind `type`) become [`Attr::Type`].
    pub fn convert_attrs(&mut self, node: &Node, kind: OpKind, skip: &[&str]) -> Result<Attrs, ImportError> {
        let def = kind.def();
        let mut attrs = Attrs::new();
        for a in &node.proto.attribute {
            let name = a.name.as_deref().unwrap_or("");
            if skip.contains(&name) {
                continue;
            }
            if a.ref_attr_name.is_some() {
                return Err(node.bad_attr(
                    name,
                    "refers to a function attribute, which is only valid inside a function",
                ));
            }
            let Some(decl) = def.attr(name) else {
                return Err(node.bad_attr(
                    name,
                    format!(
                        "is not an attribute of {} at opset {} (edgec op `{}`)",
                        node.op_type, self.opset, def.name
                    ),
                ));
            };
            if let Some(v) = self.convert_attr(node, name, a, decl.kind)? {
                attrs.set(name, v);
            }
        }
        for decl in def.attrs {
            if decl.req == AttrReq::Required && attrs.get(decl.name).is_none() && !skip.contains(&decl.name) {
                return Err(node.bad_attr(decl.name, "is required but missing"));
            }
        }
        Ok(attrs)
    }

    /// Converts one attribute to the declared kind; `None` for a dtype attribute left at 0
    /// (ONNX's "unset").
    pub fn convert_attr(
        &mut self,
        node: &Node,
        name: &str,
        a: &AttributeProto,
        want: AttrKind,
    ) -> Result<Option<Attr>, ImportError> {
        let k = attr_kind(a);
        let utf8 =
            |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| node.bad_attr(name, "is not valid UTF-8"));
        let attr = match (k, want) {
            (attr_type::INT, AttrKind::Type) => {
                let dt = a.i.unwrap_or(0);
                if dt == 0 {
                    return Ok(None);
                }
                let t = i32::try_from(dt)
                    .map_err(|_| format!("unknown data type {dt}"))
                    .and_then(tensor::scalar_type)
                    .map_err(|m| node.bad_attr(name, m))?;
                Attr::Type(t)
            }
            (attr_type::INT, AttrKind::Float) => Attr::Float(a.i.unwrap_or(0) as f64),
            (attr_type::INT, _) => Attr::Int(a.i.unwrap_or(0)),
            (attr_type::FLOAT, _) => Attr::Float(a.f.unwrap_or(0.0) as f64),
            (attr_type::STRING, _) => Attr::Str(utf8(a.s.as_deref().unwrap_or(&[]))?),
            (attr_type::INTS, AttrKind::Floats) => Attr::Floats(a.ints.iter().map(|&v| v as f64).collect()),
            (attr_type::INTS, _) => Attr::Ints(a.ints.clone()),
            (attr_type::FLOATS, _) => Attr::Floats(a.floats.iter().map(|&v| v as f64).collect()),
            (attr_type::STRINGS, _) => {
                Attr::Strs(a.strings.iter().map(|s| utf8(s)).collect::<Result<_, _>>()?)
            }
            (attr_type::TENSOR, _) => {
                let t =
                    a.t.as_ref().ok_or_else(|| node.bad_attr(name, "tensor attribute without a tensor"))?;
                Attr::Tensor(tensor::const_tensor(t, &mut self.ext).map_err(|m| node.bad_attr(name, m))?)
            }
            (k, _) => {
                return Err(
                    node.bad_attr(name, format!("{} attributes are not supported", attr_type_name(k)))
                );
            }
        };
        if !attr.fits(want) {
            return Err(node.bad_attr(name, format!("must be {}, found {}", want.name(), attr.kind().name())));
        }
        Ok(Some(attr))
    }

    /// The node's inputs as operands of `kind`: trailing omitted inputs are dropped, omitted
    /// ones in the middle become zero-element constants of the dtype the op expects there.
    pub fn operands(&mut self, node: &Node, kind: OpKind) -> Result<Vec<Value>, ImportError> {
        let def = kind.def();
        let last = node.inputs.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
        let (min, max) = def.operand_arity();
        if last < min {
            return Err(node.bad_input(format!("expects at least {min} inputs, found {last}")));
        }
        if max.is_some_and(|m| last > m) {
            return Err(node.bad_input(format!("expects at most {} inputs, found {last}", max.unwrap_or(0))));
        }
        let mut out = Vec::with_capacity(last);
        for i in 0..last {
            match node.input(i) {
                Some(v) => out.push(v),
                None => {
                    // Past the declared list, a trailing variadic operand covers the rest.
                    let decl = match def.operands.get(i).or(def.operands.last()) {
                        Some(d) if i < def.operands.len() || d.ends_with("...") || d.ends_with('+') => *d,
                        _ => "",
                    };
                    let optional = decl.ends_with('?') || decl.ends_with("...");
                    if !optional {
                        return Err(node.bad_input(format!("required input #{i} ({decl}) is missing")));
                    }
                    let elem = ops::absent_input_dtype(self, node, i);
                    out.push(self.empty_const(elem, &node.loc));
                }
            }
        }
        Ok(out)
    }

    /// Appends op `kind` with result types from its shape rule, or — when every operand is a
    /// compile-time constant and the result is small — the constants it evaluates to.
    pub fn emit(
        &mut self,
        node: &Node,
        kind: OpKind,
        operands: Vec<Value>,
        attrs: Attrs,
        num_results: usize,
    ) -> Result<Vec<Value>, ImportError> {
        let def = kind.def();
        let (rmin, _) = def.result_arity();
        let num_results = num_results.max(rmin);
        if let Some(vals) = self.fold_shape_of(node, kind, &operands, &attrs)? {
            return Ok(vals);
        }
        let types = Builder::new(&mut self.func)
            .infer(kind, &operands, &attrs, num_results)
            .map_err(|m| node.shape_error(m))?;
        if types.len() != num_results {
            return Err(node.shape_error(format!(
                "the shape rule of `{}` gives {} results, expected {num_results}",
                def.name,
                types.len()
            )));
        }
        if let Some(vals) = self.try_fold(node, kind, &operands, &attrs, &types) {
            return Ok(vals);
        }
        let op = Builder::new(&mut self.func).op_typed(kind, operands, types, attrs, node.loc.clone());
        Ok(self.func.ops[op].results.clone())
    }

    /// A single-result [`Importer::emit`].
    pub fn emit1(
        &mut self,
        node: &Node,
        kind: OpKind,
        operands: Vec<Value>,
        attrs: Attrs,
    ) -> Result<Value, ImportError> {
        let v = self.emit(node, kind, operands, attrs, 1)?;
        v.first().copied().ok_or_else(|| node.shape_error("op produced no result"))
    }

    /// `shape.shape` / `shape.size` of a value whose type is fully static: the answer is in
    /// the type, so the operand need not be a constant.
    fn fold_shape_of(
        &mut self,
        node: &Node,
        kind: OpKind,
        operands: &[Value],
        attrs: &Attrs,
    ) -> Result<Option<Vec<Value>>, ImportError> {
        if !matches!(kind, OpKind::Shape | OpKind::Size) || operands.len() != 1 {
            return Ok(None);
        }
        let Some(shape) = self.ty(operands[0]).static_shape() else { return Ok(None) };
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        let t = if kind == OpKind::Size {
            let n = dims.iter().try_fold(1i64, |a, &d| a.checked_mul(d));
            let n = n.ok_or_else(|| node.shape_error("element count overflows i64"))?;
            Tensor::I64(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), n))
        } else {
            // ONNX Shape-15 `start`/`end`: negative values count from the back, then clamp.
            let r = dims.len() as i64;
            let clamp = |v: i64| if v < 0 { (v + r).max(0) } else { v.min(r) };
            let start = clamp(attrs.int("start").unwrap_or(0));
            let end = clamp(attrs.int("end").unwrap_or(r));
            let sel = if start < end { dims[start as usize..end as usize].to_vec() } else { vec![] };
            Tensor::I64(ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[sel.len()]), sel).expect("1-D"))
        };
        Ok(Some(vec![self.const_from(&t, &node.loc)]))
    }

    fn try_fold(
        &mut self,
        node: &Node,
        kind: OpKind,
        operands: &[Value],
        attrs: &Attrs,
        types: &[TensorType],
    ) -> Option<Vec<Value>> {
        let traits = kind.traits();
        if !traits.contains(Traits::PURE) || traits.intersects(Traits::CONSTANT_LIKE | Traits::HAS_REGIONS) {
            return None;
        }
        // A dequantized constant is a quantized weight: `fold-quantized` needs its integers and
        // parameters to build integer kernels (`fold-constants` still folds whatever it leaves).
        if kind == OpKind::DequantizeLinear {
            return None;
        }
        let total =
            types.iter().try_fold(0u64, |acc, t| t.num_elements().and_then(|n| acc.checked_add(n)))?;
        if total > FOLD_MAX_ELEMENTS {
            return None;
        }
        let inputs: Vec<Tensor> = operands.iter().map(|&v| self.const_value(v)).collect::<Option<_>>()?;
        let operand_types: Vec<TensorType> = operands.iter().map(|&v| self.ty(v).clone()).collect();
        let ctx = EvalCtx { attrs, inputs: &inputs, operand_types: &operand_types, result_types: types };
        // A failing evaluation is not an import error: leave the op for run time, where the
        // interpreter reports it with full context.
        let outs = (kind.def().eval)(&ctx).ok()?;
        if outs.len() != types.len() {
            return None;
        }
        let mut consts = Vec::with_capacity(outs.len());
        for (t, ty) in outs.iter().zip(types) {
            let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
            if t.scalar_type() != ty.elem.storage()
                || ty.static_shape().map(|s| s.iter().map(|&d| d as u64).collect::<Vec<_>>()) != Some(shape)
            {
                return None;
            }
            consts.push(ConstTensor::from_tensor(t).with_type(ty.clone()));
        }
        Some(consts.into_iter().map(|c| self.constant(c, &node.loc)).collect())
    }
}
