//! The ONNX frontend: signatures only until the frontend branch lands.
use std::collections::BTreeMap;
use std::path::Path;
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct ImportError;
#[derive(Default, Clone, Debug)]
pub struct ImportOptions { pub dims: BTreeMap<String, u64> }
pub fn import_model(_p: &Path, _o: &ImportOptions) -> Result<edgec_ir::Module, ImportError> { Err(ImportError) }
pub fn decode_tensor_proto(_b: &[u8]) -> Result<(String, edgec_ir::Tensor), ImportError> { Err(ImportError) }
