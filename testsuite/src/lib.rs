//! Test-support code shared by the integration tests in `tests/` and the tools in `src/bin/`:
//! output comparison, the ONNX node-test harness, the model zoo and running the CLI.

pub mod cli;
pub mod compare;
pub mod node;
pub mod zoo;
