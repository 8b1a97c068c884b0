//! Bit-exactness against TFLite's reference integer kernels.
//!
//! `testsuite/fixtures/tflite_exact/` holds one-op int8 TFLite models' inputs, parameters and
//! outputs as computed by LiteRT with the `BUILTIN_REF` op resolver (written by
//! `testsuite/scripts/gen_tflite_exact.py`). Each case is rebuilt here as the equivalent edgec
//! IR — NHWC activations and OHWI / 1HWC weights transposed to edgec's NCHW / OIHW, TFLite's
//! SAME padding turned into explicit pads — and the reference interpreter, the host-compiled
//! code and the Cortex-M7 code must all reproduce TFLite's outputs bit for bit (for
//! FULLY_CONNECTED, the fixed-point output: see [`compare`]).

use edgec::{Session, Target};
use edgec_ir::{
    Attr, Attrs, Builder, ConstTensor, ElemType, Function, Loc, Module, OpKind, QuantParams, QuantType,
    ScalarType, Tensor, TensorType, Value,
};
use ndarray::{ArrayD, IxDyn};
use serde_json::Value as Json;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tflite_exact")
}

/// A fixture case: its manifest entry and arrays.
struct Case {
    m: Json,
    arrays: Vec<(String, Tensor)>,
}

impl Case {
    fn name(&self) -> &str {
        self.m["name"].as_str().unwrap()
    }
    fn op(&self) -> &str {
        self.m["op"].as_str().unwrap()
    }
    fn array(&self, name: &str) -> Option<&Tensor> {
        self.arrays.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
    fn int(&self, key: &str) -> i64 {
        self.m[key].as_i64().unwrap_or_else(|| panic!("{}: no integer {key:?}", self.name()))
    }
    fn ints(&self, key: &str) -> Vec<i64> {
        self.m[key].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect()
    }
    /// `(scale, zero_point)` of a tensor entry; scales are float32 values, so they are rounded
    /// to f32 (undoing any last-bit error of the JSON number parser) and widened exactly.
    fn qparams(&self, key: &str) -> (f64, i64) {
        let q = &self.m[key];
        (f32_exact(&q["scale"]), q["zero_point"].as_i64().unwrap())
    }
    fn w_scales(&self) -> Vec<f64> {
        self.m["w_scales"].as_array().unwrap().iter().map(f32_exact).collect()
    }
}

fn f32_exact(v: &Json) -> f64 {
    v.as_f64().unwrap() as f32 as f64
}

fn load_cases() -> Vec<Case> {
    let dir = fixtures();
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json");
    let manifest: Json = serde_json::from_str(&text).unwrap();
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let file = dir.join(m["file"].as_str().unwrap());
            let arrays = edgec::io::read_npz(&file).unwrap_or_else(|e| panic!("{e}"));
            Case { m: m.clone(), arrays }
        })
        .collect()
}

fn q_i8(scale: f64, zero_point: i64) -> ElemType {
    ElemType::Quant(Box::new(QuantType {
        storage: ScalarType::I8,
        expressed: ScalarType::F32,
        params: QuantParams::PerTensor { scale, zero_point },
    }))
}

fn q_i8_axis(axis: usize, scales: Vec<f64>) -> ElemType {
    let zero_points = vec![0; scales.len()];
    ElemType::Quant(Box::new(QuantType {
        storage: ScalarType::I8,
        expressed: ScalarType::F32,
        params: QuantParams::PerAxis { axis, scales, zero_points },
    }))
}

fn i8_array(t: &Tensor) -> ArrayD<i8> {
    match t {
        Tensor::I8(a) => a.clone(),
        t => panic!("expected an int8 array, found {}", t.scalar_type().name()),
    }
}

fn permute(t: &Tensor, axes: &[usize]) -> Tensor {
    let a = i8_array(t).permuted_axes(IxDyn(axes));
    Tensor::I8(a.as_standard_layout().into_owned())
}

fn reshape(t: &Tensor, shape: &[usize]) -> Tensor {
    t.to_shape(shape).unwrap()
}

