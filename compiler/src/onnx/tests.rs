//! Frontend tests: small models built with the prost structs, encoded, and imported.

use super::*;

// ---------------------------------------------------------------------------------------
// Helpers building ONNX protos.

use super::proto::{
    attr_type, data_type as dt, tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use edgec_ir::{Dim, OpKind, ScalarType, TensorType};
use ndarray::{ArrayD, IxDyn};

enum D {
    N(i64),
    S(&'static str),
}

fn vi(name: &str, elem: i32, dims: &[D]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| tensor_shape_proto::Dimension {
            value: Some(match d {
                D::N(n) => tensor_shape_proto::dimension::Value::DimValue(*n),
                D::S(s) => tensor_shape_proto::dimension::Value::DimParam(s.to_string()),
            }),
            denotation: None,
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem),
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: None,
        }),
        ..Default::default()
    }
}

fn out(name: &str) -> ValueInfoProto {
    ValueInfoProto { name: Some(name.into()), ..Default::default() }
}

fn f32_init(name: &str, dims: &[i64], vals: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(dt::FLOAT),
        raw_data: Some(Bytes::from(vals.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())),
        ..Default::default()
    }
}

fn i64_init(name: &str, dims: &[i64], vals: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(dt::INT64),
        int64_data: vals.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: if name.is_empty() { None } else { Some(name.into()) },
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute: attrs,
        ..Default::default()
    }
}

fn a_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: Some(name.into()), r#type: Some(attr_type::INT), i: Some(v), ..Default::default() }
}

fn a_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::INTS),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn a_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::FLOAT),
        f: Some(v),
        ..Default::default()
    }
}

fn a_tensor(name: &str, t: TensorProto) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(attr_type::TENSOR),
        t: Some(t),
        ..Default::default()
    }
}

fn model(
    opset: i64,
    nodes: Vec<NodeProto>,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    inits: Vec<TensorProto>,
) -> ModelProto {
    ModelProto {
        ir_version: Some(10),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(opset) }],
        producer_name: Some("edgec-tests".into()),
        graph: Some(GraphProto {
            node: nodes,
            name: Some("g".into()),
            initializer: inits,
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn encode(m: &ModelProto) -> Bytes {
    Bytes::from(m.encode_to_vec())
}

fn import(m: &ModelProto) -> Result<Module, ImportError> {
    import_model_bytes(encode(m), None, &ImportOptions::default())
}

fn import_err(m: &ModelProto) -> String {
    import(m).expect_err("import should fail").to_string()
}

/// The constant value returned as result `i` of `@main`.
fn returned_const(m: &Module, i: usize) -> edgec_ir::Tensor {
    let f = m.main().unwrap();
    let v = f.results()[i];
    edgec_ir::verify::constant_value(f, v).expect("result is a constant")
}

// ---------------------------------------------------------------------------------------
// Decoding and tensors.

#[test]
fn identity_graph_keeps_names() {
    let m = model(
        17,
        vec![node("Identity", "id", &["x"], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(2), D::S("seq")])],
        vec![out("y")],
        vec![],
    );
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    assert_eq!(f.params().len(), 1);
    let p = f.params()[0];
    assert_eq!(f.values[p].name.as_deref(), Some("x"));
    assert_eq!(
        f.values[p].ty,
        TensorType::new(vec![Dim::Static(2), Dim::Sym("seq".into())], ScalarType::F32)
    );
    assert_eq!(f.results(), &[p]);
    assert_eq!(f.result_names, vec!["y".to_string()]);
}

#[test]
fn dims_bind_and_unknown_dim_names_are_errors() {
    let m = model(
        17,
        vec![node("Identity", "id", &["x"], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::S("batch"), D::S("seq")])],
        vec![out("y")],
        vec![],
    );
    let mut opts = ImportOptions::default();
    opts.dims.insert("seq".into(), 128);
    let module = import_model_bytes(encode(&m), None, &opts).unwrap();
    let f = module.main().unwrap();
    assert_eq!(f.values[f.params()[0]].ty.dims, vec![Dim::Sym("batch".into()), Dim::Static(128)]);
    opts.dims.insert("sequence".into(), 1);
    let e = import_model_bytes(encode(&m), None, &opts).unwrap_err().to_string();
    assert_eq!(e, "--dim \"sequence\" does not name a symbolic dim of the model (its symbolic dims: \"batch\", \"seq\")");
}

#[test]
fn raw_initializers_are_zero_copy() {
    let m = model(17, vec![], vec![], vec![out("w")], vec![f32_init("w", &[2, 2], &[1.0, 2.0, 3.0, 4.0])]);
    let bytes = encode(&m);
    let range = bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len();
    let module = import_model_bytes(bytes.clone(), None, &ImportOptions::default()).unwrap();
    let f = module.main().unwrap();
    let op = f.body_ops()[0];
    let c = f.ops[op].attrs.tensor("value").unwrap();
    assert!(range.contains(&(c.bytes.as_ptr() as usize)), "raw_data was copied");
    assert_eq!(
        c.to_tensor().unwrap(),
        edgec_ir::Tensor::F32(ArrayD::from_shape_vec(IxDyn(&[2, 2]), vec![1.0, 2.0, 3.0, 4.0]).unwrap())
    );
}

fn decode_init(t: TensorProto) -> Result<edgec_ir::Tensor, String> {
    let bytes = t.encode_to_vec();
    decode_tensor_proto(&bytes).map(|(_, v)| v).map_err(|e| e.to_string())
}

