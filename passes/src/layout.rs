//! `choose-layout`: stores each constant f32 GEMM weight in the layout the target's GEMM
//! micro-kernel reads, and says so in the IR.
//!
//! The backend's f32 GEMM reads B as panels of `nr` columns (`[ceil(N/nr), K, nr]`, zero past
//! column N; see `docs/gemm.md`), with `nr` from the target's vector registers and the product's
//! N (`TargetInfo::gemm_panel_width`). Without this pass the backend repacks every constant B
//! into that layout while lowering. With it, the weight becomes a constant in panel layout read
//! through `layout.from_panels`, which means the plain `[K, N]` matrix: the interpreter and every
//! pass see the same value, and the backend binds the panels to the GEMM as they are.
//!
//! Rewritten: the B operand of `nn.matmul` (2-D `[K, N]` constant, f32 operands and result) and
//! of `nn.gemm` (f32; a `transB` weight is stored transposed, so `transB` becomes 0), at the top
//! level or as the anchor of a `fused.kernel` when the region argument is used by the anchor
//! alone. Nothing is done without a panel width (the generic target: no backend to serve), for
//! weights the product broadcasts or shares with other operands, or for other element types.
//! Run it after the passes that look at weights (`fold-constants` would fold the layout op
//! back into a plain constant, quantization would not see a constant weight).

use crate::pass::{Pass, PassError};
use crate::target::TargetInfo;
use edgec_ir::module::ValueDef;
use edgec_ir::{
    Attr, Attrs, ConstTensor, Function, Module, Op, OpKind, ScalarType, Tensor, TensorType, Value,
};
use std::collections::HashMap;

pub struct ChooseLayout {
    pub target: TargetInfo,
}

impl Pass for ChooseLayout {
    fn name(&self) -> &'static str {
        "choose-layout"
    }
    fn run(&mut self, module: &mut Module) -> Result<(), PassError> {
        for f in &mut module.functions {
            choose_layout(f, &self.target);
        }
        Ok(())
    }
}

/// A GEMM in `f`'s body whose B operand may be stored as panels.
struct Site {
    /// The body op whose operand is replaced (the product itself or its `fused.kernel`).
    op: Op,
    /// Which of its operands is the weight.
    operand: usize,
    /// The product (the body op, or the anchor inside the kernel's region).
    product: Op,
}

/// The constant tensor defined by `v`, if `v` is a constant.
fn constant(f: &Function, v: Value) -> Option<Tensor> {
    match f.values[v].def {
        ValueDef::Result { op, .. } if f.ops[op].kind == OpKind::Constant => {
            f.ops[op].attrs.tensor("value")?.to_tensor().ok()
        }
        _ => None,
    }
}

/// Whether `product` multiplies f32 by a 2-D B whose panels the backend can read as they are:
/// matmul with a `[K, N]` B, or gemm (either `transB`).
fn takes_panels(f: &Function, product: Op) -> bool {
    let d = &f.ops[product];
    let f32 = |v: Value| f.values[v].ty.elem.as_scalar() == Some(ScalarType::F32);
    let plain = d.results.len() == 1 && d.operands.len() >= 2 && f32(d.results[0]) && f32(d.operands[0]);
    let b = d.operands.get(1).map(|&b| &f.values[b].ty);
    match d.kind {
        OpKind::MatMul => plain && b.is_some_and(|t| t.rank() == 2 && f32(d.operands[1])),
        OpKind::Gemm => {
            plain
                && b.is_some_and(|t| t.rank() == 2 && f32(d.operands[1]))
                && d.attrs.int("transA").unwrap_or(0) == 0
        }
        _ => false,
    }
}

