//! The malformed-model corpus: every file must make `edgec import` exit with code 2 and a
//! one-line message that names what is wrong, without panicking or aborting.

use edgec_testsuite::cli::edgec;
use std::path::Path;

#[test]
fn malformed_models_exit_2_with_a_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("malformed");
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).expect("malformed/expected.json"),
    )
    .expect("valid JSON");
    assert!(expected.len() >= 20, "the corpus has only {} models", expected.len());
    let mut failures = Vec::new();
    for (file, spec) in &expected {
        let path = dir.join(file);
        assert!(path.is_file(), "{} listed but missing", path.display());
        let want = spec["message"].as_str().unwrap_or("").to_lowercase();
        let out = edgec(&["import", path.to_str().expect("utf-8 path")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let code = out.status.code();
        let ok = code == Some(2)
            && lines.len() == 1
            && lines[0].starts_with("edgec: error: ")
            && lines[0].to_lowercase().contains(&want)
            && out.stdout.is_empty();
        println!("{} {file}: exit {code:?}: {}", if ok { "ok  " } else { "FAIL" }, stderr.trim());
        if !ok {
            failures.push(format!(
                "{file}: exit {code:?}, wanted 2 and a line containing {want:?}; stderr: {stderr}"
            ));
        }
    }
    println!("malformed: {} passed, {} failed", expected.len() - failures.len(), failures.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
