//! AFL target `onnx`: `edgec_testsuite::fuzz::onnx_bytes` (the harness lives in the test-suite library so
//! that the regression test replays the corpus through the same code).

#[path = "../../../src/fuzz.rs"]
#[allow(dead_code)]
mod fuzz;

#[global_allocator]
static ALLOC: fuzz::CappedAlloc = fuzz::CappedAlloc;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        fuzz::onnx_bytes(data);
    });
}
