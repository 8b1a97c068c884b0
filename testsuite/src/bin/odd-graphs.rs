//! Runs generated odd graphs (`testsuite/scripts/gen_odd_graphs.py OUT`) through
//! `edgec run --target interp` and `--target host` and compares with ONNX Runtime:
//!
//!     cargo run --release -p edgec-testsuite --bin odd-graphs -- OUT [--targets interp,host]
//!
//! Prints one line per failure and a summary; exits 1 when any graph fails.

use edgec_testsuite::odd_graphs::{check_graph, graph_dirs, Outcome};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: odd-graphs DIR [--targets interp,host]");
        std::process::exit(2);
    };
    let targets: Vec<String> = match args.iter().position(|a| a == "--targets") {
        Some(i) => args.get(i + 1).map(|t| t.split(',').map(str::to_string).collect()).unwrap_or_default(),
        None => vec!["interp".into(), "host".into()],
    };
    let scratch = std::env::temp_dir().join(format!("edgec-odd-graphs-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let graphs = graph_dirs(&dir);
    let mut failed = 0;
    for t in &targets {
        let (mut ok, mut unsupported, mut fail) = (0, 0, 0);
        for g in &graphs {
            match check_graph(g, t, &scratch) {
                Outcome::Match(_) => ok += 1,
                Outcome::Unsupported(m) => {
                    unsupported += 1;
                    println!("unsupported {t} {}: {m}", g.display());
                }
                Outcome::Fail(m) => {
                    fail += 1;
                    println!("FAIL {t} {}: {m}", g.display());
                }
            }
        }
        println!("{t}: {} graphs, {ok} match, {unsupported} unsupported (exit 2), {fail} fail", graphs.len());
        failed += fail;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