/// TFLite's padding of one spatial dim: `(begin, end)`.
fn tflite_pads(padding: &str, input: usize, kernel: usize, stride: usize, dilation: usize) -> (i64, i64) {
    if padding == "VALID" {
        return (0, 0);
    }
    let eff = (kernel - 1) * dilation + 1;
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + eff).saturating_sub(input) as i64;
    (total / 2, total - total / 2)
}

/// A function under construction: parameters, then ops.
struct Built {
    func: Function,
    inputs: Vec<Tensor>,
    /// Permutation that turns the edgec result into TFLite's layout (None: same layout).
    out_perm: Option<Vec<usize>>,
}

fn param(f: &mut Function, name: &str, shape: &[usize], elem: ElemType) -> Value {
    f.add_param(TensorType::of(shape, elem), Some(name.to_string()))
}

fn konst(f: &mut Function, t: Tensor, ty: TensorType) -> Value {
    Builder::new(f).constant(ConstTensor::from_tensor(&t).with_type(ty), Loc::Unknown)
}

fn out_attrs(c: &Case) -> Attrs {
    let (s, zp) = c.qparams("y");
    let mut a = Attrs::new().with("scale", Attr::Float(s)).with("zero_point", Attr::Int(zp));
    if c.m.get("act_min").is_some() {
        a.set("act_min", Attr::Int(c.int("act_min")));
        a.set("act_max", Attr::Int(c.int("act_max")));
    }
    a
}

/// Conv-like ops: x NHWC → NCHW, weights to edgec's layout, bias, geometry.
fn build_conv(c: &Case) -> Built {
    let mut f = Function::new("main");
    let x = c.array("x").unwrap();
    let xs = x.shape().to_vec();
    let (n, h, w, ch) = (xs[0], xs[1], xs[2], xs[3]);
    let (s_x, zp_x) = c.qparams("x");
    let xv = param(&mut f, "x", &[n, ch, h, w], q_i8(s_x, zp_x));
    let wt = c.array("w").unwrap();
    let scales = c.w_scales();
    let (kind, w_oihw, w_axis, group) = match c.op() {
        // OHWI → OIHW.
        "CONV_2D" => (OpKind::QConv, permute(wt, &[0, 3, 1, 2]), 0, 1),
        // 1HWC → C1HW (group = C).
        "DEPTHWISE_CONV_2D" => (OpKind::QConv, permute(wt, &[3, 0, 1, 2]), 0, ch as i64),
        // OHWI → IOHW ([C_in, M_out, kh, kw]), per output channel along axis 1.
        _ => (OpKind::QConvTranspose, permute(wt, &[3, 0, 1, 2]), 1, 1),
    };
    let ws = w_oihw.shape().to_vec();
    let wv = konst(&mut f, w_oihw, TensorType::of(&ws, q_i8_axis(w_axis, scales)));
    let mut operands = vec![xv, wv];
    if let Some(b) = c.array("b") {
        let bv = konst(&mut f, b.clone(), b.ty());
        operands.push(bv);
    }
    let strides = c.ints("strides");
    let (kh, kw) = (ws[2], ws[3]);
    let mut attrs = out_attrs(c).with("strides", Attr::Ints(strides.clone()));
    if kind == OpKind::QConvTranspose {
        attrs.set("pads", Attr::Ints(c.ints("pads")));
    } else {
        let dil = c.ints("dilations");
        let padding = c.m["padding"].as_str().unwrap();
        let (ph0, ph1) = tflite_pads(padding, h, kh, strides[0] as usize, dil[0] as usize);
        let (pw0, pw1) = tflite_pads(padding, w, kw, strides[1] as usize, dil[1] as usize);
        attrs.set("pads", Attr::Ints(vec![ph0, pw0, ph1, pw1]));
        attrs.set("dilations", Attr::Ints(dil));
        attrs.set("group", Attr::Int(group));
    }
    let y = Builder::new(&mut f).op(kind, operands, attrs, Loc::Unknown).unwrap_or_else(|e| panic!("{e}"));
    finish(&mut f, y);
    Built { func: f, inputs: vec![permute(x, &[0, 3, 1, 2])], out_perm: Some(vec![0, 2, 3, 1]) }
}