#[test]
fn typed_data_fields() {
    let t = |data_type: i32, dims: &[i64]| TensorProto {
        name: Some("t".into()),
        data_type: Some(data_type),
        dims: dims.to_vec(),
        ..Default::default()
    };
    // float_data
    let v = decode_init(TensorProto { float_data: vec![1.5, -2.0], ..t(dt::FLOAT, &[2]) }).unwrap();
    assert_eq!(v.to_f64_vec(), vec![1.5, -2.0]);
    // f16 as bit patterns in int32_data
    let h = half::f16::from_f32(0.5).to_bits() as i32;
    let v = decode_init(TensorProto { int32_data: vec![h, h], ..t(dt::FLOAT16, &[1, 2]) }).unwrap();
    assert_eq!(v.scalar_type(), ScalarType::F16);
    assert_eq!(v.to_f64_vec(), vec![0.5, 0.5]);
    // int8 and bool
    let v = decode_init(TensorProto { int32_data: vec![-3, 7], ..t(dt::INT8, &[2]) }).unwrap();
    assert_eq!(v.to_f64_vec(), vec![-3.0, 7.0]);
    let v = decode_init(TensorProto { int32_data: vec![1, 0, 1], ..t(dt::BOOL, &[3]) }).unwrap();
    assert_eq!(v.to_f64_vec(), vec![1.0, 0.0, 1.0]);
    // int4: two per int32 entry (low nibble first), and the legacy one-per-entry layout
    let v = decode_init(TensorProto { int32_data: vec![0x7f, 0x08], ..t(dt::INT4, &[3]) }).unwrap();
    assert_eq!(v.to_f64_vec(), vec![-1.0, 7.0, -8.0]);
    let v = decode_init(TensorProto { int32_data: vec![-1, 7, -8], ..t(dt::INT4, &[3]) }).unwrap();
    assert_eq!(v.to_f64_vec(), vec![-1.0, 7.0, -8.0]);
    // uint32 lives in uint64_data; f64 in double_data; i64 in int64_data
    let v = decode_init(TensorProto { uint64_data: vec![4_000_000_000], ..t(dt::UINT32, &[]) }).unwrap();
    assert_eq!(v.to_f64_vec(), vec![4e9]);
    let v = decode_init(TensorProto { double_data: vec![0.25], ..t(dt::DOUBLE, &[1]) }).unwrap();
    assert_eq!(v.to_f64_vec(), vec![0.25]);
    let v = decode_init(TensorProto { int64_data: vec![-5], ..t(dt::INT64, &[1, 1]) }).unwrap();
    assert_eq!(v.shape(), &[1, 1]);
    // empty tensor
    let v = decode_init(t(dt::FLOAT, &[0, 3])).unwrap();
    assert_eq!(v.shape(), &[0, 3]);
}

#[test]
fn bad_tensors_are_errors() {
    let t = |data_type: i32, dims: &[i64]| TensorProto {
        name: Some("w".into()),
        data_type: Some(data_type),
        dims: dims.to_vec(),
        ..Default::default()
    };
    let e = decode_init(TensorProto { float_data: vec![1.0], ..t(dt::FLOAT, &[2]) }).unwrap_err();
    assert_eq!(e, "tensor \"w\": float_data has 1 elements but the dims need 2");
    let e = decode_init(TensorProto { raw_data: Some(Bytes::from_static(&[0; 7])), ..t(dt::FLOAT, &[2]) })
        .unwrap_err();
    assert_eq!(e, "tensor \"w\": data has 7 bytes but dims [2] of f32 need 8");
    let e = decode_init(t(dt::FLOAT, &[-1])).unwrap_err();
    assert!(e.contains("negative dim -1"), "{e}");
    let e = decode_init(t(dt::FLOAT, &[1 << 40, 1 << 40])).unwrap_err();
    assert!(e.contains("overflow"), "{e}");
    let e = decode_init(t(dt::STRING, &[1])).unwrap_err();
    assert!(e.contains("unsupported data type STRING"), "{e}");
    let e = decode_init(t(99, &[1])).unwrap_err();
    assert!(e.contains("unsupported data type 99"), "{e}");
    let e = decode_init(t(dt::FLOAT, &[3])).unwrap_err();
    assert!(e.contains("float_data has 0 elements"), "{e}");
}

