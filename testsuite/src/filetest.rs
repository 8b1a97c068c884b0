//! The filetest runner: `testsuite/filetests/<area>/*.eir` files, each a small IR module with a
//! header saying what to check and the expected outcome in comments (the format is specified in
//! `docs/ir.md`, "Filetests").
//!
//! ```text
//! // test: verify
//! func @f() -> () {
//!   // expected-error: missing required attribute `value`
//!   %0 = builtin.constant : tensor<f32> loc(unknown)
//!   func.return loc(unknown)
//! }
//! ```
//!
//! Kinds (one `// test: KIND` line each; a file may name several):
//! - `roundtrip`: printing the parsed module gives back the file's text, minus its full-line
//!   comments and surrounding blank lines.
//! - `verify`: parse, then verify each function. With an `// expected-error: SUBSTRING`
//!   annotation, the first error (from the parser or the verifier) must contain SUBSTRING and be
//!   reported at the nearest code line above or below the annotation (where the annotated op or
//!   function starts; an op is "at" the line where it starts); without one, the module must
//!   parse and verify cleanly.
//! - `print`: the printed module must equal the block of comment lines after
//!   `// ---- expected ----` (each line with its `// ` prefix removed).
//!
//! - `passes=a,b,c`: runs that pipeline (verifying after each pass); the printed result must
//!   equal the expected block, as for `print`. The reference interpreter also runs the module
//!   before and after the pipeline on deterministic pseudo-random inputs, and the outputs must
//!   agree (to 1e-5 relative, since recognized ops may round differently).
//! - `lower`: the module must verify; its main function is lowered to kernel IR with
//!   `edgec_backends::lower::lower` and the default (portable loop) `LowerOptions`, and the
//!   printed program (`edgec_backends::lower::print_program`, form in `docs/kernel-ir.md`) must
//!   equal the expected block, as for `print`.
//!
//! A header line `// target: T` (`cortex-m7`, a triple, `interp`; default: none, the passes'
//! generic target) builds the `passes=` pipeline for that target (its backend's `pass_target`),
//! for passes whose choices depend on the machine.
//!
//! Every file that parses is also checked for print → parse → print stability. With
//! `EDGEC_BLESS=1`, expected blocks (`print`, `passes=`, `lower`) and `roundtrip` texts are
//! rewritten from the actual output instead of being compared.

use edgec_ir::parser::{parse_module_with_lines, SourceLines};
use edgec_ir::printer::print_module;
use edgec_ir::verify::verify_function;
use edgec_ir::{IrError, Module};
use std::path::{Path, PathBuf};

/// The line that separates a `print` test's input from its expected output.
pub const EXPECTED_MARKER: &str = "// ---- expected ----";
/// The prefix of a header line naming a test kind.
pub const KIND_PREFIX: &str = "// test:";
/// The prefix of a header line naming the target a `passes=` pipeline is built for.
pub const TARGET_PREFIX: &str = "// target:";
/// The prefix of an expected-error annotation.
pub const ERROR_PREFIX: &str = "// expected-error:";

/// What a filetest checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Roundtrip,
    Verify,
    Print,
    /// Run a pass pipeline, then compare like `Print`.
    Passes(String),
    /// Lower the main function to kernel IR and compare its text like `Print`.
    Lower,
}

impl Kind {
    fn from_name(s: &str) -> Option<Kind> {
        match s {
            "roundtrip" => Some(Kind::Roundtrip),
            "verify" => Some(Kind::Verify),
            "print" => Some(Kind::Print),
            "lower" => Some(Kind::Lower),
            _ => s.strip_prefix("passes=").map(|p| Kind::Passes(p.trim().to_string())),
        }
    }

    fn has_expected_block(&self) -> bool {
        matches!(self, Kind::Print | Kind::Passes(_) | Kind::Lower)
    }
}

/// Whether `EDGEC_BLESS=1` asks to rewrite expected output instead of comparing it.
pub fn bless_requested() -> bool {
    std::env::var("EDGEC_BLESS").is_ok_and(|v| v == "1")
}

/// The outcome of one file.
#[derive(Debug)]
pub struct FileOutcome {
    /// Each failed check, described for a human (diffs included).
    pub failures: Vec<String>,
    /// The new file text when blessing changed it.
    pub blessed: Option<String>,
}