fn build_fc(c: &Case) -> Built {
    let mut f = Function::new("main");
    let x = c.array("x").unwrap();
    let wt = c.array("w").unwrap();
    let k = *x.shape().last().unwrap();
    // Without keep_num_dims TFLite flattens the leading dims.
    let x = if c.m["keep_num_dims"].as_bool().unwrap() { x.clone() } else { reshape(x, &[x.len() / k, k]) };
    let (s_x, zp_x) = c.qparams("x");
    let xv = param(&mut f, "x", x.shape(), q_i8(s_x, zp_x));
    let scales = c.w_scales();
    let w_elem =
        if c.m["per_channel"].as_bool().unwrap() { q_i8_axis(0, scales) } else { q_i8(scales[0], 0) };
    let wv = konst(&mut f, wt.clone(), TensorType::of(wt.shape(), w_elem));
    let mut operands = vec![xv, wv];
    if let Some(b) = c.array("b") {
        operands.push(konst(&mut f, b.clone(), b.ty()));
    }
    let y = Builder::new(&mut f)
        .op(OpKind::QFullyConnected, operands, out_attrs(c), Loc::Unknown)
        .unwrap_or_else(|e| panic!("{e}"));
    finish(&mut f, y);
    Built { func: f, inputs: vec![x], out_perm: None }
}

fn build_add(c: &Case) -> Built {
    let mut f = Function::new("main");
    let (a, b) = (c.array("x").unwrap(), c.array("x2").unwrap());
    let (s1, z1) = c.qparams("x");
    let (s2, z2) = c.qparams("x2");
    let av = param(&mut f, "x", a.shape(), q_i8(s1, z1));
    let bv = param(&mut f, "x2", b.shape(), q_i8(s2, z2));
    let y = Builder::new(&mut f)
        .op(OpKind::QAdd, vec![av, bv], out_attrs(c), Loc::Unknown)
        .unwrap_or_else(|e| panic!("{e}"));
    finish(&mut f, y);
    Built { func: f, inputs: vec![a.clone(), b.clone()], out_perm: None }
}

fn build_unary(c: &Case) -> Built {
    let mut f = Function::new("main");
    let x = c.array("x").unwrap();
    let (kind, elem, attrs) = match (c.op(), x.scalar_type()) {
        ("QUANTIZE", ScalarType::F32) => (OpKind::QQuantize, ElemType::Scalar(ScalarType::F32), out_attrs(c)),
        ("QUANTIZE", _) => {
            let (s, zp) = c.qparams("x");
            (OpKind::QRequantize, q_i8(s, zp), out_attrs(c))
        }
        _ => {
            let (s, zp) = c.qparams("x");
            (OpKind::QDequantize, q_i8(s, zp), Attrs::new())
        }
    };
    let xv = param(&mut f, "x", x.shape(), elem);
    let y = Builder::new(&mut f).op(kind, vec![xv], attrs, Loc::Unknown).unwrap_or_else(|e| panic!("{e}"));
    finish(&mut f, y);
    Built { func: f, inputs: vec![x.clone()], out_perm: None }
}

fn finish(f: &mut Function, y: Value) {
    Builder::new(f).ret(vec![y]);
    f.result_names = vec!["y".into()];
}

fn build(c: &Case) -> Built {
    match c.op() {
        "CONV_2D" | "DEPTHWISE_CONV_2D" | "TRANSPOSE_CONV" => build_conv(c),
        "FULLY_CONNECTED" => build_fc(c),
        "ADD" => build_add(c),
        "QUANTIZE" | "DEQUANTIZE" => build_unary(c),
        op => panic!("{}: unknown op {op}", c.name()),
    }
}