/// A fresh directory under the system temp dir.
fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("edgec-onnx-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn external(
    name: &str,
    dims: &[i64],
    location: &str,
    offset: Option<u64>,
    length: Option<u64>,
) -> TensorProto {
    let mut kv = vec![("location", location.to_string())];
    if let Some(o) = offset {
        kv.push(("offset", o.to_string()));
    }
    if let Some(l) = length {
        kv.push(("length", l.to_string()));
    }
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(dt::FLOAT),
        data_location: Some(super::proto::data_location::EXTERNAL),
        external_data: kv
            .into_iter()
            .map(|(k, v)| StringStringEntryProto { key: Some(k.into()), value: Some(v) })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn external_data() {
    let dir = temp_dir("ext");
    let data: Vec<u8> = [0.0f32, 1.0, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("weights.bin"), &data).unwrap();
    let write = |m: &ModelProto| {
        let p = dir.join("model.onnx");
        std::fs::write(&p, m.encode_to_vec()).unwrap();
        p
    };
    let m = model(
        17,
        vec![],
        vec![],
        vec![out("a"), out("b")],
        vec![
            external("a", &[2], "weights.bin", Some(4), Some(8)),
            external("b", &[5], "./weights.bin", None, None),
        ],
    );
    let module = import_model(&write(&m), &ImportOptions::default()).unwrap();
    assert_eq!(returned_const(&module, 0).to_f64_vec(), vec![1.0, 2.0]);
    assert_eq!(returned_const(&module, 1).to_f64_vec(), vec![0.0, 1.0, 2.0, 3.0, 4.0]);

    let one = |t: TensorProto| model(17, vec![], vec![], vec![out("w")], vec![t]);
    let e = import_model(
        &write(&one(external("w", &[2], "../weights.bin", None, None))),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not a relative path inside the model directory"), "{e}");
    let e =
        import_model(&write(&one(external("w", &[2], "/etc/passwd", None, None))), &ImportOptions::default())
            .unwrap_err()
            .to_string();
    assert!(e.contains("not a relative path inside the model directory"), "{e}");
    let e =
        import_model(&write(&one(external("w", &[2], "missing.bin", None, None))), &ImportOptions::default())
            .unwrap_err()
            .to_string();
    assert!(e.starts_with("tensor \"w\": external data file") && e.contains("missing"), "{e}");
    let e = import_model(
        &write(&one(external("w", &[2], "weights.bin", Some(16), Some(8)))),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("external data range 16..24 is outside file"), "{e}");
    let e = import_model(
        &write(&one(external("w", &[3], "weights.bin", Some(0), Some(8)))),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("data has 8 bytes but dims [3] of f32 need 12"), "{e}");
    let e = import_model(
        &write(&one(external("w", &[2], "weights.bin", Some(u64::MAX), Some(8)))),
        &ImportOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("overflows"), "{e}");
    // Without a model file there is no directory to resolve against.
    let e = import(&one(external("w", &[2], "weights.bin", None, None))).unwrap_err().to_string();
    assert!(e.contains("not loaded from a file"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Graph structure and errors.

#[test]
fn header_errors() {
    let mut m = model(29, vec![], vec![], vec![], vec![]);
    assert_eq!(
        import_err(&m),
        "the model uses ONNX opset 29; edgec supports opsets 1 to 28 (convert it with onnx.version_converter)"
    );
    // Older opsets import node by node where the op kept its form.
    let x = || vec![vi("x", dt::FLOAT, &[D::N(2)])];
    let old = |op: &str| model(9, vec![node(op, "n", &["x"], &["y"], vec![])], x(), vec![out("y")], vec![]);
    import(&old("Relu")).unwrap();
    assert!(import_err(&old("Slice")).starts_with("node \"n\" (Slice): Slice at opset 9 has an older form"));
    m.opset_import.clear();
    assert_eq!(import_err(&m), "the model does not import the default ONNX opset");
    m.graph = None;
    assert_eq!(import_err(&m), "the model has no graph");
    let e =
        import_model_bytes(Bytes::from_static(b"\x0a\xff\xff"), None, &ImportOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("malformed ONNX protobuf: "), "{e}");
    let e = import_model(Path::new("/nonexistent/model.onnx"), &ImportOptions::default()).unwrap_err();
    assert!(e.to_string().starts_with("cannot read /nonexistent/model.onnx: "), "{e}");
}

#[test]
fn unsupported_ops_name_node_and_domain() {
    let mut n = node("FusedMatMul", "Foo_3", &["x", "x"], &["y"], vec![]);
    n.domain = Some("com.microsoft".into());
    let m = model(17, vec![n], vec![vi("x", dt::FLOAT, &[D::N(2), D::N(2)])], vec![out("y")], vec![]);
    assert_eq!(import_err(&m), "node \"Foo_3\": unsupported op com.microsoft:FusedMatMul");
    let m = model(
        17,
        vec![node("Identity", "", &["x"], &["t"], vec![]), node("Det", "", &["t"], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(2)])],
        vec![out("y")],
        vec![],
    );
    assert_eq!(import_err(&m), "node \"Det#1\": unsupported op Det");
}

#[test]
fn messages_are_one_line() {
    let mut n = node("Foo\nBar", "multi\nline", &["x"], &["y"], vec![]);
    n.domain = Some("my\ndomain".into());
    let m = model(17, vec![n], vec![vi("x", dt::FLOAT, &[D::N(2)])], vec![out("y")], vec![]);
    assert_eq!(import_err(&m), "node \"multi\\nline\": unsupported op my\\ndomain:Foo\\nBar");
}

#[test]
fn structural_errors() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(2)])];
    // undefined input
    let m = model(17, vec![node("Identity", "n0", &["nope"], &["y"], vec![])], x(), vec![out("y")], vec![]);
    assert_eq!(import_err(&m), "node \"n0\" (Identity) uses undefined tensor \"nope\"");
    // undefined output
    let m = model(17, vec![], x(), vec![out("y")], vec![]);
    assert_eq!(import_err(&m), "graph output \"y\" is not defined by any node, initializer or graph input");
    // duplicate definitions
    let m = model(
        17,
        vec![node("Identity", "a", &["x"], &["y"], vec![]), node("Identity", "b", &["x"], &["y"], vec![])],
        x(),
        vec![out("y")],
        vec![],
    );
    assert_eq!(import_err(&m), "tensor \"y\" is defined twice (node \"a\" and node \"b\")");
    let m = model(17, vec![node("Identity", "a", &["x"], &["x"], vec![])], x(), vec![out("x")], vec![]);
    assert_eq!(import_err(&m), "tensor \"x\" is defined twice (a graph input or initializer and node \"a\")");
    let m = model(
        17,
        vec![],
        x(),
        vec![out("w")],
        vec![f32_init("w", &[1], &[1.0]), f32_init("w", &[1], &[2.0])],
    );
    assert_eq!(import_err(&m), "tensor \"w\" is defined twice (an initializer and another initializer)");
    // cycle: c feeds b feeds c, a is fine
    let m = model(
        17,
        vec![
            node("Identity", "a", &["x"], &["t0"], vec![]),
            node("Identity", "b", &["t2"], &["t1"], vec![]),
            node("Identity", "c", &["t1"], &["t2"], vec![]),
            node("Identity", "d", &["t2"], &["y"], vec![]),
        ],
        x(),
        vec![out("y")],
        vec![],
    );
    let e = import_err(&m);
    assert!(
        e == "node \"b\" (Identity) is on a cycle of the graph"
            || e == "node \"c\" (Identity) is on a cycle of the graph",
        "{e}"
    );
    // non-tensor graph input
    let mut seq = vi("s", dt::FLOAT, &[]);
    seq.r#type = Some(TypeProto {
        value: Some(type_proto::Value::SequenceType(type_proto::Sequence { elem_type: None })),
        denotation: None,
    });
    let m = model(17, vec![], vec![seq], vec![out("s")], vec![]);
    assert_eq!(import_err(&m), "graph input \"s\": is a sequence; only tensors are supported");
    // input without shape
    let mut noshape = vi("x", dt::FLOAT, &[]);
    if let Some(type_proto::Value::TensorType(t)) = noshape.r#type.as_mut().and_then(|t| t.value.as_mut()) {
        t.shape = None;
    }
    let m = model(17, vec![], vec![noshape], vec![out("x")], vec![]);
    assert_eq!(import_err(&m), "graph input \"x\": has no shape (its rank is unknown)");
}

#[test]
fn nodes_are_sorted_topologically_and_dead_code_dropped() {
    let m = model(
        17,
        vec![
            node("Identity", "second", &["t"], &["y"], vec![]),
            node("Identity", "first", &["x"], &["t"], vec![]),
        ],
        vec![vi("x", dt::FLOAT, &[D::N(2)])],
        vec![out("y")],
        vec![f32_init("unused", &[1], &[1.0])],
    );
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    // The unused initializer is gone; only the return is left.
    assert_eq!(f.body_ops().len(), 1);
    assert_eq!(f.results(), f.params());
}