/// The result of a directory run.
#[derive(Debug, Default)]
pub struct Summary {
    pub passed: usize,
    /// Failed files and what failed in each.
    pub failed: Vec<(PathBuf, String)>,
    /// Files rewritten by blessing.
    pub blessed: Vec<PathBuf>,
}

/// All `*.eir` files under `root`, sorted.
pub fn collect(root: &Path) -> Result<Vec<PathBuf>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "eir") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, &mut out)?;
    out.sort();
    Ok(out)
}

/// Runs every filetest under `root` whose path contains `filter` (all when `None`), rewriting
/// expected output when `bless` is set.
pub fn run_dir(root: &Path, filter: Option<&str>, bless: bool) -> Result<Summary, String> {
    let mut summary = Summary::default();
    for path in collect(root)? {
        let shown = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if filter.is_some_and(|f| !shown.to_string_lossy().contains(f)) {
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                summary.failed.push((shown, format!("cannot read: {e}")));
                continue;
            }
        };
        let outcome = run_source(&text, bless);
        if let Some(new) = &outcome.blessed {
            if let Err(e) = std::fs::write(&path, new) {
                summary.failed.push((shown, format!("cannot write blessed output: {e}")));
                continue;
            }
            summary.blessed.push(shown.clone());
        }
        if outcome.failures.is_empty() {
            summary.passed += 1;
        } else {
            summary.failed.push((shown, outcome.failures.join("\n")));
        }
    }
    Ok(summary)
}

/// A unified diff from `expected` to `actual`.
pub fn diff(expected: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with("//")
}

fn is_code(line: &str) -> bool {
    !line.trim().is_empty() && !is_comment(line)
}

/// The IR text of a file as the printer would write it: the lines before the expected block,
/// without full-line comments, without leading and trailing blank lines.
fn ir_text(lines: &[&str]) -> String {
    let kept: Vec<&str> = lines.iter().copied().filter(|l| !is_comment(l)).collect();
    let first = kept.iter().position(|l| !l.trim().is_empty());
    let last = kept.iter().rposition(|l| !l.trim().is_empty());
    match (first, last) {
        (Some(a), Some(b)) => kept[a..=b].iter().map(|l| format!("{l}\n")).collect(),
        _ => String::new(),
    }
}

