//! The recipe of `docs/add-a-backend.md`, walked through: a toy backend that lowers the optimized
//! function to kernel IR and prints the kernel of every call, driven through the same steps
//! `edgec compile` takes (its pass pipeline and cost model, the supported-op check before any
//! work, compile, package), without being in the registry.

use edgec::{Backend, BackendError, CodegenOptions, CompileOptions, Compiled, Session};
use edgec_backends::kir::print_kernel;
use edgec_backends::lower::{lower, LowerOptions};
use edgec_backends::{BackendInfo, Package, Target};
use edgec_ir::{Function, Op, OpKind};
use edgec_passes::TargetInfo;
use edgec_testsuite::zoo::{discover, zoo_dir};

/// Its registry entry, as it would appear in `BACKENDS`.
static KERNEL_LIST: BackendInfo = BackendInfo {
    name: "kernel-list",
    summary: "Prints the kernel of every call a model lowers to.",
    feature: None,
    targets: &[("kernel-list", "the kernel calls in kernel-IR text")],
    parse: |s| (s == "kernel-list").then(|| Ok(toy_target())),
    create: Some(|t| Ok(Box::new(KernelList { target: t.clone(), refuse: None }))),
};

fn toy_target() -> Target {
    Target { backend: "kernel-list", name: "kernel-list".into(), triple: None, cpu: None, features: None }
}

struct KernelList {
    target: Target,
    /// An op kind to refuse, to show how unsupported ops are reported.
    refuse: Option<OpKind>,
}

impl Backend for KernelList {
    fn name(&self) -> &'static str {
        KERNEL_LIST.name
    }
    fn target(&self) -> &Target {
        &self.target
    }
    fn pass_target(&self) -> TargetInfo {
        TargetInfo::generic()
    }
    fn pipeline(&self) -> &'static str {
        // Kernel formation, but no GEMM panel layout: it has no GEMM routine of its own.
        "egraph-kernels,fuse"
    }
    fn supports(&self, f: &Function, op: Op) -> Result<(), String> {
        match self.refuse {
            Some(k) if f.ops[op].kind == k => Err("the toy backend refuses it".into()),
            _ => edgec_backends::lower::supports(f, op),
        }
    }
    fn compile(&self, f: &Function, options: &CodegenOptions) -> Result<Compiled, BackendError> {
        let program = lower(f, &LowerOptions::default())?;
        // Each call in schedule order, with the kernel it runs in kernel-IR text form.
        let mut text = String::new();
        for (i, call) in program.calls.iter().enumerate() {
            let k = &program.kernels[call.kernel.index()];
            text += &format!("// call {i}: {} [{}]\n{}\n", call.kernel, call.label, print_kernel(k));
        }
        Ok(Compiled {
            target: self.target.clone(),
            backend: KERNEL_LIST.name,
            symbol: options.symbol.clone(),
            files: vec![("kernels.txt".into(), text.into_bytes())],
            inputs: program.inputs.clone(),
            outputs: program.outputs.clone(),
            program: Some(program),
            seconds: 0.0,
            report: Default::default(),
        })
    }
    fn package(&self, c: &Compiled) -> Result<Package, BackendError> {
        let p = c.program.as_ref().ok_or_else(|| BackendError::internal(None, "no program"))?;
        let mut report = serde_json::Map::new();
        report.insert("kernels".into(), p.calls.len().into());
        report.insert("arena_bytes".into(), p.arena.arena_bytes.into());
        Ok(Package { files: Vec::new(), report })
    }
}

#[test]
fn a_toy_backend_compiles_every_zoo_model_through_the_session() {
    let toy = (KERNEL_LIST.create.unwrap())(&(KERNEL_LIST.parse)("kernel-list").unwrap().unwrap()).unwrap();
    for m in discover(&zoo_dir()).iter().filter(|m| ["dcgan", "vae_mlp", "gpt2"].contains(&m.name.as_str())) {
        let session = Session::import(m.model(), &CompileOptions::default()).unwrap();
        // Its own pipeline: the shared passes, then its suffix (no choose-layout).
        let pipeline = session.pipeline_for(toy.as_ref()).unwrap();
        assert_eq!(pipeline, format!("{},egraph-kernels,fuse", edgec::SHARED_PASSES));
        let c = session.compile_for(toy.as_ref(), &CodegenOptions::new("model")).unwrap();
        let listing = String::from_utf8(c.file("kernels.txt").unwrap().to_vec()).unwrap();
        let calls = c.program.as_ref().unwrap().calls.len();
        assert_eq!(listing.matches("// call ").count(), calls, "{}: {listing}", m.name);
        assert!(listing.contains("\nkernel "), "{}: {listing}", m.name);
        // No layout pass ran, so no weight is stored in panels.
        let optimized = edgec_ir::printer::print_module(&session.optimize_for(toy.as_ref()).unwrap().module);
        assert!(!optimized.contains("layout.from_panels"), "{}", m.name);
        let package = toy.package(&c).unwrap();
        assert_eq!(package.report["kernels"], calls);
        // It did not say how to run models: running is a usage error (exit 2), not a crash.
        let e = toy.execute(&c, &[]).unwrap_err();
        assert!(e.is_user_error(), "{e}");
    }
}

#[test]
fn unsupported_ops_are_all_reported_before_any_work() {
    let m = discover(&zoo_dir()).into_iter().find(|m| m.name == "dcgan").unwrap();
    let session = Session::import(m.model(), &CompileOptions::default()).unwrap();
    let toy = KernelList { target: toy_target(), refuse: Some(OpKind::ConvTranspose) };
    let e = session.compile_for(&toy, &CodegenOptions::new("model")).unwrap_err();
    assert!(e.is_user_error(), "{e}");
    let msg = e.to_string();
    // Every refused op, each with its ONNX node, in one line.
    assert!(msg.starts_with("the kernel-list backend cannot compile "), "{msg}");
    assert!(msg.matches("nn.conv_transpose (node ").count() >= 4, "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
}
