//! Fuzz harnesses for the three parsers that read outside bytes: ONNX protobuf (with an external
//! data file), the IR text form, and tensor inputs (`.npz`, `input_N.pb`).
//!
//! Each harness takes arbitrary bytes and panics when edgec breaks its contract with them:
//! - bad bytes give an error of the user's-fault class (`Error::is_user_error`, exit code 2) whose
//!   message is one line; never a panic, never an internal error;
//! - what is accepted is consistent: an imported model verifies, and its printed IR parses back
//!   and verifies; an IR module that parses and verifies prints to text that parses and prints the
//!   same again; tensors read from a file have as many elements as their shape says;
//! - no allocation is out of proportion to the input: [`CappedAlloc`] aborts the process on a
//!   single allocation above [`ALLOC_CAP`], which the fuzzer reports as a crash.
//!
//! The AFL binaries in `testsuite/fuzz/` (a separate workspace, built with `cargo afl`) include
//! this file as a module, and `tests/fuzz_regressions.rs` replays the committed corpus
//! (`testsuite/fuzz/corpus/<target>/`, `testsuite/fuzz/regressions/<target>/`) through the same
//! functions. It needs nothing but `edgec`, `edgec-ir` and `bytes`, so the fuzz build stays small.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Separates the model from its external data file in an `onnx` input: the bytes before it are
/// the `ModelProto`, the bytes after it are written to `model.onnx.data` next to the model.
pub const EXTERNAL_DATA_SEPARATOR: &[u8] = b"\n--edgec-fuzz-external-data--\n";

/// The name of the side file an `onnx` input's second part is written to (what the seeds'
/// `external_data` entries name).
pub const EXTERNAL_DATA_FILE: &str = "model.onnx.data";

/// The largest single allocation a harness may make: far above anything a fuzz input of a few
/// hundred KB legitimately needs, far below what a size field read from the input can ask for.
pub const ALLOC_CAP: usize = 256 << 20;

/// A global allocator that aborts on any single allocation above [`ALLOC_CAP`] (with a message
/// on stderr), so that a size taken from the input without a bound is found even on a machine
/// with enough memory to satisfy it.
pub struct CappedAlloc;

unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check_size(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check_size(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check_size(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn check_size(size: usize) {
    if size > ALLOC_CAP {
        // No allocation here: a fixed message through the raw stderr descriptor.
        let msg = b"fuzz harness: an allocation above the 256 MiB cap (a size taken from the input without a bound)\n";
        unsafe { libc_write(2, msg.as_ptr(), msg.len()) };
        std::process::abort();
    }
}

extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buf: *const u8, count: usize) -> isize;
}

/// A scratch directory for this process (model files, side files, tensor files).
fn scratch_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("edgec-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("create the fuzz scratch directory");
        d
    })
}

/// Checks the error contract: the user's fault, one line.
pub fn check_error(what: &str, e: &edgec::Error) {
    let msg = e.to_string();
    assert!(e.is_user_error(), "{what}: an error that is not the input's fault (exit 1): {msg}");
    assert!(!msg.contains('\n'), "{what}: an error message of more than one line: {msg:?}");
    assert!(!msg.is_empty(), "{what}: an empty error message");
}

/// Printed IR must parse back, verify, and print identically.
fn check_roundtrip(what: &str, m: &edgec_ir::Module) {
    let text = edgec_ir::printer::print_module(m);
    let back = edgec_ir::parser::parse_module(&text)
        .unwrap_or_else(|e| panic!("{what}: the printed IR does not parse back: {e}\n{text}"));
    if let Err(e) = edgec_ir::verify::verify_module(&back) {
        panic!("{what}: the printed IR parses back but does not verify: {e}\n{text}");
    }
    let again = edgec_ir::printer::print_module(&back);
    assert_eq!(text, again, "{what}: printing the parsed-back IR gives different text");
}