#[test]
fn constant_node_forms() {
    let c = |attr: AttributeProto| {
        model(17, vec![node("Constant", "c", &[], &["y"], vec![attr])], vec![], vec![out("y")], vec![])
    };
    let m = import(&c(a_float("value_float", 2.5))).unwrap();
    let t = returned_const(&m, 0);
    assert_eq!((t.scalar_type(), t.shape().len(), t.to_f64_vec()), (ScalarType::F32, 0, vec![2.5]));
    let m = import(&c(a_ints("value_ints", &[3, -1]))).unwrap();
    let t = returned_const(&m, 0);
    assert_eq!(
        (t.scalar_type(), t.shape().to_vec(), t.to_f64_vec()),
        (ScalarType::I64, vec![2], vec![3.0, -1.0])
    );
    let m = import(&c(a_int("value_int", 7))).unwrap();
    assert_eq!(returned_const(&m, 0).to_f64_vec(), vec![7.0]);
    let m = import(&c(a_tensor("value", f32_init("", &[1, 2], &[1.0, 2.0])))).unwrap();
    assert_eq!(returned_const(&m, 0).shape(), &[1, 2]);
    let m = c(AttributeProto {
        name: Some("sparse_value".into()),
        r#type: Some(attr_type::SPARSE_TENSOR),
        ..Default::default()
    });
    assert_eq!(import_err(&m), "node \"c\" (Constant): sparse constants are not supported");
    let m = c(a_ints("value_float", &[1]));
    assert_eq!(import_err(&m), "node \"c\" (Constant): attribute \"value_float\": must be float, found ints");
    let mut two = c(a_int("value_int", 1));
    two.graph.as_mut().unwrap().node[0].attribute.push(a_float("value_float", 1.0));
    assert!(import_err(&two).contains("exactly one value attribute"));
}

#[test]
fn dropout_is_identity_at_inference() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(2), D::N(3)])];
    let m = model(
        13,
        vec![node("Dropout", "d", &["x"], &["y", "mask"], vec![])],
        x(),
        vec![out("y"), out("mask")],
        vec![],
    );
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    assert_eq!(f.results()[0], f.params()[0]);
    let mask = returned_const(&module, 1);
    assert_eq!((mask.scalar_type(), mask.shape().to_vec()), (ScalarType::Bool, vec![2, 3]));
    assert!(mask.to_f64_vec().iter().all(|&v| v == 1.0));
    // training_mode = true with the default ratio
    let bool_init = |name: &str, v: bool| TensorProto {
        name: Some(name.into()),
        data_type: Some(dt::BOOL),
        int32_data: vec![v as i32],
        ..Default::default()
    };
    let m = model(
        13,
        vec![node("Dropout", "d", &["x", "", "t"], &["y"], vec![])],
        x(),
        vec![out("y")],
        vec![bool_init("t", true)],
    );
    // Training mode: the random op.
    assert_eq!(compute_ops(&import(&m).unwrap()), vec![OpKind::Dropout]);
    // training_mode = true with ratio 0 and training_mode = false are identities
    let m = model(
        13,
        vec![node("Dropout", "d", &["x", "r", "t"], &["y"], vec![])],
        x(),
        vec![out("y")],
        vec![f32_init("r", &[], &[0.0]), bool_init("t", true)],
    );
    import(&m).unwrap();
    let m = model(
        13,
        vec![node("Dropout", "d", &["x", "", "t"], &["y"], vec![])],
        x(),
        vec![out("y")],
        vec![bool_init("t", false)],
    );
    import(&m).unwrap();
    // opset 11: ratio attribute, always inference
    let m = model(
        11,
        vec![node("Dropout", "d", &["x"], &["y"], vec![a_float("ratio", 0.3)])],
        x(),
        vec![out("y")],
        vec![],
    );
    import(&m).unwrap();
}

#[test]
fn shape_of_static_tensor_folds() {
    let m = model(
        17,
        vec![node("Shape", "s", &["x"], &["y"], vec![]), node("Size", "n", &["x"], &["z"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(2), D::N(3), D::N(4)])],
        vec![out("y"), out("z")],
        vec![],
    );
    let module = import(&m).unwrap();
    assert_eq!(returned_const(&module, 0).to_f64_vec(), vec![2.0, 3.0, 4.0]);
    assert_eq!(returned_const(&module, 1).to_f64_vec(), vec![24.0]);
    assert_eq!(module.main().unwrap().compute_op_count(), 0);
}

#[test]
fn all_digit_input_names_get_a_prefix() {
    let m = model(17, vec![], vec![vi("0", dt::FLOAT, &[D::N(1)])], vec![out("0")], vec![]);
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    assert_eq!(f.values[f.params()[0]].name.as_deref(), Some("_0"));
    assert_eq!(f.result_names, vec!["0".to_string()]);
    let m = model(
        17,
        vec![],
        vec![vi("0", dt::FLOAT, &[D::N(1)]), vi("_0", dt::FLOAT, &[D::N(1)])],
        vec![out("0")],
        vec![],
    );
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    assert_eq!(f.values[f.params()[0]].name.as_deref(), Some("__0"));
}

#[test]
fn op_kinds_exist_for_table() {
    // Every mapped op type resolves to an entry, and unknown ones do not.
    assert!(supported_op_types().count() > 100);
    assert!(ops::lookup("Add").is_some_and(|e| e.kind == OpKind::Add));
    assert!(ops::lookup("Loop").is_none());
}

/// A model using a bit of everything the importer reads, for the corruption test.
fn rich_model() -> ModelProto {
    let mut m = model(
        17,
        vec![
            node("Constant", "c", &[], &["k"], vec![a_ints("value_ints", &[1, 2, 3])]),
            node("Shape", "s", &["x"], &["sh"], vec![]),
            node("Dropout", "d", &["x"], &["y", "mask"], vec![]),
            node("Identity", "i", &["w"], &["w2"], vec![]),
        ],
        vec![vi("x", dt::FLOAT, &[D::N(2), D::N(3)])],
        vec![out("y"), out("mask"), out("sh"), out("k"), out("w2")],
        vec![f32_init("w", &[4], &[1.0, 2.0, 3.0, 4.0])],
    );
    m.doc_string = Some("corruption test".into());
    m
}

