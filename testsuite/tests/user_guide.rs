//! docs/user-guide.md cannot drift: every fenced code block in it follows an HTML comment that
//! says how it is checked, and this test checks it that way.
//!
//! - `<!-- guide: readme -->`: the block is one of README.md's commands; the main job's
//!   `cargo run --release -q -p edgec -- ARGS` is run as `edgec ARGS` with this build's binary
//!   (the other command is the one running this test).
//! - `<!-- guide: run -->`: run with `bash -euo pipefail` in a scratch directory that links the
//!   repository's `testsuite/` and `runtime/`, with this build's `edgec` first on `PATH` (the
//!   README's first command puts the release build there for a user).
//! - `<!-- guide: run-in-repo -->`: the same, from the repository root (Cargo commands).
//! - `<!-- guide: file PATH -->`: the block is the file.
//! - `<!-- guide: part PATH -->`: the block's lines are lines of the file, in order.
//! - `<!-- guide: region PATH NAME -->`: the block is the code between `// guide: NAME` and
//!   `// guide: end` in the file (a test), dedented; the Session journey's region is below.

use edgec_testsuite::cli::edgec_bin;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

struct Block {
    line: usize,
    directive: Vec<String>,
    text: String,
}

/// The fenced blocks of a markdown text, each with the words of the `<!-- guide: ... -->`
/// comment on the line before it (empty when there is none).
fn blocks(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].starts_with("```") {
            i += 1;
            continue;
        }
        let directive = i
            .checked_sub(1)
            .and_then(|p| lines[p].trim().strip_prefix("<!-- guide:"))
            .and_then(|d| d.strip_suffix("-->"))
            .map(|d| d.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let end = (i + 1..lines.len()).find(|&j| lines[j].starts_with("```")).expect("unclosed code block");
        out.push(Block { line: i + 1, directive, text: lines[i + 1..end].join("\n") });
        i = end + 1;
    }
    out
}

/// The lines between `// guide: NAME` and `// guide: end`, without their common indentation.
fn region(source: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = source.lines().collect();
    let start = lines.iter().position(|l| l.trim() == format!("// guide: {name}"))? + 1;
    let end = start + lines[start..].iter().position(|l| l.trim() == "// guide: end")?;
    let body = &lines[start..end];
    let indent =
        body.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min()?;
    Some(body.iter().map(|l| l.get(indent..).unwrap_or("").trim_end()).collect::<Vec<_>>().join("\n"))
}

/// A scratch directory linking the repository folders the guide's commands use.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("edgec-guide-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for name in ["testsuite", "runtime"] {
        std::os::unix::fs::symlink(repo().join(name), dir.join(name)).expect("symlink");
    }
    dir
}