fn sites(f: &Function) -> Vec<Site> {
    let mut out = Vec::new();
    for &op in f.body_ops() {
        let d = &f.ops[op];
        if d.kind == OpKind::FusedKernel {
            // The anchor is the region's first op; its B must be a region argument that only
            // the anchor reads.
            let Some(&block) = d.regions.first().and_then(|r| r.blocks.first()) else { continue };
            let Some(&anchor) = f.blocks[block].ops.first() else { continue };
            if !takes_panels(f, anchor) {
                continue;
            }
            let b = f.ops[anchor].operands[1];
            let Some(i) = f.blocks[block].args.iter().position(|&a| a == b) else { continue };
            let uses =
                f.blocks[block].ops.iter().flat_map(|&o| f.ops[o].operands.iter()).filter(|&&v| v == b);
            if uses.count() == 1 && f.ops[anchor].operands[0] != b {
                out.push(Site { op, operand: i, product: anchor });
            }
        } else if takes_panels(f, op) && d.operands[0] != d.operands[1] {
            out.push(Site { op, operand: 1, product: op });
        }
    }
    out
}

/// Rewrites the weights of `f`'s GEMMs into panel layout for `target`. Returns how many.
pub fn choose_layout(f: &mut Function, target: &TargetInfo) -> usize {
    if target.gemm_panel.is_none() {
        return 0;
    }
    // One panel constant per (weight, width, transposed): tied weights are stored once.
    let mut made: HashMap<(Value, usize, bool), Value> = HashMap::new();
    let mut before: HashMap<Op, Vec<Op>> = HashMap::new();
    let mut count = 0;
    for site in sites(f) {
        let w = f.ops[site.op].operands[site.operand];
        let Some(Tensor::F32(weight)) = constant(f, w) else { continue };
        let trans = f.ops[site.product].kind == OpKind::Gemm
            && f.ops[site.product].attrs.int("transB").unwrap_or(0) != 0;
        let matrix = if trans { weight.t().as_standard_layout().into_owned() } else { weight };
        let (k, n) = (matrix.shape()[0], matrix.shape()[1]);
        if k == 0 || n == 0 {
            continue;
        }
        let Some(nr) = target.gemm_panel_width(n) else { continue };
        let key = (w, nr, trans);
        let unpacked = match made.get(&key) {
            Some(&v) => v,
            None => {
                let panels = Tensor::F32(edgec_ir::ops::layout::to_panels(&matrix, nr));
                let value = ConstTensor::from_tensor(&panels);
                let loc = f.ops[site.product].loc.clone();
                let c = f.create_op(
                    OpKind::Constant,
                    vec![],
                    vec![value.ty.clone()],
                    Attrs::new().with("value", Attr::Tensor(value)),
                    loc.clone(),
                );
                let pc = f.ops[c].results[0];
                let ty = TensorType::of(&[k, n], ScalarType::F32);
                let u = f.create_op(
                    OpKind::FromPanels,
                    vec![pc],
                    vec![ty],
                    Attrs::new().with("cols", Attr::Int(n as i64)),
                    loc,
                );
                before.entry(site.op).or_default().extend([c, u]);
                let uv = f.ops[u].results[0];
                made.insert(key, uv);
                uv
            }
        };
        f.ops[site.op].operands[site.operand] = unpacked;
        if trans {
            // The kernel's region argument (or the gemm's operand) now holds B itself.
            f.ops[site.product].attrs.set("transB", Attr::Int(0));
            if site.op != site.product {
                let block = f.ops[site.op].regions[0].blocks[0];
                let arg = f.blocks[block].args[site.operand];
                f.values[arg].ty = TensorType::of(&[k, n], ScalarType::F32);
            }
        }
        count += 1;
    }
    if count > 0 {
        let body: Vec<Op> = f.blocks[f.body].ops.clone();
        let mut order = Vec::with_capacity(body.len());
        for op in body {
            order.extend(before.remove(&op).into_iter().flatten());
            order.push(op);
        }
        f.blocks[f.body].ops = order;
        crate::dce::eliminate_dead_ops(f);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::GemmPanel;
    use crate::PassManager;
    use edgec_ir::interp::run_function;
    use edgec_ir::parser::parse_module;
    use edgec_ir::printer::print_module;

    fn target() -> TargetInfo {
        TargetInfo {
            gemm_panel: Some(GemmPanel { lanes: 4, max_vectors: 2 }),
            ..TargetInfo::application_core("test", 16, true)
        }
    }

    fn weight(name: &str, k: usize, n: usize) -> String {
        let vals: Vec<String> = (0..k * n).map(|i| format!("{:.1}", (i % 7) as f32 - 3.0)).collect();
        format!(
            "  %{name} = builtin.constant {{value = dense<[{}]> : tensor<{k}x{n}xf32>}} : tensor<{k}x{n}xf32> loc(\"{name}\")\n",
            vals.join(", ")
        )
    }

    fn run(src: &str) -> (Module, Module) {
        let m = parse_module(src).unwrap_or_else(|e| panic!("{e}\n{src}"));
        let mut out = m.clone();
        let mut pm = PassManager::parse_for("choose-layout,verify", &target()).unwrap();
        pm.verify_each = true;
        pm.run(&mut out).unwrap();
        (m, out)
    }

    fn same_results(a: &Module, b: &Module, inputs: Vec<Tensor>) {
        let x = run_function(&a.functions[0], inputs.clone()).unwrap();
        let y = run_function(&b.functions[0], inputs).unwrap();
        assert_eq!(x[0].to_f64_vec(), y[0].to_f64_vec());
    }

    #[test]
    fn matmul_and_gemm_weights_become_panels() {
        let src = format!(
            "func @f(%x: tensor<2x3xf32>) -> (\"y\": tensor<2x5xf32>, \"z\": tensor<2x5xf32>) {{\n{}{}  %0 = nn.matmul %x, %w : tensor<2x5xf32> loc(\"mm\")\n  %1 = nn.gemm %x, %wt {{transB = 1}} : tensor<2x5xf32> loc(\"gemm\")\n  func.return %0, %1 loc(unknown)\n}}\n",
            weight("w", 3, 5),
            weight("wt", 5, 3)
        );
        let (m, out) = run(&src);
        let text = print_module(&out);
        // N = 5 on 4 lanes: two vectors, one panel of 8 columns.
        assert_eq!(text.matches("layout.from_panels").count(), 2, "{text}");
        assert!(text.contains("tensor<1x3x8xf32>") && text.contains("{cols = 5}"), "{text}");
        assert!(text.contains("transB = 0"), "{text}");
        let x = Tensor::from_le_bytes(
            ScalarType::F32,
            &[2, 3],
            &(0..6).flat_map(|i| (i as f32 * 0.5 - 1.0).to_le_bytes()).collect::<Vec<u8>>(),
        )
        .unwrap();
        same_results(&m, &out, vec![x.clone()]);
        let y = run_function(&m.functions[0], vec![x.clone()]).unwrap();
        let z = run_function(&out.functions[0], vec![x]).unwrap();
        assert_eq!(y[1].to_f64_vec(), z[1].to_f64_vec());
    }

    #[test]
    fn near_misses_stay() {
        // A weight computed at run time, a batched (3-D) B, and the generic target (no backend).
        let src =
            "func @f(%x: tensor<2x3xf32>, %b: tensor<3x5xf32>, %x3: tensor<2x2x3xf32>, %b3: tensor<2x3x5xf32>) -> (\"y\": tensor<2x5xf32>, \"z\": tensor<2x2x5xf32>) {\n  %0 = nn.matmul %x, %b : tensor<2x5xf32> loc(\"mm\")\n  %1 = nn.matmul %x3, %b3 : tensor<2x2x5xf32> loc(\"bmm\")\n  func.return %0, %1 loc(unknown)\n}\n";
        let (m, out) = run(src);
        assert_eq!(print_module(&out), print_module(&m));
        let src = format!(
            "func @f(%x: tensor<2x3xf32>) -> (\"y\": tensor<2x5xf32>) {{\n{}  %0 = nn.matmul %x, %w : tensor<2x5xf32> loc(\"mm\")\n  func.return %0 loc(unknown)\n}}\n",
            weight("w", 3, 5)
        );
        let m = parse_module(&src).unwrap();
        let mut out = m.clone();
        PassManager::parse("choose-layout").unwrap().run(&mut out).unwrap();
        assert_eq!(print_module(&out), print_module(&m));
    }
}
