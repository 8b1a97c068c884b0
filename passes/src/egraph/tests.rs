//! Tests of the egraph pass: each rule group on small functions (and near misses that must stay
//! unchanged), a differential check against the reference interpreter, and determinism. The
//! `testsuite/filetests/passes/egraph_*.eir` files pin the printed output.

use super::*;
use crate::{PassManager, TargetInfo};
use edgec_ir::interp::run_function;
use edgec_ir::parser::parse_module;
use edgec_ir::printer::print_module;

fn parse(src: &str) -> Module {
    parse_module(src).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

/// Runs `egraph,dce,verify` and returns the result and the egraph report.
fn optimize(m: &Module) -> (Module, String) {
    let mut out = m.clone();
    let mut pass = EgraphPass::default();
    pass.run(&mut out).expect("egraph runs");
    let mut pm = PassManager::parse("dce,verify").unwrap();
    pm.verify_each = true;
    pm.run(&mut out).expect("verifies");
    (out, pass.last_report())
}

fn generic() -> crate::CostWeights {
    TargetInfo::generic().weights()
}

fn count(m: &Module, kind: OpKind) -> usize {
    let f = &m.functions[0];
    f.body_ops().iter().filter(|&&o| f.ops[o].kind == kind).count()
}

/// Deterministic pseudo-random f32 inputs in [-3, 3) (a 64-bit LCG).
fn inputs(f: &Function, seed: u64) -> Vec<Tensor> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    f.params()
        .iter()
        .map(|&p| {
            let shape = f.values[p].ty.static_shape().expect("static test inputs");
            let n: usize = shape.iter().product();
            let dtype = f.values[p].ty.scalar();
            let mut bytes = Vec::with_capacity(n * 8);
            for _ in 0..n {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                match dtype {
                    // Token ids: small, so that any vocabulary holds them.
                    ScalarType::I64 => bytes.extend_from_slice(&((u * 8.0) as i64).to_le_bytes()),
                    _ => bytes.extend_from_slice(&(u * 6.0 - 3.0).to_le_bytes()),
                }
            }
            Tensor::from_le_bytes(dtype, &shape, &bytes).unwrap()
        })
        .collect()
}

