//! Test-support code shared by the integration tests in `tests/`.

pub mod filetest;