/// The `onnx` target: bytes are a model, optionally followed by [`EXTERNAL_DATA_SEPARATOR`] and
/// the contents of its external data file; imported through `Session::import` from a directory.
pub fn onnx_bytes(data: &[u8]) {
    let (model, side) = match find(data, EXTERNAL_DATA_SEPARATOR) {
        Some(i) => (&data[..i], Some(&data[i + EXTERNAL_DATA_SEPARATOR.len()..])),
        None => (data, None),
    };
    let dir = scratch_dir().join("onnx");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("model.onnx");
    std::fs::write(&path, model).expect("write the fuzz model");
    let data_path = dir.join(EXTERNAL_DATA_FILE);
    match side {
        Some(bytes) => std::fs::write(&data_path, bytes).expect("write the fuzz side file"),
        None => {
            let _ = std::fs::remove_file(&data_path);
        }
    }
    match edgec::Session::import(&path, &edgec::CompileOptions::default()) {
        Ok(session) => check_roundtrip("onnx", session.module()),
        Err(e) => {
            // A module the frontend built that does not verify is the frontend's bug, even though
            // the CLI reports it as exit 2.
            if let edgec::Error::Import(edgec::onnx::ImportError::Verify(v)) = &e {
                panic!("onnx: the frontend built IR that does not verify: {v}");
            }
            check_error("onnx", &e)
        }
    }
}

/// The `ir_text` target: bytes are an `.eir` file, parsed and verified as `Session::import`
/// does; what verifies must print, parse back and print the same.
pub fn ir_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let m = match edgec_ir::parser::parse_module(text) {
        Ok(m) => m,
        Err(e) => return check_error("ir_text parse", &edgec::Error::Ir(e)),
    };
    if let Err(e) = edgec_ir::verify::verify_module(&m) {
        return check_error("ir_text verify", &edgec::Error::Ir(e));
    }
    check_roundtrip("ir_text", &m);
}

/// The model the `tensor_file` target reads inputs for: two named inputs, so that both
/// name matching and positional matching (`.pb`) are exercised.
const TENSOR_FILE_MODEL: &str =
    "func @main(%x: tensor<2x3xf32>, %y: tensor<4xi64>) -> (\"r\": tensor<2x3xf32>) {\n  func.return %x\n}\n";

fn tensor_session() -> &'static edgec::Session {
    static S: OnceLock<edgec::Session> = OnceLock::new();
    S.get_or_init(|| {
        let m = edgec_ir::parser::parse_module(TENSOR_FILE_MODEL).expect("the tensor_file model parses");
        edgec::Session::from_module(m).expect("the tensor_file model verifies")
    })
}

/// The `tensor_file` target: bytes starting with `PK` (a zip archive) are an `.npz` file; any
/// other bytes are one `input_0.pb` TensorProto in a directory. Both go through
/// `Session::read_inputs`, and the `.pb` bytes also through `decode_tensor_proto` directly.
pub fn tensor_file(data: &[u8]) {
    let session = tensor_session();
    let dir = scratch_dir().join("tensors");
    let pb_dir = dir.join("pb");
    std::fs::create_dir_all(&pb_dir).expect("scratch dir");
    let path = if data.starts_with(b"PK") {
        let p = dir.join("inputs.npz");
        std::fs::write(&p, data).expect("write the fuzz .npz");
        p
    } else {
        std::fs::write(pb_dir.join("input_0.pb"), data).expect("write the fuzz .pb");
        if let Ok((_, t)) = edgec::onnx::decode_tensor_proto(data) {
            check_tensor("decode_tensor_proto", &t);
        }
        pb_dir.clone()
    };
    match session.read_inputs(&path) {
        Ok(ts) => ts.iter().for_each(|t| check_tensor("read_inputs", t)),
        Err(e) => check_error("tensor_file", &e),
    }
    // Also read every array of an archive, which `read_inputs` stops at on a name mismatch.
    if data.starts_with(b"PK") {
        match edgec::io::read_npz(&path) {
            Ok(arrays) => arrays.iter().for_each(|(_, t)| check_tensor("read_npz", t)),
            Err(e) => check_error("read_npz", &edgec::Error::Io(e)),
        }
    }
}

fn check_tensor(what: &str, t: &edgec_ir::Tensor) {
    let shape = t.shape();
    let n =
        if shape.contains(&0) { Some(0) } else { shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) };
    assert_eq!(n, Some(t.len()), "{what}: a tensor of shape {shape:?} holds {} elements", t.len());
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The targets by name, as the fuzz binaries and the regression test call them.
pub const TARGETS: &[(&str, fn(&[u8]))] =
    &[("onnx", onnx_bytes), ("ir_text", ir_text), ("tensor_file", tensor_file)];
