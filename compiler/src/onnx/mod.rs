//! The ONNX frontend: `model.onnx` (+ external data) → a verified graph-level IR [`Module`].
//!
//! ## Decoding
//! The protobuf messages are declared by hand in [`proto`] with `prost` derives and the field
//! numbers of `onnx.proto`. Why not a generated crate: `onnx-protobuf` (the `protobuf`-crate
//! binding) does not build against current `protobuf` 3.x without pinning an old version, and
//! there is no `protoc` on the build machines for `prost-build`. Declaring the ~15 messages we
//! read is short, has no build-time dependency, and lets `raw_data` be a `bytes::Bytes`: the
//! model file is memory-mapped, wrapped in `Bytes::from_owner`, and prost decodes every
//! `raw_data` field as a reference-counted slice of that map. Weights are therefore never
//! copied; a `ConstTensor` in the IR points straight into the file. External data files
//! (`data_location = EXTERNAL`) are memory-mapped once each and sliced the same way.
//!
//! ## Import
//! One IR function `@main`:
//! - parameters: the graph inputs that are not initializers, in order, named as in ONNX;
//! - initializers and `Constant` nodes: `builtin.constant` ops;
//! - nodes, sorted topologically, each mapped by a per-op-type table (`onnx/ops.rs`) onto one or a
//!   few IR ops, upgraded to the newest opset's form (attributes that older opsets had and that
//!   became operands are turned into constant operands, etc.); every op carries
//!   `loc("<node name>")`;
//! - `func.return` of the graph outputs, with their ONNX names as result names.
//!
//! Supported: default-domain opsets 11 to [`MAX_OPSET`] (older ones node by node, where the op
//! already had its opset-11 form), tensor-typed graph inputs and outputs of the IR's element types. Anything else (other
//! domains, control flow, sequences, string tensors, model-local functions) is an
//! [`ImportError`] naming the node and op. Errors are one line each; no input bytes make the
//! importer panic (the tests corrupt real models byte by byte).
//!
//! Result types come from the IR shape rules (the importer never computes shapes itself).
//! Pure ops whose operands are all compile-time constants and whose result is small are
//! evaluated on the spot and replaced by constants, so the `Shape → Gather → Concat →
//! Reshape` chains that exporters emit become static; ops left without uses are dropped at
//! the end. The module is verified before it is returned.

mod error;
mod import;
mod ops;
pub mod proto;
mod tensor;

#[cfg(test)]
mod tests;

pub use error::ImportError;
pub use import::{FOLD_MAX_ELEMENTS, MAX_OPSET, MIN_OPSET};
pub use tensor::{onnx_data_type, scalar_type};

use bytes::Bytes;
use edgec_ir::{Module, Tensor};
use prost::Message;
use std::collections::BTreeMap;
use std::path::Path;

/// Options of an import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Values for symbolic dims (`--dim seq=128`): every occurrence of the named dim in the
    /// graph inputs becomes static.
    pub dims: BTreeMap<String, u64>,
}

/// Imports an ONNX model file. External data files are resolved relative to its directory.
pub fn import_model(path: &Path, opts: &ImportOptions) -> Result<Module, ImportError> {
    let bytes =
        tensor::map_file(path).map_err(|message| ImportError::Io { path: path.to_path_buf(), message })?;
    let base = path.parent().unwrap_or(Path::new("."));
    import_model_bytes(bytes, Some(base), opts)
}

/// Number of nodes in the main graph of an ONNX file (for reports).
pub fn count_nodes(path: &Path) -> Result<usize, ImportError> {
    let bytes =
        tensor::map_file(path).map_err(|message| ImportError::Io { path: path.to_path_buf(), message })?;
    let model = proto::ModelProto::decode(bytes).map_err(decode_error)?;
    Ok(model.graph.map(|g| g.node.len()).unwrap_or(0))
}

/// Imports a serialized `ModelProto`. `base_dir` is where external data files are looked up;
/// without one, a model with external data is an error.
pub fn import_model_bytes(
    bytes: Bytes,
    base_dir: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Module, ImportError> {
    let model = proto::ModelProto::decode(bytes).map_err(decode_error)?;
    import::import(&model, base_dir, opts)
}

/// prost's message without its generic prefix (ours already says "malformed ONNX protobuf").
fn decode_error(e: prost::DecodeError) -> ImportError {
    let m = e.to_string();
    ImportError::Malformed(m.strip_prefix("failed to decode Protobuf message: ").unwrap_or(&m).to_string())
}

/// The ONNX op types (default domain) the frontend maps onto the IR.
pub fn supported_op_types() -> impl Iterator<Item = &'static str> {
    ops::supported_op_types()
}

/// Decodes a serialized `TensorProto` (the `input_N.pb` / `output_N.pb` files of ONNX backend
/// tests) into its name and value.
pub fn decode_tensor_proto(bytes: &[u8]) -> Result<(String, Tensor), ImportError> {
    let t = proto::TensorProto::decode(bytes).map_err(decode_error)?;
    let name = t.name.clone().unwrap_or_default();
    let bad = |message: String| ImportError::BadTensor { tensor: name.clone(), message };
    let c = tensor::const_tensor(&t, &mut tensor::ExternalData::new(None)).map_err(bad)?;
    let value = c.to_tensor().map_err(bad)?;
    Ok((name, value))
}