#[test]
fn corrupted_models_never_panic() {
    let good = rich_model().encode_to_vec();
    assert!(import_model_bytes(Bytes::from(good.clone()), None, &ImportOptions::default()).is_ok());
    for cut in (0..good.len()).step_by(97).chain([1, 2, 3, good.len() - 1]) {
        let r = import_model_bytes(Bytes::from(good[..cut].to_vec()), None, &ImportOptions::default());
        // A cut at a field boundary can still be a valid (smaller) model; it must not panic.
        let _ = r;
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % b.len();
            b[i] ^= (state >> 32) as u8 | 1;
        }
        if let Err(e) = import_model_bytes(Bytes::from(b), None, &ImportOptions::default()) {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
        }
    }
    for cut in (0..good.len()).step_by(7) {
        let mut b = good[..cut].to_vec();
        b.extend_from_slice(&[0xff; 12]);
        let r = import_model_bytes(Bytes::from(b), None, &ImportOptions::default());
        assert!(r.is_err(), "garbage tail at {cut} accepted");
    }
}

#[test]
fn constant_operands_fold() {
    let u8_init = |name: &str, v: u8| TensorProto {
        name: Some(name.into()),
        data_type: Some(dt::UINT8),
        int32_data: vec![v as i32],
        ..Default::default()
    };
    let m = model(
        21,
        vec![node("QuantizeLinear", "q", &["w", "s", "z"], &["y"], vec![])],
        vec![],
        vec![out("y")],
        vec![f32_init("w", &[3], &[0.0, 1.0, 2.5]), f32_init("s", &[], &[0.5]), u8_init("z", 10)],
    );
    let module = import(&m).unwrap();
    let t = returned_const(&module, 0);
    assert_eq!((t.scalar_type(), t.to_f64_vec()), (ScalarType::U8, vec![10.0, 12.0, 15.0]));
    let f = module.main().unwrap();
    // Only the folded constant and the return are left.
    assert_eq!(f.body_ops().len(), 2);
    assert_eq!(f.ops[f.body_ops()[0]].loc, edgec_ir::Loc::Name("q".into()));
}

#[test]
fn every_graph_level_op_is_mapped() {
    let mapped: std::collections::HashSet<OpKind> =
        supported_op_types().filter_map(ops::lookup).map(|e| e.kind).collect();
    let missing: Vec<&str> = OpKind::ALL
        .iter()
        // builtin/func are structural; fused.*, layout.* (choose-layout), the TFLite-arithmetic
        // integer kernels (qint8.rs) and the int4 weight-only ops (quant_nbits.rs) are formed by
        // passes, never imported.
        .filter(|k| {
            !matches!(k.def().dialect(), "builtin" | "func" | "fused" | "layout") && !mapped.contains(k)
        })
        .filter(|k| !edgec_ir::ops::qint8::ALL.contains(k))
        .filter(|k| !matches!(k, OpKind::MatMulNBits | OpKind::GatherNBits))
        .map(|k| k.name())
        .collect();
    assert!(missing.is_empty(), "IR ops without an ONNX mapping in onnx/ops.rs: {missing:?}");
}

/// Byte-level corruption of real exported models (with external data): every variant must
/// import or fail with an error, never panic.
#[test]
fn corrupted_zoo_models_never_panic() {
    let zoo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/zoo");
    // EDGEC_FUZZ_ITERS and EDGEC_FUZZ_MODELS=all give a longer run by hand.
    let iters: usize = std::env::var("EDGEC_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(400);
    let mut names: Vec<String> =
        ["vae_mlp_dynamo", "gpt2_dynamo", "dcgan"].iter().map(|s| s.to_string()).collect();
    if std::env::var("EDGEC_FUZZ_MODELS").is_ok_and(|v| v == "all") {
        names = std::fs::read_dir(&zoo)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
    }
    for name in &names {
        let dir = zoo.join(name);
        let Ok(good) = std::fs::read(dir.join("model.onnx")) else { continue };
        let run = |b: Vec<u8>| {
            if let Err(e) = import_model_bytes(Bytes::from(b), Some(&dir), &ImportOptions::default()) {
                assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
            }
        };
        for cut in (0..good.len()).step_by(97) {
            run(good[..cut].to_vec());
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ good.len() as u64;
        for _ in 0..iters {
            let mut b = good.clone();
            for _ in 0..2 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let i = (state as usize) % b.len();
                b[i] ^= (state >> 40) as u8 | 1;
            }
            run(b);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Opset upgrades and frontend-resolved ops, checked by running the imported IR.

fn f32t(shape: &[usize], v: &[f32]) -> edgec_ir::Tensor {
    edgec_ir::Tensor::F32(ArrayD::from_shape_vec(IxDyn(shape), v.to_vec()).unwrap())
}

fn run(m: &ModelProto, inputs: Vec<edgec_ir::Tensor>) -> Vec<edgec_ir::Tensor> {
    let module = import(m).unwrap_or_else(|e| panic!("{e}"));
    edgec_ir::interp::run_function(module.main().unwrap(), inputs).unwrap_or_else(|e| panic!("{e}"))
}

fn close(a: &edgec_ir::Tensor, shape: &[usize], want: &[f64]) {
    assert_eq!(a.shape(), shape);
    let got = a.to_f64_vec();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "got {got:?}, want {want:?}");
    }
}

/// The one op of `m`'s graph after import (ignoring constants and the return).
fn compute_ops(m: &Module) -> Vec<OpKind> {
    let f = m.main().unwrap();
    f.body_ops()
        .iter()
        .map(|&o| f.ops[o].kind)
        .filter(|k| !matches!(k, OpKind::Constant | OpKind::Return))
        .collect()
}

#[test]
fn squeeze_and_unsqueeze_axes_attribute_becomes_an_input() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(1), D::N(3), D::N(1)])];
    let m = model(
        11,
        vec![node("Squeeze", "s", &["x"], &["y"], vec![a_ints("axes", &[0, -1])])],
        x(),
        vec![out("y")],
        vec![],
    );
    let y = run(&m, vec![f32t(&[1, 3, 1], &[1.0, 2.0, 3.0])]);
    close(&y[0], &[3], &[1.0, 2.0, 3.0]);
    let m = model(11, vec![node("Squeeze", "s", &["x"], &["y"], vec![])], x(), vec![out("y")], vec![]);
    close(&run(&m, vec![f32t(&[1, 3, 1], &[1.0, 2.0, 3.0])])[0], &[3], &[1.0, 2.0, 3.0]);
    let m = model(
        12,
        vec![node("Unsqueeze", "u", &["x"], &["y"], vec![a_ints("axes", &[0, 4])])],
        x(),
        vec![out("y")],
        vec![],
    );
    close(&run(&m, vec![f32t(&[1, 3, 1], &[1.0, 2.0, 3.0])])[0], &[1, 1, 3, 1, 1], &[1.0, 2.0, 3.0]);
    let m = model(12, vec![node("Unsqueeze", "u", &["x"], &["y"], vec![])], x(), vec![out("y")], vec![]);
    assert_eq!(import_err(&m), "node \"u\" (Unsqueeze): attribute \"axes\": is required but missing");
    // At opset 13 the attribute no longer exists.
    let m = model(
        13,
        vec![node("Squeeze", "s", &["x"], &["y"], vec![a_ints("axes", &[0])])],
        x(),
        vec![out("y")],
        vec![],
    );
    assert!(import_err(&m).contains("attribute \"axes\": is not an attribute of Squeeze at opset 13"));
}