/// Runs one filetest given its text.
pub fn run_source(text: &str, bless: bool) -> FileOutcome {
    let mut failures = Vec::new();
    let mut blessed = None;
    let lines: Vec<&str> = text.lines().collect();

    // The header: comment and blank lines before the first code line.
    let header_len = lines.iter().position(|l| is_code(l)).unwrap_or(lines.len());
    let mut kinds = Vec::new();
    let mut target = edgec_passes::TargetInfo::generic();
    for (i, l) in lines[..header_len].iter().enumerate() {
        if let Some(t) = l.trim().strip_prefix(TARGET_PREFIX) {
            match edgec::Target::parse(t.trim()) {
                Ok(t) => match edgec::target::lookup(&t) {
                    Ok(b) => target = b.pass_target(),
                    Err(e) => failures.push(format!("line {}: {e}", i + 1)),
                },
                Err(e) => failures.push(format!("line {}: {e}", i + 1)),
            }
        }
        if let Some(k) = l.trim().strip_prefix(KIND_PREFIX) {
            match Kind::from_name(k.trim()) {
                Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
                Some(_) => failures.push(format!("line {}: test kind `{}` is given twice", i + 1, k.trim())),
                None => failures.push(format!(
                    "line {}: unknown test kind `{}` (expected roundtrip, verify, print, lower or passes=...)",
                    i + 1,
                    k.trim()
                )),
            }
        }
    }
    if kinds.is_empty() && failures.is_empty() {
        failures.push(format!("no `{KIND_PREFIX} <kind>` line in the header"));
    }
    if !failures.is_empty() {
        return FileOutcome { failures, blessed };
    }

    let marker = lines.iter().position(|l| l.trim() == EXPECTED_MARKER);
    let input_lines = &lines[..marker.unwrap_or(lines.len())];
    if marker.is_some() && !kinds.iter().any(Kind::has_expected_block) {
        failures.push(format!(
            "`{EXPECTED_MARKER}` block in a file without `{KIND_PREFIX} print`, `lower` or `passes=`"
        ));
    }
    if kinds.iter().filter(|k| k.has_expected_block()).count() > 1 {
        failures.push(
            "a file may have only one of `print`, `lower` and `passes=` (they share the expected block)"
                .into(),
        );
        return FileOutcome { failures, blessed };
    }
    if let Some(m) = marker {
        if let Some(i) = lines[m + 1..].iter().position(|l| is_code(l)) {
            failures.push(format!("line {}: only comment lines may follow `{EXPECTED_MARKER}`", m + i + 2));
        }
    }

    let parsed = parse_module_with_lines(text);
    let printed = parsed.as_ref().ok().map(|(m, _)| print_module(m));

    // Stability: whatever the input looked like, the printer's output must read back as itself.
    if let Some(p) = &printed {
        match edgec_ir::parser::parse_module(p) {
            Ok(m2) => {
                let p2 = print_module(&m2);
                if &p2 != p {
                    failures.push(format!("print → parse → print is not stable:\n{}", diff(p, &p2)));
                }
            }
            Err(e) => failures.push(format!("the printed module does not parse back: {e}\n{p}")),
        }
    }

    for kind in &kinds {
        match kind {
            Kind::Roundtrip => {
                let expected = ir_text(input_lines);
                match &printed {
                    None => failures.push(format!("roundtrip: {}", parse_error(&parsed))),
                    Some(p) if *p == expected => {}
                    Some(p) if bless => {
                        let body_start = input_lines.iter().position(|l| is_code(l)).unwrap_or(0);
                        if input_lines[body_start..].iter().any(|l| is_comment(l)) {
                            failures.push(format!(
                                "roundtrip: output differs and cannot be blessed because comment lines \
                                 are interleaved with the IR:\n{}",
                                diff(&expected, p)
                            ));
                        } else {
                            let mut new: String =
                                lines[..body_start].iter().map(|l| format!("{l}\n")).collect();
                            new.push_str(p);
                            if let Some(m) = marker {
                                new.push('\n');
                                lines[m..].iter().for_each(|l| {
                                    new.push_str(l);
                                    new.push('\n');
                                });
                            }
                            blessed = Some(new);
                        }
                    }
                    Some(p) => failures
                        .push(format!("roundtrip: output differs from the input:\n{}", diff(&expected, p))),
                }
            }
            Kind::Verify => {
                if let Err(f) = check_verify(&lines, &parsed) {
                    failures.push(format!("verify: {f}"));
                }
            }
            Kind::Print | Kind::Passes(_) | Kind::Lower => {
                let Some(p) = &printed else {
                    failures.push(format!("print: {}", parse_error(&parsed)));
                    continue;
                };
                let after;
                let p = match kind {
                    Kind::Passes(pipeline) => {
                        let module = &parsed.as_ref().expect("printed implies parsed").0;
                        match run_pipeline(module, pipeline, &target) {
                            Ok(out) => {
                                after = out;
                                &after
                            }
                            Err(e) => {
                                failures.push(format!("passes={pipeline}: {e}"));
                                continue;
                            }
                        }
                    }
                    Kind::Lower => {
                        let module = &parsed.as_ref().expect("printed implies parsed").0;
                        match lower_main(module) {
                            Ok(out) => {
                                after = out;
                                &after
                            }
                            Err(e) => {
                                failures.push(format!("lower: {e}"));
                                continue;
                            }
                        }
                    }
                    _ => p,
                };
                let expected: Option<String> = marker.map(|m| {
                    lines[m + 1..]
                        .iter()
                        .map(|l| {
                            let t = l.trim_start();
                            let body = t.strip_prefix("// ").or_else(|| t.strip_prefix("//")).unwrap_or(t);
                            format!("{body}\n")
                        })
                        .collect()
                });
                if expected.as_deref() == Some(p.as_str()) {
                    continue;
                }
                if bless {
                    let base = blessed.as_deref().unwrap_or(text);
                    blessed = Some(with_expected_block(base, p));
                } else {
                    match expected {
                        None => failures.push(format!(
                            "print: no `{EXPECTED_MARKER}` block; the output is:\n{p}(run with EDGEC_BLESS=1 to add it)"
                        )),
                        Some(e) => failures.push(format!("print: output differs:\n{}", diff(&e, p))),
                    }
                }
            }
        }
    }
    FileOutcome { failures, blessed }
}

