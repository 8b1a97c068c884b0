//! Test-support code shared by the integration tests in `tests/` and the tools in `src/bin/`:
//! output comparison, the ONNX node-test harness, the model zoo, running the CLI, and the
//! filetest runner.

pub mod cli;
pub mod compare;
pub mod filetest;
pub mod fuzz;
pub mod node;
pub mod odd_graphs;
pub mod zoo;
