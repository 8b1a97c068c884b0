//! AFL target `tensor_file`: `edgec_testsuite::fuzz::tensor_file` (the harness lives in the test-suite library so
//! that the regression test replays the corpus through the same code).

#[path = "../../../src/fuzz.rs"]
#[allow(dead_code)]
mod fuzz;

#[global_allocator]
static ALLOC: fuzz::CappedAlloc = fuzz::CappedAlloc;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        fuzz::tensor_file(data);
    });
}
