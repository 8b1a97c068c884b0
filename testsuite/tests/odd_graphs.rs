//! The committed "valid but odd" ONNX graphs (`testsuite/odd-graphs/`, 20 seeds of
//! `testsuite/scripts/gen_odd_graphs.py`: size-1 dims, broadcasts, negative axes, keepdims 0/1,
//! reshapes with 0 and -1, negative slice steps, large constants, ...) through
//! `edgec run --target interp` and `--target host`, against ONNX Runtime's outputs stored next to
//! each graph. A graph fails on a wrong output (above 1e-4 × max |ref|, see
//! `edgec_testsuite::odd_graphs`), a crash, exit 1, or a multi-line error; exit 2 with one line
//! (unsupported) is printed and allowed.

use edgec_testsuite::odd_graphs::{check_graph, graph_dirs, Outcome};
use std::path::Path;

#[test]
fn odd_graphs_match_onnx_runtime_on_interp_and_host() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("odd-graphs");
    let graphs = graph_dirs(&dir);
    assert!(graphs.len() >= 20, "only {} graphs in {}", graphs.len(), dir.display());
    let scratch = std::env::temp_dir().join(format!("edgec-odd-graphs-test-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    edgec_testsuite::cli::edgec_bin(); // build it once, before the threads
    let results: Vec<(String, Vec<String>, usize, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = ["interp", "host"]
            .into_iter()
            .map(|t| {
                let (graphs, scratch) = (&graphs, &scratch);
                s.spawn(move || {
                    let (mut fails, mut matched, mut unsupported) = (Vec::new(), 0, 0);
                    for g in graphs {
                        match check_graph(g, t, scratch) {
                            Outcome::Match(_) => matched += 1,
                            Outcome::Unsupported(m) => {
                                unsupported += 1;
                                println!("unsupported {t} {}: {m}", g.display());
                            }
                            Outcome::Fail(m) => fails.push(format!("{t} {}: {m}", g.display())),
                        }
                    }
                    (t.to_string(), fails, matched, unsupported)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let mut fails = Vec::new();
    for (t, f, matched, unsupported) in results {
        println!("{t}: {} graphs, {matched} match, {unsupported} unsupported", graphs.len());
        fails.extend(f);
    }
    assert!(fails.is_empty(), "{}", fails.join("\n"));
}
