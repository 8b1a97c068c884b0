//! Writes the assembly of one GEMM for a target: `gemm_asm TRIPLE CPU FEATURES M N K OUT.s`.
use edgec_backends::llvm::gemm::*;
use inkwell::context::Context;
use inkwell::module::Linkage;
use inkwell::targets::FileType;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let tm = target_machine(&a[0], &a[1], &a[2]);
    let isa = VectorIsa::from_target_machine(&tm);
    let (m, n, k) = (a[3].parse().unwrap(), a[4].parse().unwrap(), a[5].parse().unwrap());
    let desc = GemmDesc::new(m, n, k);
    let p = plan(&desc, isa);
    eprintln!("{isa:?} -> tile {}x{} (lanes {}), kc {}, mc {}, nc {}", p.mr, p.nr, p.lanes, p.kc, p.mc, p.nc);
    let ctx = Context::create();
    let module = ctx.create_module("gemm");
    emit_sgemm(&ctx, &module, isa, "gemm", &desc).set_linkage(Linkage::External);
    prepare_module_for(&module, &tm).unwrap();
    let ft = if a[6].ends_with(".o") { FileType::Object } else { FileType::Assembly };
    tm.write_to_file(&module, ft, std::path::Path::new(&a[6])).unwrap();
}