#[test]
fn reduce_axes_attribute_becomes_an_input() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(2), D::N(3)])];
    let xv = || f32t(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let red = |opset: i64, op: &str, attrs: Vec<AttributeProto>| {
        model(opset, vec![node(op, "r", &["x"], &["y"], attrs)], x(), vec![out("y")], vec![])
    };
    close(
        &run(&red(11, "ReduceSum", vec![a_ints("axes", &[1]), a_int("keepdims", 0)]), vec![xv()])[0],
        &[2],
        &[6.0, 15.0],
    );
    close(
        &run(&red(17, "ReduceMean", vec![a_ints("axes", &[-2])]), vec![xv()])[0],
        &[1, 3],
        &[2.5, 3.5, 4.5],
    );
    close(&run(&red(13, "ReduceMax", vec![a_int("keepdims", 0)]), vec![xv()])[0], &[], &[6.0]);
    close(
        &run(&red(11, "ReduceL2", vec![a_ints("axes", &[0])]), vec![xv()])[0],
        &[1, 3],
        &[17f64.sqrt(), 29f64.sqrt(), 45f64.sqrt()],
    );
    // ReduceSum-13 already takes axes as an input; ReduceMean-18 too.
    let m = model(
        18,
        vec![node("ReduceMean", "r", &["x", "ax"], &["y"], vec![a_int("keepdims", 0)])],
        x(),
        vec![out("y")],
        vec![i64_init("ax", &[1], &[1])],
    );
    close(&run(&m, vec![xv()])[0], &[2], &[2.0, 5.0]);
}

#[test]
fn split_forms_of_every_opset() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(2), D::N(4)])];
    let xv = || f32t(&[2, 4], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
    let m = model(
        11,
        vec![node("Split", "s", &["x"], &["a", "b"], vec![a_int("axis", 1), a_ints("split", &[1, 3])])],
        x(),
        vec![out("a"), out("b")],
        vec![],
    );
    let y = run(&m, vec![xv()]);
    close(&y[0], &[2, 1], &[1.0, 5.0]);
    close(&y[1], &[2, 3], &[2.0, 3.0, 4.0, 6.0, 7.0, 8.0]);
    // Even splits into as many parts as outputs (opset 13 without `split`, 18 with `num_outputs`).
    for (opset, attrs) in
        [(13, vec![a_int("axis", 1)]), (18, vec![a_int("axis", 1), a_int("num_outputs", 2)])]
    {
        let m = model(
            opset,
            vec![node("Split", "s", &["x"], &["a", "b"], attrs)],
            x(),
            vec![out("a"), out("b")],
            vec![],
        );
        let y = run(&m, vec![xv()]);
        close(&y[0], &[2, 2], &[1.0, 2.0, 5.0, 6.0]);
        close(&y[1], &[2, 2], &[3.0, 4.0, 7.0, 8.0]);
    }
    let m = model(
        13,
        vec![node("Split", "s", &["x", "sp"], &["a", "b"], vec![])],
        x(),
        vec![out("a"), out("b")],
        vec![i64_init("sp", &[2], &[1, 1])],
    );
    let y = run(&m, vec![xv()]);
    close(&y[0], &[1, 4], &[1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn softmax_before_opset_13_coerces_to_2d() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(2), D::N(2), D::N(2)])];
    let xv = || f32t(&[2, 2, 2], &[0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0, 0.0]);
    // axis 1 (the default): each row of 4 elements is one distribution.
    let m = model(11, vec![node("Softmax", "s", &["x"], &["y"], vec![])], x(), vec![out("y")], vec![]);
    let e: Vec<f64> = [0.0f64, 1.0, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let sum: f64 = e.iter().sum();
    let mut want: Vec<f64> = e.iter().map(|v| v / sum).collect();
    want.extend([0.25; 4]);
    close(&run(&m, vec![xv()])[0], &[2, 2, 2], &want);
    assert_eq!(compute_ops(&import(&m).unwrap()), vec![OpKind::Flatten, OpKind::Softmax, OpKind::Reshape]);
    // The last axis needs no coercion.
    let m = model(
        12,
        vec![node("LogSoftmax", "s", &["x"], &["y"], vec![a_int("axis", -1)])],
        x(),
        vec![out("y")],
        vec![],
    );
    let y = run(&m, vec![xv()]);
    close(
        &y[0],
        &[2, 2, 2],
        &[
            -(1f64.exp() + 1.0).ln(),
            1.0 - (1f64.exp() + 1.0).ln(),
            2.0 - (2f64.exp() + 3f64.exp()).ln(),
            3.0 - (2f64.exp() + 3f64.exp()).ln(),
            -(2f64.ln()),
            -(2f64.ln()),
            -(2f64.ln()),
            -(2f64.ln()),
        ],
    );
    assert_eq!(compute_ops(&import(&m).unwrap()), vec![OpKind::LogSoftmax]);
    // Hardmax-11 axis 0: one maximum over all 8 elements.
    let m = model(
        11,
        vec![node("Hardmax", "h", &["x"], &["y"], vec![a_int("axis", 0)])],
        x(),
        vec![out("y")],
        vec![],
    );
    close(&run(&m, vec![xv()])[0], &[2, 2, 2], &[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    // With a symbolic dim the shape to restore comes from shape.shape at run time.
    let m = model(
        11,
        vec![node("Softmax", "s", &["x"], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::S("n"), D::N(2), D::N(2)])],
        vec![out("y")],
        vec![],
    );
    let y = run(&m, vec![xv()]);
    close(&y[0], &[2, 2, 2], &want);
}

#[test]
fn group_norm_18_scale_per_group_becomes_per_channel() {
    let xv = f32t(&[1, 4, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 9.0, 11.0]);
    let gn = |opset: i64, scale: &[f32], bias: &[f32]| {
        model(
            opset,
            vec![node(
                "GroupNormalization",
                "g",
                &["x", "s", "b"],
                &["y"],
                vec![a_int("num_groups", 2), a_float("epsilon", 0.0)],
            )],
            vec![vi("x", dt::FLOAT, &[D::N(1), D::N(4), D::N(2)])],
            vec![out("y")],
            vec![f32_init("s", &[scale.len() as i64], scale), f32_init("b", &[bias.len() as i64], bias)],
        )
    };
    let old = run(&gn(18, &[1.0, 2.0], &[0.0, 10.0]), vec![xv.clone()]);
    let new = run(&gn(21, &[1.0, 1.0, 2.0, 2.0], &[0.0, 0.0, 10.0, 10.0]), vec![xv]);
    assert_eq!(old, new);
    // Non-constant per-group scale: expanded with ops.
    let m = model(
        18,
        vec![node("GroupNormalization", "g", &["x", "s", "b"], &["y"], vec![a_int("num_groups", 2)])],
        vec![
            vi("x", dt::FLOAT, &[D::N(1), D::N(4), D::N(2)]),
            vi("s", dt::FLOAT, &[D::N(2)]),
            vi("b", dt::FLOAT, &[D::N(2)]),
        ],
        vec![out("y")],
        vec![],
    );
    import(&m).unwrap();
    let m = model(
        18,
        vec![node("GroupNormalization", "g", &["x", "s", "b"], &["y"], vec![a_int("num_groups", 3)])],
        vec![
            vi("x", dt::FLOAT, &[D::N(1), D::N(4), D::N(2)]),
            vi("s", dt::FLOAT, &[D::N(3)]),
            vi("b", dt::FLOAT, &[D::N(3)]),
        ],
        vec![out("y")],
        vec![],
    );
    assert_eq!(
        import_err(&m),
        "node \"g\" (GroupNormalization): attribute \"num_groups\": 3 does not divide the 4 channels"
    );
}

#[test]
fn omitted_optional_inputs() {
    // Clip with only `max`: `min` becomes a zero-element constant of the input's type.
    let m = model(
        13,
        vec![node("Clip", "c", &["x", "", "hi"], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(3)])],
        vec![out("y")],
        vec![f32_init("hi", &[], &[1.0])],
    );
    close(&run(&m, vec![f32t(&[3], &[-5.0, 0.5, 5.0])])[0], &[3], &[-5.0, 0.5, 1.0]);
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    let clip = f.body_ops().iter().find(|&&o| f.ops[o].kind == OpKind::Clip).copied().unwrap();
    let min = f.ops[clip].operands[1];
    assert_eq!(f.values[min].ty, TensorType::of(&[0], ScalarType::F32));
    // Trailing omitted inputs are dropped.
    let m = model(
        13,
        vec![node("Clip", "c", &["x", "", ""], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(3)])],
        vec![out("y")],
        vec![],
    );
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    let clip = f.body_ops().iter().find(|&&o| f.ops[o].kind == OpKind::Clip).copied().unwrap();
    assert_eq!(f.ops[clip].operands.len(), 1);
    // A required input cannot be omitted.
    let m = model(
        13,
        vec![node("Add", "a", &["", "x"], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(3)])],
        vec![out("y")],
        vec![],
    );
    assert_eq!(import_err(&m), "node \"a\" (Add): required input #0 (a) is missing");
}