/// Runs `pipeline` over a copy of `module` (verifying after each pass) and checks it against the
/// interpreter; returns the printed result.
fn run_pipeline(
    module: &Module,
    pipeline: &str,
    target: &edgec_passes::TargetInfo,
) -> Result<String, String> {
    let mut pm = edgec_passes::PassManager::parse_for(pipeline, target).map_err(|e| e.to_string())?;
    pm.verify_each = true;
    let mut after = module.clone();
    pm.run(&mut after).map_err(|e| e.to_string())?;
    for (f0, f1) in module.functions.iter().zip(&after.functions) {
        let inputs = crate::compare::pseudo_random_inputs(f0, 0x5eed);
        let Some(inputs) = inputs else { continue };
        let want = edgec_ir::interp::run_function(f0, inputs.clone());
        let have = edgec_ir::interp::run_function(f1, inputs);
        match (want, have) {
            (Ok(want), Ok(have)) => crate::compare::same_outputs(&want, &have, 1e-5)
                .map_err(|m| format!("@{}: the pipeline changed the results: {m}", f0.name))?,
            (Err(_), _) => {} // The input itself does not run (e.g. a verifier-only example).
            (Ok(_), Err(e)) => {
                return Err(format!("@{}: runs before the pipeline but not after: {e}", f0.name))
            }
        }
    }
    Ok(print_module(&after))
}

/// Verifies `module` and lowers its main function with the default options; returns the printed
/// kernel IR program.
fn lower_main(module: &Module) -> Result<String, String> {
    edgec_ir::verify::verify_module(module).map_err(|e| e.to_string())?;
    let f = module.main().ok_or("the module has no main function")?;
    let p = edgec_backends::lower::lower(f, &edgec_backends::lower::LowerOptions::default())
        .map_err(|e| e.to_string())?;
    Ok(edgec_backends::lower::print_program(&p))
}

fn parse_error(parsed: &Result<(Module, SourceLines), IrError>) -> String {
    match parsed {
        Err(e) => format!("does not parse: {e}"),
        Ok(_) => "parsed".into(),
    }
}