/// The interpreter gives the same results before and after, to a relative tolerance (fused ops
/// round differently from their decomposed forms).
fn assert_same_results(before: &Module, after: &Module) {
    for seed in 0..3 {
        let args = inputs(&before.functions[0], seed);
        let want = run_function(&before.functions[0], args.clone()).unwrap();
        let have = run_function(&after.functions[0], args).unwrap();
        assert_eq!(want.len(), have.len());
        for (w, h) in want.iter().zip(&have) {
            assert_eq!(w.shape(), h.shape());
            for (a, b) in w.to_f64_vec().iter().zip(h.to_f64_vec()) {
                assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }
}

const GELU_ERF: &str = r#"
func @f(%x: tensor<2x8xf32>) -> ("y": tensor<2x8xf32>) {
  %0 = builtin.constant {value = dense<[1.4142135381698608]> : tensor<f32>} : tensor<f32> loc("c_sqrt2")
  %1 = math.div %x, %0 : tensor<2x8xf32> loc("div")
  %2 = math.erf %1 : tensor<2x8xf32> loc("erf")
  %3 = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32> loc("c_one")
  %4 = math.add %2, %3 : tensor<2x8xf32> loc("add")
  %5 = math.mul %x, %4 : tensor<2x8xf32> loc("mul")
  %6 = builtin.constant {value = dense<[0.5]> : tensor<f32>} : tensor<f32> loc("c_half")
  %7 = math.mul %5, %6 : tensor<2x8xf32> loc("mul_half")
  func.return %7 loc(unknown)
}
"#;

#[test]
fn gelu_erf_form_is_recognized() {
    let m = parse(GELU_ERF);
    let (out, report) = optimize(&m);
    assert_eq!(count(&out, OpKind::Gelu), 1, "{}", print_module(&out));
    assert_eq!(out.functions[0].compute_op_count(), 1, "{}", print_module(&out));
    assert!(report.contains("math.gelu(none)") && report.contains("saturated"), "{report}");
    let text = print_module(&out);
    assert!(text.contains(r#"loc(fused["div", "erf", "add", "mul", "mul_half"])"#), "{text}");
    assert_same_results(&m, &out);
}

#[test]
fn gelu_with_a_wrong_constant_stays() {
    // 1.5 instead of sqrt(2): not a GELU.
    let m = parse(&GELU_ERF.replace("1.4142135381698608", "1.5"));
    let (out, _) = optimize(&m);
    assert_eq!(print_module(&out), print_module(&m));
}

const GELU_TANH: &str = r#"
func @f(%x: tensor<2x8xf32>) -> ("y": tensor<2x8xf32>) {
  %0 = builtin.constant {value = dense<[0.5]> : tensor<f32>} : tensor<f32> loc("c_half")
  %1 = math.mul %x, %0 : tensor<2x8xf32> loc("Mul")
  %2 = builtin.constant {value = dense<[3.0]> : tensor<f32>} : tensor<f32> loc("c_three")
  %3 = math.pow %x, %2 : tensor<2x8xf32> loc("Pow")
  %4 = builtin.constant {value = dense<[0.044715]> : tensor<f32>} : tensor<f32> loc("c_k")
  %5 = math.mul %3, %4 : tensor<2x8xf32> loc("Mul_1")
  %6 = math.add %x, %5 : tensor<2x8xf32> loc("Add")
  %7 = builtin.constant {value = dense<[0.7978846]> : tensor<f32>} : tensor<f32> loc("c_s")
  %8 = math.mul %6, %7 : tensor<2x8xf32> loc("Mul_2")
  %9 = math.tanh %8 : tensor<2x8xf32> loc("Tanh")
  %10 = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32> loc("c_one")
  %11 = math.add %9, %10 : tensor<2x8xf32> loc("Add_1")
  %12 = math.mul %1, %11 : tensor<2x8xf32> loc("Mul_3")
  func.return %12 loc(unknown)
}
"#;

#[test]
fn gelu_tanh_form_is_recognized() {
    let m = parse(GELU_TANH);
    let (out, report) = optimize(&m);
    assert_eq!(count(&out, OpKind::Gelu), 1, "{}", print_module(&out));
    assert_eq!(out.functions[0].compute_op_count(), 1);
    assert!(report.contains("math.gelu(tanh)"), "{report}");
    assert_same_results(&m, &out);
    // With the cube written as a product.
    let m2 = parse(&GELU_TANH.replace(
        "%3 = math.pow %x, %2",
        "%20 = math.mul %x, %x : tensor<2x8xf32> loc(\"sq\")\n  %3 = math.mul %20, %x",
    ));
    let (out2, _) = optimize(&m2);
    assert_eq!(count(&out2, OpKind::Gelu), 1, "{}", print_module(&out2));
}

const SILU: &str = r#"
func @f(%x: tensor<4x8xf32>) -> ("y": tensor<4x8xf32>, "s": tensor<4x8xf32>) {
  %0 = math.sigmoid %x : tensor<4x8xf32> loc("Sigmoid")
  %1 = math.mul %0, %x : tensor<4x8xf32> loc("Mul")
  %2 = math.sigmoid %x : tensor<4x8xf32> loc("Sigmoid_1")
  %3 = math.exp %x : tensor<4x8xf32> loc("Exp")
  %4 = math.mul %3, %2 : tensor<4x8xf32> loc("Mul_1")
  func.return %1, %4 loc(unknown)
}
"#;

#[test]
fn silu_becomes_swish_and_near_miss_stays() {
    let m = parse(SILU);
    let (out, _) = optimize(&m);
    assert_eq!(count(&out, OpKind::Swish), 1, "{}", print_module(&out));
    // exp(x) * sigmoid(x) is not a swish: its ops stay.
    assert_eq!(count(&out, OpKind::Exp), 1);
    assert_eq!(count(&out, OpKind::Sigmoid), 1);
    assert_same_results(&m, &out);
}

const LAYER_NORM: &str = r#"
func @f(%x: tensor<2x4x8xf32>, %g: tensor<8xf32>, %b: tensor<8xf32>) -> ("y": tensor<2x4x8xf32>) {
  %0 = builtin.constant {value = dense<[-1]> : tensor<1xi64>} : tensor<1xi64> loc("axes")
  %1 = nn.reduce_mean %x, %0 {keepdims = 1} : tensor<2x4x1xf32> loc("ReduceMean")
  %2 = math.sub %x, %1 : tensor<2x4x8xf32> loc("Sub")
  %3 = builtin.constant {value = dense<[2.0]> : tensor<f32>} : tensor<f32> loc("two")
  %4 = math.pow %2, %3 : tensor<2x4x8xf32> loc("Pow")
  %5 = nn.reduce_mean %4, %0 {keepdims = 1} : tensor<2x4x1xf32> loc("ReduceMean_1")
  %6 = builtin.constant {value = dense<[1e-5]> : tensor<f32>} : tensor<f32> loc("eps")
  %7 = math.add %5, %6 : tensor<2x4x1xf32> loc("Add")
  %8 = math.sqrt %7 : tensor<2x4x1xf32> loc("Sqrt")
  %9 = math.div %2, %8 : tensor<2x4x8xf32> loc("Div")
  %10 = math.mul %9, %g : tensor<2x4x8xf32> loc("Mul")
  %11 = math.add %10, %b : tensor<2x4x8xf32> loc("Add_1")
  func.return %11 loc(unknown)
}
"#;

#[test]
fn layer_norm_is_recognized_with_scale_and_bias() {
    let m = parse(LAYER_NORM);
    let (out, report) = optimize(&m);
    let text = print_module(&out);
    assert_eq!(count(&out, OpKind::LayerNorm), 1, "{text}");
    assert_eq!(out.functions[0].compute_op_count(), 1, "{text}");
    assert!(text.contains("nn.layer_norm %x, %g, %b"), "{text}");
    assert!(report.contains("nn.layer_norm"), "{report}");
    assert_same_results(&m, &out);
}

#[test]
fn layer_norm_without_affine_and_with_products() {
    // x*x-style square, reciprocal multiply, no gamma/beta.
    let src = LAYER_NORM
        .replace("%4 = math.pow %2, %3", "%4 = math.mul %2, %2")
        .replace(
            "%9 = math.div %2, %8",
            "%20 = math.reciprocal %8 : tensor<2x4x1xf32> loc(\"Rcp\")\n  %9 = math.mul %2, %20",
        )
        .replace("func.return %11", "func.return %9");
    let m = parse(&src);
    let (out, _) = optimize(&m);
    let text = print_module(&out);
    assert_eq!(count(&out, OpKind::LayerNorm), 1, "{text}");
    assert_same_results(&m, &out);
}

#[test]
fn layer_norm_near_misses_stay() {
    // Mean over the wrong axis.
    let wrong_axis = LAYER_NORM
        .replace("dense<[-1]> : tensor<1xi64>", "dense<[1]> : tensor<1xi64>")
        .replace("tensor<2x4x1xf32>", "tensor<2x1x8xf32>");
    let m = parse(&wrong_axis);
    let (out, _) = optimize(&m);
    assert_eq!(count(&out, OpKind::LayerNorm), 0, "{}", print_module(&out));
    assert_eq!(print_module(&out), print_module(&m));
    // Squared with exponent 3.
    let m = parse(&LAYER_NORM.replace("dense<[2.0]>", "dense<[3.0]>"));
    let (out, _) = optimize(&m);
    assert_eq!(print_module(&out), print_module(&m));
    // A gamma that varies along another axis is not a row parameter: the normalization itself
    // is still recognized, the multiply stays.
    let m = parse(&LAYER_NORM.replace("%g: tensor<8xf32>", "%g: tensor<4x1xf32>"));
    let (out, _) = optimize(&m);
    assert_eq!(count(&out, OpKind::LayerNorm), 1);
    assert_eq!(count(&out, OpKind::Mul), 1, "{}", print_module(&out));
    assert_same_results(&m, &out);
}

/// The llama export: cast, pow, reduce_mean, add, sqrt, 1/x as a div, mul, cast, mul by weight.
const RMS_NORM: &str = r#"
func @f(%x: tensor<1x4x8xf32>, %w: tensor<8xf32>) -> ("y": tensor<1x4x8xf32>, "r": tensor<1x4x8xf32>) {
  %0 = math.cast %x {to = f32} : tensor<1x4x8xf32> loc("Cast")
  %1 = builtin.constant {value = dense<[2.0]> : tensor<f32>} : tensor<f32> loc("two")
  %2 = math.pow %0, %1 : tensor<1x4x8xf32> loc("Pow")
  %3 = builtin.constant {value = dense<[-1]> : tensor<1xi64>} : tensor<1xi64> loc("axes")
  %4 = nn.reduce_mean %2, %3 {keepdims = 1} : tensor<1x4x1xf32> loc("ReduceMean")
  %5 = builtin.constant {value = dense<[1e-6]> : tensor<f32>} : tensor<f32> loc("eps")
  %6 = math.add %4, %5 : tensor<1x4x1xf32> loc("Add")
  %7 = math.sqrt %6 : tensor<1x4x1xf32> loc("Sqrt")
  %8 = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32> loc("one")
  %9 = math.div %8, %7 : tensor<1x4x1xf32> loc("Div")
  %10 = math.mul %0, %9 : tensor<1x4x8xf32> loc("Mul")
  %11 = math.cast %10 {to = f32} : tensor<1x4x8xf32> loc("Cast_1")
  %12 = math.mul %w, %11 : tensor<1x4x8xf32> loc("Mul_1")
  %13 = math.add %0, %12 : tensor<1x4x8xf32> loc("Residual")
  func.return %12, %13 loc(unknown)
}
"#;

#[test]
fn rms_norm_is_recognized_through_identity_casts() {
    let m = parse(RMS_NORM);
    let (out, report) = optimize(&m);
    let text = print_module(&out);
    assert_eq!(count(&out, OpKind::RmsNorm), 1, "{text}");
    assert!(text.contains("nn.rms_norm %x, %w {axis = -1, epsilon = 9.999999974752427e-7}"), "{text}");
    assert_eq!(count(&out, OpKind::Cast), 0, "{text}");
    assert_eq!(out.functions[0].compute_op_count(), 2, "{text}");
    assert!(report.contains("nn.rms_norm"), "{report}");
    assert_same_results(&m, &out);
}

#[test]
fn rms_norm_near_miss_stays() {
    // Mean without keepdims does not broadcast back over the row: not an RMSNorm.
    let src = RMS_NORM
        .replace("{keepdims = 1} : tensor<1x4x1xf32>", "{keepdims = 0} : tensor<1x4xf32>")
        .replace("tensor<1x4x1xf32>", "tensor<1x4xf32>");
    let m = parse(
        &src.replace("%x: tensor<1x4x8xf32>", "%x: tensor<1x4x4xf32>")
            .replace("1x4x8", "1x4x4")
            .replace("%w: tensor<8xf32>", "%w: tensor<4xf32>"),
    );
    let (out, _) = optimize(&m);
    assert_eq!(count(&out, OpKind::RmsNorm), 0, "{}", print_module(&out));
}

#[test]
fn algebra_keeps_untouched_graphs_unchanged() {
    // Commutable ops, a division by a constant, a multiplication by one: nothing gets cheaper
    // except dropping `* 1`, so only that changes.
    let src = r#"
func @f(%a: tensor<4xf32>, %b: tensor<4xf32>) -> ("y": tensor<4xf32>, "z": tensor<4xf32>) {
  %0 = math.add %a, %b : tensor<4xf32> loc("add")
  %1 = builtin.constant {value = dense<[3.0]> : tensor<f32>} : tensor<f32> loc("three")
  %2 = math.div %0, %1 : tensor<4xf32> loc("div")
  %3 = math.mul %b, %2 : tensor<4xf32> loc("mul")
  func.return %2, %3 loc(unknown)
}
"#;
    let m = parse(src);
    let (out, _) = optimize(&m);
    assert_eq!(print_module(&out), print_module(&m));
    let with_one = src.replace(
        "%3 = math.mul %b, %2",
        "%4 = builtin.constant {value = dense<[1.0]> : tensor<f32>} : tensor<f32> loc(\"one\")\n  %5 = math.mul %b, %4 : tensor<4xf32> loc(\"mul1\")\n  %3 = math.mul %5, %2",
    );
    let m = parse(&with_one);
    let (out, _) = optimize(&m);
    assert_eq!(out.functions[0].compute_op_count(), 3, "{}", print_module(&out));
    assert_same_results(&m, &out);
}

#[test]
fn mul_by_broadcasting_one_is_kept() {
    // x * ones(1x1) changes the rank: not the identity.
    let src = r#"
func @f(%a: tensor<4xf32>) -> ("y": tensor<1x4xf32>) {
  %0 = builtin.constant {value = dense<[1.0]> : tensor<1x1xf32>} : tensor<1x1xf32> loc("one")
  %1 = math.mul %a, %0 : tensor<1x4xf32> loc("mul")
  func.return %1 loc(unknown)
}
"#;
    let m = parse(src);
    let (out, _) = optimize(&m);
    assert_eq!(print_module(&out), print_module(&m));
}

#[test]
fn output_is_deterministic() {
    for src in [GELU_ERF, GELU_TANH, SILU, LAYER_NORM, RMS_NORM, ATTENTION, ATTENTION_SPLIT_SCALE] {
        let m = parse(src);
        let a = print_module(&optimize(&m).0);
        let b = print_module(&optimize(&m.clone()).0);
        assert_eq!(a, b);
    }
}

#[test]
fn cost_model_prefers_one_fused_kernel() {
    use super::cost::node_cost;
    let m = parse(GELU_ERF);
    let f = &m.functions[0];
    let model = Model::build(f);
    let eg = &model.egraph;
    let decomposed: f64 = model.originals.iter().map(|o| node_cost(eg, &o.node, &generic())).sum();
    let x = eg.lookup(Kernel::Opaque(Leaf(f.params()[0].index() as u32))).expect("x is a leaf");
    let fused = node_cost(eg, &Kernel::Gelu(x), &generic());
    assert!(fused * 4.0 < decomposed, "{fused} vs {decomposed}");
}

/// The GPT-2 export: keys transposed from `[B, S, H, D]` straight to `[B, H, D, S]`, the scale
/// after the matmul, an additive causal-style mask.
const ATTENTION: &str = r#"
func @f(%q: tensor<1x2x4x8xf32>, %kx: tensor<1x6x2x8xf32>, %v: tensor<1x2x6x4xf32>, %m: tensor<1x1x4x6xf32>) -> ("y": tensor<1x2x4x4xf32>) {
  %0 = shape.transpose %kx {perm = [0, 2, 3, 1]} : tensor<1x2x8x6xf32> loc("kT")
  %1 = nn.matmul %q, %0 : tensor<1x2x4x6xf32> loc("qk")
  %2 = builtin.constant {value = dense<[0.3535533845424652]> : tensor<f32>} : tensor<f32> loc("scale")
  %3 = math.mul %1, %2 : tensor<1x2x4x6xf32> loc("mul")
  %4 = math.add %3, %m : tensor<1x2x4x6xf32> loc("add")
  %5 = nn.softmax %4 {axis = -1} : tensor<1x2x4x6xf32> loc("softmax")
  %6 = nn.matmul %5, %v : tensor<1x2x4x4xf32> loc("pv")
  func.return %6 loc(unknown)
}
"#;

/// A plain `k^T` and a division by sqrt(d), no mask.
const ATTENTION_DIV: &str = r#"
func @f(%q: tensor<2x2x4x8xf32>, %k: tensor<2x2x6x8xf32>, %v: tensor<2x2x6x4xf32>) -> ("y": tensor<2x2x4x4xf32>) {
  %0 = shape.transpose %k {perm = [0, 1, 3, 2]} : tensor<2x2x8x6xf32> loc("kT")
  %1 = nn.matmul %q, %0 : tensor<2x2x4x6xf32> loc("qk")
  %2 = builtin.constant {value = dense<[2.8284270763397217]> : tensor<f32>} : tensor<f32> loc("c")
  %3 = math.div %1, %2 : tensor<2x2x4x6xf32> loc("div")
  %4 = nn.softmax %3 {axis = -1} : tensor<2x2x4x6xf32> loc("softmax")
  %5 = nn.matmul %4, %v : tensor<2x2x4x4xf32> loc("pv")
  func.return %5 loc(unknown)
}
"#;

/// The UNet export: q and the transposed k each scaled by sqrt(s) before the matmul.
const ATTENTION_SPLIT_SCALE: &str = r#"
func @f(%qx: tensor<1x6x2x8xf32>, %kx: tensor<1x6x2x8xf32>, %v: tensor<1x2x6x8xf32>) -> ("y": tensor<1x2x6x8xf32>) {
  %0 = shape.transpose %qx {perm = [0, 2, 1, 3]} : tensor<1x2x6x8xf32> loc("qT")
  %1 = shape.transpose %kx {perm = [0, 2, 3, 1]} : tensor<1x2x8x6xf32> loc("kT")
  %2 = builtin.constant {value = dense<[0.59460354]> : tensor<1xf32>} : tensor<1xf32> loc("sqrt_scale")
  %3 = math.mul %0, %2 : tensor<1x2x6x8xf32> loc("mul_q")
  %4 = math.mul %1, %2 : tensor<1x2x8x6xf32> loc("mul_k")
  %5 = nn.matmul %3, %4 : tensor<1x2x6x6xf32> loc("qk")
  %6 = nn.softmax %5 {axis = -1} : tensor<1x2x6x6xf32> loc("softmax")
  %7 = nn.matmul %6, %v : tensor<1x2x6x8xf32> loc("pv")
  func.return %7 loc(unknown)
}
"#;

const ATTENTION_SCALE_BEFORE_TRANSPOSE: &str = r#"
func @f(%qx: tensor<1x6x2x8xf32>, %kx: tensor<1x6x2x8xf32>, %v: tensor<1x2x6x8xf32>) -> ("y": tensor<1x2x6x8xf32>) {
  %0 = shape.transpose %qx {perm = [0, 2, 1, 3]} : tensor<1x2x6x8xf32> loc("qT")
  %1 = builtin.constant {value = dense<[0.59460354]> : tensor<1xf32>} : tensor<1xf32> loc("sqrt_scale")
  %2 = math.mul %kx, %1 : tensor<1x6x2x8xf32> loc("mul_k")
  %3 = shape.transpose %2 {perm = [0, 2, 3, 1]} : tensor<1x2x8x6xf32> loc("kT")
  %4 = math.mul %0, %1 : tensor<1x2x6x8xf32> loc("mul_q")
  %5 = nn.matmul %4, %3 : tensor<1x2x6x6xf32> loc("qk")
  %6 = nn.softmax %5 {axis = -1} : tensor<1x2x6x6xf32> loc("softmax")
  %7 = nn.matmul %6, %v : tensor<1x2x6x8xf32> loc("pv")
  func.return %7 loc(unknown)
}
"#;

fn attention_scale(m: &Module) -> Option<f64> {
    let f = &m.functions[0];
    f.body_ops()
        .iter()
        .find(|&&o| f.ops[o].kind == OpKind::Attention)
        .and_then(|&o| f.ops[o].attrs.float("scale"))
}

#[test]
fn attention_with_mask_and_head_transpose_is_recognized() {
    let m = parse(ATTENTION);
    let (out, report) = optimize(&m);
    let text = print_module(&out);
    assert_eq!(count(&out, OpKind::Attention), 1, "{text}");
    assert_eq!(count(&out, OpKind::Softmax), 0, "{text}");
    assert_eq!(count(&out, OpKind::MatMul), 0, "{text}");
    // K is the keys with only the heads moved in front of the sequence.
    assert!(text.contains("shape.transpose %kx {perm = [0, 2, 1, 3]} : tensor<1x2x6x8xf32>"), "{text}");
    assert!(text.contains("nn.attention %q, %0, %v, %m {scale = 0.3535533845424652}"), "{text}");
    assert!(report.contains("nn.attention"), "{report}");
    assert_same_results(&m, &out);
}

#[test]
fn attention_with_division_is_recognized() {
    let m = parse(ATTENTION_DIV);
    let (out, _) = optimize(&m);
    let text = print_module(&out);
    assert_eq!(count(&out, OpKind::Attention), 1, "{text}");
    // A plain k^T leaves k itself as the operand.
    assert!(text.contains("nn.attention %q, %k, %v {"), "{text}");
    assert_eq!(out.functions[0].compute_op_count(), 1, "{text}");
    let s = attention_scale(&out).unwrap();
    assert!((s - 1.0 / 8f64.sqrt()).abs() < 1e-7, "{s}");
    assert_same_results(&m, &out);
}

#[test]
fn attention_with_split_scale_is_recognized() {
    let m = parse(ATTENTION_SPLIT_SCALE);
    let (out, _) = optimize(&m);
    let text = print_module(&out);
    assert_eq!(count(&out, OpKind::Attention), 1, "{text}");
    assert_eq!(count(&out, OpKind::Mul), 0, "{text}");
    let s = attention_scale(&out).unwrap();
    assert!((s - 0.59460354f32 as f64 * 0.59460354f32 as f64).abs() < 1e-7, "{s}");
    assert_same_results(&m, &out);
    // The same with k scaled before its transpose.
    let m = parse(ATTENTION_SCALE_BEFORE_TRANSPOSE);
    let (out, _) = optimize(&m);
    assert_eq!(count(&out, OpKind::Attention), 1, "{}", print_module(&out));
    assert_same_results(&m, &out);
}

#[test]
fn unscaled_attention_gets_scale_one() {
    let src = ATTENTION_DIV
        .replace("%3 = math.div %1, %2 : tensor<2x2x4x6xf32> loc(\"div\")\n", "")
        .replace("nn.softmax %3", "nn.softmax %1");
    let m = parse(&src);
    let (out, _) = optimize(&m);
    assert_eq!(count(&out, OpKind::Attention), 1, "{}", print_module(&out));
    assert_eq!(attention_scale(&out), Some(1.0));
    assert_same_results(&m, &out);
}

#[test]
fn attention_near_misses_stay() {
    let cases = [
        // Softmax over the query axis.
        ("softmax axis", ATTENTION.replace("{axis = -1}", "{axis = -2}")),
        // Keys multiplied untransposed (no transpose to read k from) ...
        (
            "no transpose",
            ATTENTION
                .replace("%kx: tensor<1x6x2x8xf32>", "%kx: tensor<1x2x8x6xf32>")
                .replace("%0 = shape.transpose %kx {perm = [0, 2, 3, 1]}", "%0 = math.neg %kx"),
        ),
        // ... or the transpose on the queries' side.
        (
            "transposed queries",
            ATTENTION
                .replace("%q: tensor<1x2x4x8xf32>", "%q: tensor<1x2x8x4xf32>")
                .replace("%kx: tensor<1x6x2x8xf32>", "%kx: tensor<1x2x8x6xf32>")
                .replace("%0 = shape.transpose %kx {perm = [0, 2, 3, 1]} : tensor<1x2x8x6xf32>", "%0 = math.neg %kx : tensor<1x2x8x6xf32>")
                .replace("%1 = nn.matmul %q, %0", "%10 = shape.transpose %q {perm = [0, 1, 3, 2]} : tensor<1x2x4x8xf32> loc(\"qT\")\n  %1 = nn.matmul %10, %0"),
        ),
        // A mask broadcast along the keys: the op would read it as padding.
        (
            "mask along keys",
            ATTENTION.replace("%m: tensor<1x1x4x6xf32>", "%m: tensor<1x1x4x1xf32>"),
        ),
        // A negative scale (the op scales Q and K by its square root).
        ("negative scale", ATTENTION.replace("0.3535533845424652", "-0.3535533845424652")),
    ];
    for (what, src) in cases {
        let m = parse(&src);
        let (out, _) = optimize(&m);
        assert_eq!(count(&out, OpKind::Attention), 0, "{what}: {}", print_module(&out));
        assert_eq!(count(&out, OpKind::Softmax), 1, "{what}: {}", print_module(&out));
        assert_same_results(&m, &out);
    }
}

#[test]
fn cost_model_prefers_attention() {
    let m = parse(ATTENTION);
    let f = &m.functions[0];
    let model = Model::build(f);
    let eg = &model.egraph;
    let decomposed: f64 =
        model.originals.iter().map(|o| super::cost::node_cost(eg, &o.node, &generic())).sum();
    let mut g = KGraph::new(TypeInfo::default());
    for i in 0..4 {
        g.analysis.leaf_types.insert(f.params()[i].index() as u32, f.values[f.params()[i]].ty.clone());
    }
    let ids: Vec<Id> = (0..4).map(|i| g.add(Kernel::Opaque(Leaf(f.params()[i].index() as u32)))).collect();
    let s = g.add(Kernel::Num(Scalar::new(0.35, ScalarType::F32, 0)));
    let kt = g.add(Kernel::Transpose(Perm(vec![0, 2, 1, 3]), [ids[1]]));
    let a = Kernel::AttentionMask([ids[0], kt, ids[2], ids[3], s]);
    // The new op plus the key transpose it needs, against the six kernels it replaces.
    let k_node = g[kt].nodes[0].clone();
    let fused = super::cost::node_cost(&g, &a, &generic()) + super::cost::node_cost(&g, &k_node, &generic());
    assert!(fused < decomposed, "{fused} vs {decomposed}");
}

/// Attention with a short sequence and wide heads (S = 4, D = 64): the scores are only 4×4 per
/// head, while `nn.attention` copies scaled Q, K and V (3 × 2 KiB) and scales Q and K.
const SHORT_WIDE_ATTENTION: &str = r#"
func @f(%q: tensor<1x2x4x64xf32>, %k: tensor<1x2x4x64xf32>, %v: tensor<1x2x4x64xf32>) -> ("y": tensor<1x2x4x64xf32>) {
  %0 = shape.transpose %k {perm = [0, 1, 3, 2]} : tensor<1x2x64x4xf32> loc("kT")
  %1 = nn.matmul %q, %0 : tensor<1x2x4x4xf32> loc("qk")
  %2 = builtin.constant {value = dense<[0.125]> : tensor<f32>} : tensor<f32> loc("scale")
  %3 = math.mul %1, %2 : tensor<1x2x4x4xf32> loc("mul")
  %4 = nn.softmax %3 {axis = -1} : tensor<1x2x4x4xf32> loc("softmax")
  %5 = nn.matmul %4, %v : tensor<1x2x4x64xf32> loc("pv")
  func.return %5 loc(unknown)
}
"#;

fn optimize_for(m: &Module, target: &TargetInfo) -> Module {
    let mut out = m.clone();
    let mut pm = PassManager::parse_for("egraph,dce,verify", target).unwrap();
    pm.verify_each = true;
    pm.run(&mut out).expect("runs");
    out
}

#[test]
fn attention_choice_depends_on_the_target() {
    let m = parse(SHORT_WIDE_ATTENTION);
    // The host: five launches and the scores' round trips cost more than the copies.
    let host = optimize_for(&m, &TargetInfo::application_core("host", 64, true));
    assert_eq!(count(&host, OpKind::Attention), 1, "{}", print_module(&host));
    assert_eq!(count(&optimize_for(&m, &TargetInfo::generic()), OpKind::Attention), 1);
    // The microcontroller: launches are cheap and flops dear, so copying and scaling Q and K
    // (2 × 512 multiplies, 6 KiB) costs more than the 32 scores it saves writing.
    let m7 = optimize_for(&m, &TargetInfo::microcontroller("cortex-m7", true));
    assert_eq!(count(&m7, OpKind::Attention), 0, "{}", print_module(&m7));
    assert_eq!(print_module(&m7), print_module(&m));
    assert_same_results(&m, &host);
    // With a longer sequence the scores dominate and the microcontroller takes it too.
    let long = parse(
        &SHORT_WIDE_ATTENTION
            .replace("1x2x4x64", "1x2x64x64")
            .replace("1x2x64x4", "1x2x64x64")
            .replace("1x2x4x4", "1x2x64x64"),
    );
    let m7_long = optimize_for(&long, &TargetInfo::microcontroller("cortex-m7", true));
    assert_eq!(count(&m7_long, OpKind::Attention), 1, "{}", print_module(&m7_long));
}

/// Runs `passes` and verifies.
fn run_passes(m: &Module, passes: &str) -> Module {
    let mut out = m.clone();
    let mut pm = PassManager::parse(passes).unwrap();
    pm.verify_each = true;
    pm.run(&mut out).unwrap_or_else(|e| panic!("{passes}: {e}"));
    out
}

fn fused_patterns(m: &Module) -> Vec<String> {
    let f = &m.functions[0];
    f.body_ops()
        .iter()
        .filter(|&&o| f.ops[o].kind == OpKind::FusedKernel)
        .map(|&o| f.ops[o].attrs.str("pattern").unwrap_or("").to_string())
        .collect()
}

const EPILOGUE: &str = r#"
func @f(%x: tensor<2x4xf32>, %w: tensor<4x4xf32>, %b: tensor<4xf32>, %r: tensor<2x4xf32>) -> ("y": tensor<2x4xf32>) {
  %0 = nn.matmul %x, %w : tensor<2x4xf32> loc("mm")
  %1 = math.add %0, %b : tensor<2x4xf32> loc("bias")
  %2 = math.relu %1 : tensor<2x4xf32> loc("relu")
  %3 = math.add %2, %r : tensor<2x4xf32> loc("residual")
  func.return %3 loc(unknown)
}
"#;

#[test]
fn epilogue_joins_the_anchor() {
    let m = parse(EPILOGUE);
    let out = run_passes(&m, "egraph-kernels,verify");
    assert_eq!(fused_patterns(&out), ["matmul+add+relu+add"], "{}", print_module(&out));
    assert_eq!(count(&out, OpKind::MatMul), 0);
    assert_same_results(&m, &out);
    assert_eq!(print_module(&out), print_module(&run_passes(&m, "fuse")));
}

#[test]
fn epilogue_near_misses_stay() {
    // The matmul's output is also returned: it escapes, so only the chain after it fuses.
    let escapes = EPILOGUE
        .replace(r#"-> ("y": tensor<2x4xf32>)"#, r#"-> ("y": tensor<2x4xf32>, "mm": tensor<2x4xf32>)"#)
        .replace("func.return %3", "func.return %3, %0");
    let out = run_passes(&parse(&escapes), "egraph-kernels");
    assert_eq!(fused_patterns(&out), ["add+relu+add"], "{}", print_module(&out));
    assert_eq!(count(&out, OpKind::MatMul), 1);
    // A bias that widens the result (a [2,1] matmul output broadcast by a [2,4] add): the
    // matmul would be computed once per broadcast element, so it stays out.
    let widening = r#"
func @f(%x: tensor<2x4xf32>, %w: tensor<4x1xf32>, %b: tensor<2x4xf32>) -> ("y": tensor<2x4xf32>) {
  %0 = nn.matmul %x, %w : tensor<2x1xf32> loc("mm")
  %1 = math.add %0, %b : tensor<2x4xf32> loc("bias")
  %2 = math.relu %1 : tensor<2x4xf32> loc("relu")
  func.return %2 loc(unknown)
}
"#;
    let out = run_passes(&parse(widening), "egraph-kernels");
    assert_eq!(fused_patterns(&out), ["add+relu"], "{}", print_module(&out));
    // Half precision: nothing fuses.
    let half = EPILOGUE.replace("f32", "f16");
    let m = parse(&half);
    assert_eq!(print_module(&run_passes(&m, "egraph-kernels")), print_module(&m));
}

const CHAIN: &str = r#"
func @f(%x: tensor<4x8xf32>, %y: tensor<4x8xf32>) -> ("z": tensor<4x8xf32>, "t": tensor<4x8xf32>) {
  %0 = math.add %x, %y : tensor<4x8xf32> loc("add")
  %1 = math.sigmoid %0 : tensor<4x8xf32> loc("sig")
  %2 = math.mul %0, %1 : tensor<4x8xf32> loc("gate")
  %3 = builtin.constant {value = dense<[2.0]> : tensor<f32>} : tensor<f32> loc("two")
  %4 = math.mul %2, %3 : tensor<4x8xf32> loc("double")
  %5 = math.tanh %x : tensor<4x8xf32> loc("tanh")
  %6 = math.exp %5 : tensor<4x8xf32> loc("exp")
  func.return %4, %5 loc(unknown)
}
"#;

#[test]
fn elementwise_chain_is_one_loop_nest() {
    let m = parse(CHAIN);
    let out = run_passes(&m, "egraph-kernels,verify");
    // `%0` has two uses, both inside: it joins with them. `tanh` escapes (it is returned), so
    // it stays, and `exp` alone (unused) is left for dce.
    assert_eq!(fused_patterns(&out), ["add+sigmoid+mul+mul"], "{}", print_module(&out));
    assert_eq!(count(&out, OpKind::Tanh), 1);
    assert_same_results(&m, &out);
    assert_eq!(
        print_module(&run_passes(&m, "egraph-kernels,dce")),
        print_module(&run_passes(&m, "fuse,dce"))
    );
    let report = {
        let mut pass = EgraphPass::kernels_for_target(&TargetInfo::generic());
        pass.run(&mut m.clone()).unwrap();
        pass.last_report()
    };
    assert!(report.starts_with("egraph-kernels @f:") && report.contains("stop: saturated"), "{report}");
    assert!(report.contains("1x fused.kernel"), "{report}");
}

fn kernels(m: &Module) -> usize {
    let f = &m.functions[0];
    f.body_ops().iter().filter(|&&o| !matches!(f.ops[o].kind, OpKind::Constant | OpKind::Return)).count()
}

#[test]
fn kernel_formation_matches_fuse_on_its_filetests() {
    for (name, src) in [
        ("fuse_epilogue", include_str!("../../../testsuite/filetests/passes/fuse_epilogue.eir")),
        ("fuse_boundaries", include_str!("../../../testsuite/filetests/passes/fuse_boundaries.eir")),
        ("fuse_anchor_order", include_str!("../../../testsuite/filetests/passes/fuse_anchor_order.eir")),
    ] {
        let input = src.split("// ---- expected ----").next().unwrap();
        let m = parse(input);
        let egg = print_module(&run_passes(&m, "egraph-kernels,dce"));
        let greedy = print_module(&run_passes(&m, "fuse,dce"));
        assert_eq!(egg, greedy, "{name}");
        // Deterministic.
        assert_eq!(egg, print_module(&run_passes(&m, "egraph-kernels,dce")), "{name}");
    }
}

#[test]
fn kernel_formation_does_not_delay_an_anchor() {
    // `fuse` attaches neither conv to the residual add (either would make it wait for the
    // other conv) and fuses relu+add; the e-graph finds the other three-kernel form, conv1
    // with its relu (which waits for nothing), and also leaves the shortcut alone.
    let src = include_str!("../../../testsuite/filetests/passes/fuse_no_delay.eir");
    let m = parse(src.split("// ---- expected ----").next().unwrap());
    let egg = run_passes(&m, "egraph-kernels,dce");
    assert_eq!(kernels(&egg), kernels(&run_passes(&m, "fuse,dce")));
    assert_eq!(fused_patterns(&egg), ["conv+relu"], "{}", print_module(&egg));
    assert_same_results(&m, &egg);
}