#[test]
fn cast_like_and_dtype_attributes() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(2)]), vi("t", dt::INT32, &[D::N(1)])];
    let m = model(15, vec![node("CastLike", "c", &["x", "t"], &["y"], vec![])], x(), vec![out("y")], vec![]);
    let y = run(&m, vec![f32t(&[2], &[1.0, -2.0]), edgec_ir::Tensor::I32(ArrayD::from_elem(IxDyn(&[1]), 0))]);
    assert_eq!(y[0].scalar_type(), ScalarType::I32);
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    let cast = f.body_ops()[0];
    assert_eq!(f.ops[cast].attrs.ty("to"), Some(ScalarType::I32));
    let m = model(
        13,
        vec![node("Cast", "c", &["x"], &["y"], vec![a_int("to", dt::FLOAT16 as i64)])],
        x(),
        vec![out("y")],
        vec![],
    );
    let module = import(&m).unwrap();
    let f = module.main().unwrap();
    assert_eq!(f.ops[f.body_ops()[0]].attrs.ty("to"), Some(ScalarType::F16));
    let m =
        model(13, vec![node("Cast", "c", &["x"], &["y"], vec![a_int("to", 0)])], x(), vec![out("y")], vec![]);
    assert_eq!(import_err(&m), "node \"c\" (Cast): attribute \"to\": is required but missing");
    let m = model(
        13,
        vec![node("Cast", "c", &["x"], &["y"], vec![a_int("to", dt::STRING as i64)])],
        x(),
        vec![out("y")],
        vec![],
    );
    assert_eq!(import_err(&m), "node \"c\" (Cast): attribute \"to\": unsupported data type STRING");
    let m = model(
        13,
        vec![node("Cast", "c", &["x"], &["y"], vec![a_float("to", 1.0)])],
        x(),
        vec![out("y")],
        vec![],
    );
    assert_eq!(import_err(&m), "node \"c\" (Cast): attribute \"to\": must be type, found float");
}