/// `text` with its expected block replaced by (or extended with) `output`.
fn with_expected_block(text: &str, output: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines.iter().position(|l| l.trim() == EXPECTED_MARKER).unwrap_or(lines.len());
    let mut keep = &lines[..cut];
    while keep.last().is_some_and(|l| l.trim().is_empty()) {
        keep = &keep[..keep.len() - 1];
    }
    let mut out: String = keep.iter().map(|l| format!("{l}\n")).collect();
    out.push('\n');
    out.push_str(EXPECTED_MARKER);
    out.push('\n');
    for l in output.lines() {
        if l.is_empty() {
            out.push_str("//\n");
        } else {
            out.push_str("// ");
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// Checks a `verify` test: the first error matches the annotation, or there is none.
fn check_verify(lines: &[&str], parsed: &Result<(Module, SourceLines), IrError>) -> Result<(), String> {
    let annotations: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.trim().strip_prefix(ERROR_PREFIX).map(|s| (i + 1, s.trim())))
        .collect();
    if annotations.len() > 1 {
        return Err(format!(
            "{} `expected-error` annotations (lines {}); only the first error is reported, so give one per file",
            annotations.len(),
            annotations.iter().map(|(l, _)| l.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    // The first error, with the line it points at.
    let first: Option<(usize, String)> = match parsed {
        Err(IrError::Parse { line, message, .. }) => Some((*line, format!("parse error: {message}"))),
        Err(e) => Some((0, e.to_string())),
        Ok((m, src)) => m.functions.iter().zip(&src.functions).find_map(|(f, fl)| {
            verify_function(f).err().map(|e| {
                let line = match &e {
                    IrError::Verify { op: Some(op), .. } => fl.op_line(*op).unwrap_or(fl.line),
                    _ => fl.line,
                };
                (line, e.to_string())
            })
        }),
    };
    match (annotations.first(), first) {
        (None, None) => Ok(()),
        (None, Some((line, msg))) => Err(format!("unexpected error at line {line}: {msg}")),
        (Some((aline, want)), None) => {
            Err(format!("line {aline}: expected an error containing `{want}`, but the module verifies"))
        }
        (Some(&(aline, want)), Some((line, msg))) => {
            // The annotated op: the nearest code line above or below the annotation.
            let above = (1..aline).rev().find(|&l| is_code(lines[l - 1]));
            let below = (aline + 1..=lines.len()).find(|&l| is_code(lines[l - 1]));
            // The annotation covers the code lines just above and below it and anything in
            // between (an error at the end of the input has no code line below).
            let at_op = above.unwrap_or(0) <= line && below.is_none_or(|b| line <= b);
            if msg.contains(want) && at_op {
                Ok(())
            } else if msg.contains(want) {
                Err(format!(
                    "line {aline}: the error `{msg}` is reported at line {line}, not at the annotated op \
                     (line {})",
                    [above, below].iter().flatten().map(|l| l.to_string()).collect::<Vec<_>>().join(" or ")
                ))
            } else {
                Err(format!("line {aline}: expected an error containing `{want}`, got at line {line}: {msg}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "func @f() -> () {\n  func.return loc(unknown)\n}\n";

    #[test]
    fn roundtrip_and_print_kinds() {
        let text = format!("// test: roundtrip\n// a description\n\n{CLEAN}");
        assert!(run_source(&text, false).failures.is_empty());
        let text = "// test: roundtrip\nfunc @f() -> () {\n  func.return\n}\n";
        let out = run_source(text, false);
        assert!(out.failures[0].contains("+  func.return loc(unknown)"), "{:?}", out.failures);
        let blessed = run_source(text, true).blessed.unwrap();
        assert_eq!(blessed, format!("// test: roundtrip\n{CLEAN}"));

        let text = "// test: print\nfunc @f() -> () {\n  func.return\n}\n";
        let out = run_source(text, false);
        assert!(out.failures[0].contains("no `// ---- expected ----` block"), "{:?}", out.failures);
        let blessed = run_source(text, true).blessed.unwrap();
        assert!(run_source(&blessed, false).failures.is_empty(), "{blessed}");
        assert!(blessed
            .ends_with("// ---- expected ----\n// func @f() -> () {\n//   func.return loc(unknown)\n// }\n"));
    }

    #[test]
    fn lower_kind() {
        let text = "// test: lower\nfunc @main(%a: tensor<2xf32>) -> (\"y\": tensor<2xf32>) {\n  %0 = math.neg %a : tensor<2xf32> loc(\"neg\")\n  func.return %0 loc(unknown)\n}\n";
        let out = run_source(text, false);
        assert!(out.failures[0].contains("no `// ---- expected ----` block"), "{:?}", out.failures);
        let blessed = run_source(text, true).blessed.unwrap();
        assert!(run_source(&blessed, false).failures.is_empty(), "{blessed}");
        assert!(blessed.contains("// k0: kernel neg_0(p0: f32[2] read, p1: f32[2] write)\n"), "{blessed}");
        assert!(blessed.contains("//   k0(in0, out0) \"neg\"\n"), "{blessed}");
        let both = text.replace("// test: lower\n", "// test: lower\n// test: print\n");
        assert!(run_source(&both, false).failures[0].contains("only one of"));
        let invalid = text.replace("math.neg %a", "math.neg %a, %a");
        assert!(!run_source(&invalid, false).failures.is_empty());
    }

    #[test]
    fn verify_kind() {
        assert!(run_source(&format!("// test: verify\n{CLEAN}"), false).failures.is_empty());
        let bad = "// test: verify\nfunc @f() -> () {\n  // expected-error: missing required attribute `value`\n  %0 = builtin.constant : tensor<f32> loc(unknown)\n  func.return loc(unknown)\n}\n";
        assert!(run_source(bad, false).failures.is_empty(), "{:?}", run_source(bad, false).failures);
        let wrong_line =
            bad.replace("  // expected-error: missing required attribute `value`\n", "").replace(
                "  func.return loc(unknown)\n}",
                "  func.return loc(unknown)\n}\n// expected-error: missing required attribute",
            );
        let out = run_source(&wrong_line, false);
        assert!(out.failures[0].contains("not at the annotated op"), "{:?}", out.failures);
        let wrong_msg = bad.replace("missing required", "something else");
        assert!(run_source(&wrong_msg, false).failures[0]
            .contains("expected an error containing `something else"));
        let no_header = run_source(CLEAN, false);
        assert!(no_header.failures[0].contains("no `// test: <kind>` line"));
    }
}
