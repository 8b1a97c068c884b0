//! Parser for the text form written by `printer.rs`.

use crate::error::IrError;
use crate::module::Module;

/// Parses a module in the text form.
pub fn parse_module(_src: &str) -> Result<Module, IrError> {
    Err(IrError::Parse { line: 1, col: 1, message: "parser not implemented yet".into() })
}