fn run_bash(script: &str, cwd: &Path) -> Result<(), String> {
    let bin_dir = edgec_bin().parent().expect("binary folder").to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .expect("PATH");
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(cwd)
        .env("PATH", path)
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    if out.status.success() {
        println!("{}", String::from_utf8_lossy(&out.stdout).trim_end());
        Ok(())
    } else {
        Err(format!(
            "failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn read(rel: &str) -> Result<String, String> {
    std::fs::read_to_string(repo().join(rel)).map_err(|e| format!("{rel}: {e}"))
}

fn check(block: &Block, work: &Path) -> Result<(), String> {
    let words: Vec<&str> = block.directive.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["readme"] => {
            if !read("README.md")?.contains(&block.text) {
                return Err("not one of README.md's commands".into());
            }
            let main_job = "cargo run --release -q -p edgec -- ";
            if let Some(at) = block.text.find(main_job) {
                let args: Vec<&str> = block.text[at + main_job.len()..].split_whitespace().collect();
                let out = Command::new(edgec_bin())
                    .args(&args)
                    .current_dir(work)
                    .output()
                    .map_err(|e| e.to_string())?;
                if !out.status.success() {
                    return Err(format!("edgec {args:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            Ok(())
        }
        ["run"] => run_bash(&block.text, work),
        ["run-in-repo"] => run_bash(&block.text, &repo()),
        ["file", path] => {
            let file = read(path)?;
            if file.trim_end() != block.text.trim_end() {
                return Err(format!("differs from {path}"));
            }
            Ok(())
        }
        ["part", path] => {
            let file = read(path)?;
            let mut lines = file.lines().map(str::trim_end);
            for want in block.text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                if !lines.any(|l| l == want) {
                    return Err(format!("line {want:?} is not in {path} (in this order)"));
                }
            }
            Ok(())
        }
        ["region", path, name] => {
            let code = region(&read(path)?, name).ok_or_else(|| format!("{path} has no region `{name}`"))?;
            if code != block.text.trim_end() {
                return Err(format!("differs from region `{name}` of {path}:\n{code}"));
            }
            Ok(())
        }
        _ => Err(format!("no or unknown `<!-- guide: ... -->` directive: {words:?}")),
    }
}

#[test]
fn every_block_of_the_user_guide_is_checked() {
    let guide = read("docs/user-guide.md").expect("docs/user-guide.md");
    let blocks = blocks(&guide);
    assert!(blocks.len() >= 10, "found only {} code blocks", blocks.len());
    let work = workdir();
    let mut failures = Vec::new();
    for b in &blocks {
        match check(b, &work) {
            Ok(()) => println!("ok   docs/user-guide.md:{} {:?}", b.line, b.directive),
            Err(e) => failures.push(format!("docs/user-guide.md:{} {:?}: {e}", b.line, b.directive)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(work.join("dcgan-out.npz").is_file(), "the main job wrote no dcgan-out.npz");
}

#[test]
fn block_parser_reads_directives_and_regions() {
    let md = "text\n<!-- guide: file a.txt -->\n```sh\necho hi\n```\n\n```c\nx\n```\n";
    let b = blocks(md);
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].directive, ["file", "a.txt"]);
    assert_eq!(b[0].text, "echo hi");
    assert!(b[1].directive.is_empty());
    assert!(check(&b[1], Path::new("/")).is_err(), "a block without a directive fails");
    let src = "fn f() {\n    // guide: x\n    let a = 1;\n\n    if a {\n        b();\n    }\n    // guide: end\n}\n";
    assert_eq!(region(src, "x").unwrap(), "let a = 1;\n\nif a {\n    b();\n}");
    assert_eq!(region(src, "y"), None);
}

/// The Session journey, as the guide shows it between the markers; returns the largest
/// difference from the interpreter relative to the largest reference value.
fn session_journey() -> Result<f64, edgec::Error> {
    // The guide's paths are relative to the repository root, where a user runs it.
    std::env::set_current_dir(repo()).expect("cd to the repository");
    // guide: session
    use edgec::{CompileOptions, Session, Target};

    let session = Session::import("testsuite/zoo/vae_mlp/model.onnx", &CompileOptions::default())?;
    let inputs = session.read_inputs("testsuite/zoo/vae_mlp/inputs.npz")?;
    let reference = session.run(inputs.clone())?; // the reference interpreter
    let compiled = session.compile(&Target::parse("cortex-m7")?, "vae", false)?;
    let report = session.write_artifacts(&compiled, &std::env::temp_dir().join("vae-cortex-m7"))?;
    println!("arena {} bytes, weights {} bytes", report["arena_bytes"], report["weights_bytes"]);
    let (outputs, _log) = session.execute(&compiled, &inputs)?; // under qemu-system-arm
    let (want, got) = (reference[0].to_f64_vec(), outputs[0].to_f64_vec());
    let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    println!("max difference from the interpreter: {worst:.2e}");
    // guide: end
    assert_eq!(want.len(), got.len());
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
    Ok(worst / scale)
}

#[test]
fn the_session_journey_runs_and_matches_the_interpreter() {
    let relative = session_journey().expect("the guide's Session example");
    assert!(relative <= edgec_testsuite::zoo::ZOO_REL_TOL, "relative error {relative:e}");
}