/// The first difference between `out` (edgec's, in edgec's layout) and TFLite's output.
///
/// FULLY_CONNECTED is compared with `y_fixed_point`, the output of TFLite's fixed-point
/// rescaling (`MultiplyByQuantizedMultiplier`, as in its optimized kernel and TFLite-Micro):
/// LiteRT's *reference* int8 FULLY_CONNECTED alone rescales in floating point,
/// `round(acc · (s_x · s_w / s_y))` in double, which differs from the fixed-point result by one
/// LSB where the double rounding of the fixed-point path meets a tie. Those differences must
/// be at most 1 and are counted in `ref_diffs`.
fn compare(c: &Case, b: &Built, out: &Tensor, ref_diffs: &mut usize) -> Result<(), String> {
    let fixed = c.array("y_fixed_point");
    let want = fixed.unwrap_or_else(|| c.array("y").unwrap());
    let got = match &b.out_perm {
        Some(p) => permute(out, p),
        None => out.clone(),
    };
    let got = if got.shape() != want.shape() { reshape(&got, want.shape()) } else { got };
    if fixed.is_some() {
        let (g, r) = (got.to_f64_vec(), c.array("y").unwrap().to_f64_vec());
        if let Some(i) = (0..g.len()).find(|&i| (g[i] - r[i]).abs() > 1.0) {
            return Err(format!("index {i}: edgec {} vs the reference kernel's {}", g[i], r[i]));
        }
        *ref_diffs += (0..g.len()).filter(|&i| g[i] != r[i]).count();
    }
    if got.scalar_type() != want.scalar_type() {
        return Err(format!("type {} vs TFLite's {}", got.scalar_type().name(), want.scalar_type().name()));
    }
    let (gb, wb) = (got.to_le_bytes(), want.to_le_bytes());
    if gb == wb {
        return Ok(());
    }
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let bad: Vec<usize> = (0..g.len()).filter(|&i| g[i].to_bits() != w[i].to_bits()).collect();
    let i = bad[0];
    Err(format!(
        "{} of {} elements differ; first at flat index {i} (TFLite layout): edgec {} vs TFLite {}",
        bad.len(),
        g.len(),
        g[i],
        w[i]
    ))
}

fn run_case(c: &Case, target: &str, ref_diffs: &mut usize) -> Result<(), String> {
    let b = build(c);
    let mut module = Module::new();
    module.functions.push(b.func.clone());
    let session = Session::from_module(module).map_err(|e| format!("verify: {e}"))?;
    let out = if target == "interp" {
        session.run(b.inputs.clone()).map_err(|e| format!("interpreter: {e}"))?
    } else {
        let t = Target::parse(target).map_err(|e| e.to_string())?;
        let compiled = session.compile(&t, "model", false).map_err(|e| format!("compile: {e}"))?;
        session.execute(&compiled, &b.inputs).map_err(|e| format!("execute: {e}"))?.0
    };
    compare(c, &b, &out[0], ref_diffs)
}

fn check_all(targets: &[&str], ops: &[&str]) {
    let cases = load_cases();
    assert!(cases.len() >= 40, "only {} fixture cases", cases.len());
    let mut failures = Vec::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut ref_diffs = 0;
    for c in cases.iter().filter(|c| ops.is_empty() || ops.contains(&c.op())) {
        for &t in targets {
            match run_case(c, t, &mut ref_diffs) {
                Ok(()) => *counts.entry(format!("{} on {t}", c.op())).or_default() += 1,
                Err(e) => failures.push(format!("{} ({}) on {t}: {e}", c.name(), c.op())),
            }
        }
    }
    for (k, n) in &counts {
        eprintln!("bit-exact: {k}: {n} cases");
    }
    eprintln!("FULLY_CONNECTED elements 1 LSB off LiteRT's float-rescaling reference kernel: {ref_diffs}");
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn interpreter_is_bit_exact_with_tflite_reference_kernels() {
    check_all(&["interp"], &[]);
}

#[test]
fn host_code_is_bit_exact_with_tflite_reference_kernels() {
    check_all(&["host"], &[]);
}

#[test]
fn cortex_m7_code_is_bit_exact_with_tflite_reference_kernels() {
    check_all(&["cortex-m7"], &[]);
}