#[test]
fn shape_chains_fold_to_constants() {
    // The torch pattern: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
    let m = model(
        13,
        vec![
            node("Shape", "shape", &["x"], &["s"], vec![]),
            node("Gather", "gather", &["s", "i0"], &["d0"], vec![a_int("axis", 0)]),
            node("Unsqueeze", "unsq", &["d0", "ax0"], &["d0u"], vec![]),
            node("Concat", "concat", &["d0u", "minus1"], &["shp"], vec![a_int("axis", 0)]),
            node("Reshape", "reshape", &["x", "shp"], &["y"], vec![]),
        ],
        vec![vi("x", dt::FLOAT, &[D::S("batch"), D::N(3), D::N(4)])],
        vec![out("y")],
        vec![i64_init("i0", &[], &[0]), i64_init("ax0", &[1], &[0]), i64_init("minus1", &[1], &[-1])],
    );
    let mut opts = ImportOptions::default();
    opts.dims.insert("batch".into(), 2);
    let module = import_model_bytes(encode(&m), None, &opts).unwrap();
    assert_eq!(compute_ops(&module), vec![OpKind::Reshape]);
    let f = module.main().unwrap();
    assert_eq!(f.result_types()[0], TensorType::of(&[2, 12], ScalarType::F32));
    let reshape = f.body_ops().iter().find(|&&o| f.ops[o].kind == OpKind::Reshape).copied().unwrap();
    let shape = edgec_ir::verify::constant_value(f, f.ops[reshape].operands[1]).unwrap();
    assert_eq!(shape.to_i64_vec(), Some(vec![2, -1]));
    // Unbound, the chain stays (the batch is only known at run time) and still runs.
    let module = import(&m).unwrap();
    assert!(compute_ops(&module).contains(&OpKind::Shape));
    let y = run(&m, vec![f32t(&[1, 3, 4], &[0.0; 12])]);
    assert_eq!(y[0].shape(), &[1, 12]);
    // Shape-15 start/end on a static input.
    let m = model(
        15,
        vec![node("Shape", "s", &["x"], &["y"], vec![a_int("start", -2), a_int("end", 10)])],
        vec![vi("x", dt::FLOAT, &[D::N(2), D::N(3), D::N(4)])],
        vec![out("y")],
        vec![],
    );
    assert_eq!(returned_const(&import(&m).unwrap(), 0).to_i64_vec(), Some(vec![3, 4]));
}

#[test]
fn dropout_mask_of_dynamic_shape() {
    let m = model(
        13,
        vec![node("Dropout", "d", &["x"], &["y", "mask"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::S("n"), D::N(2)])],
        vec![out("y"), out("mask")],
        vec![],
    );
    let y = run(&m, vec![f32t(&[3, 2], &[1.0; 6])]);
    assert_eq!(y[1].scalar_type(), ScalarType::Bool);
    assert_eq!(y[1].shape(), &[3, 2]);
    assert!(y[1].to_f64_vec().iter().all(|&v| v == 1.0));
}

#[test]
fn old_forms_that_are_rejected() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(1), D::N(2), D::N(2), D::N(2)])];
    let bn_inits = || ["s", "b", "m", "v"].iter().map(|n| f32_init(n, &[2], &[1.0, 1.0])).collect::<Vec<_>>();
    let m = model(
        12,
        vec![node("BatchNormalization", "bn", &["x", "s", "b", "m", "v"], &["y", "rm"], vec![])],
        x(),
        vec![out("y"), out("rm")],
        bn_inits(),
    );
    assert!(
        import_err(&m).starts_with("node \"bn\" (BatchNormalization): BatchNormalization training outputs")
    );
    let m = model(
        12,
        vec![node(
            "BatchNormalization",
            "bn",
            &["x", "s", "b", "m", "v"],
            &["y"],
            vec![a_float("epsilon", 1e-3)],
        )],
        x(),
        vec![out("y")],
        bn_inits(),
    );
    import(&m).unwrap();
    let mode = AttributeProto {
        name: Some("coordinate_transformation_mode".into()),
        r#type: Some(attr_type::STRING),
        s: Some(b"tf_half_pixel_for_nn".to_vec()),
        ..Default::default()
    };
    let m = model(
        11,
        vec![node("Resize", "r", &["x", "roi", "sc"], &["y"], vec![mode])],
        x(),
        vec![out("y")],
        vec![f32_init("roi", &[0], &[]), f32_init("sc", &[4], &[1.0, 1.0, 2.0, 2.0])],
    );
    assert!(import_err(&m).contains("tf_half_pixel_for_nn"));
}

#[test]
fn resize_11_with_sizes_and_empty_scales() {
    let m = model(
        11,
        vec![node("Resize", "r", &["x", "", "", "sz"], &["y"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(1), D::N(1), D::N(1), D::N(2)])],
        vec![out("y")],
        vec![i64_init("sz", &[4], &[1, 1, 2, 4])],
    );
    let y = run(&m, vec![f32t(&[1, 1, 1, 2], &[1.0, 2.0])]);
    close(&y[0], &[1, 1, 2, 4], &[1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
}

#[test]
fn function_ops() {
    let x = || vec![vi("x", dt::FLOAT, &[D::N(4)])];
    let xv = || f32t(&[4], &[-2.0, -0.3, 0.3, 2.0]);
    let m = model(
        13,
        vec![node("Shrink", "s", &["x"], &["y"], vec![a_float("bias", 0.25)])],
        x(),
        vec![out("y")],
        vec![],
    );
    close(&run(&m, vec![xv()])[0], &[4], &[-1.75, 0.0, 0.0, 1.75]);
    let m = model(
        16,
        vec![node("PRelu", "p", &["x", "sl"], &["y"], vec![])],
        x(),
        vec![out("y")],
        vec![f32_init("sl", &[1], &[0.5])],
    );
    close(&run(&m, vec![xv()])[0], &[4], &[-1.0, -0.15, 0.3, 2.0]);
    let m = model(13, vec![node("Softsign", "s", &["x"], &["y"], vec![])], x(), vec![out("y")], vec![]);
    close(&run(&m, vec![xv()])[0], &[4], &[-2.0 / 3.0, -0.3 / 1.3, 0.3 / 1.3, 2.0 / 3.0]);
    let m = model(
        13,
        vec![node("Softsign", "s", &["x"], &["y"], vec![a_float("alpha", 1.0)])],
        x(),
        vec![out("y")],
        vec![],
    );
    assert!(import_err(&m)
        .starts_with("node \"s\" (Softsign): attribute \"alpha\": is not an attribute of Softsign"));
}

#[test]
fn huge_static_dims_do_not_overflow() {
    // Dims whose product overflows: no folding, no allocation, no arithmetic panic.
    let m = model(
        13,
        vec![node("Dropout", "d", &["x"], &["y", "mask"], vec![]), node("Size", "s", &["x"], &["n"], vec![])],
        vec![vi("x", dt::FLOAT, &[D::N(1 << 40), D::N(1 << 40)])],
        vec![out("y"), out("mask"), out("n")],
        vec![],
    );
    let e = import_err(&m);
    assert!(e.starts_with("node \"s\" (Size): "), "{e}");
}

#[test]
fn op_table_has_no_duplicates() {
    let mut seen = std::collections::HashSet::new();
    for op in supported_op_types() {
        assert!(seen.insert(op), "ONNX op type {op} is mapped twice in onnx/ops.rs");
    }
}
