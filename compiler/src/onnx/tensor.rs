//! `TensorProto` → [`ConstTensor`]: element types, the typed data fields, raw little-endian
//! bytes (kept as a zero-copy slice of the model buffer) and external data files (memory-mapped
//! once per file and sliced).

use super::proto::{data_location, data_type, TensorProto};
use bytes::Bytes;
use edgec_ir::{ConstTensor, ScalarType, TensorType};
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// The IR scalar type of an ONNX `DataType`, or a message naming the unsupported type.
pub fn scalar_type(dt: i32) -> Result<ScalarType, String> {
    use data_type as d;
    Ok(match dt {
        d::FLOAT => ScalarType::F32,
        d::UINT8 => ScalarType::U8,
        d::INT8 => ScalarType::I8,
        d::UINT16 => ScalarType::U16,
        d::INT16 => ScalarType::I16,
        d::INT32 => ScalarType::I32,
        d::INT64 => ScalarType::I64,
        d::BOOL => ScalarType::Bool,
        d::FLOAT16 => ScalarType::F16,
        d::DOUBLE => ScalarType::F64,
        d::UINT32 => ScalarType::U32,
        d::UINT64 => ScalarType::U64,
        d::BFLOAT16 => ScalarType::BF16,
        d::UINT4 => ScalarType::U4,
        d::INT4 => ScalarType::I4,
        d::UNDEFINED => return Err("data type is UNDEFINED".into()),
        other => return Err(format!("unsupported data type {}", data_type::name(other))),
    })
}

/// The ONNX `DataType` of an IR scalar type.
pub fn onnx_data_type(t: ScalarType) -> i32 {
    use data_type as d;
    match t {
        ScalarType::F32 => d::FLOAT,
        ScalarType::F16 => d::FLOAT16,
        ScalarType::BF16 => d::BFLOAT16,
        ScalarType::F64 => d::DOUBLE,
        ScalarType::I64 => d::INT64,
        ScalarType::I32 => d::INT32,
        ScalarType::I16 => d::INT16,
        ScalarType::I8 => d::INT8,
        ScalarType::U64 => d::UINT64,
        ScalarType::U32 => d::UINT32,
        ScalarType::U16 => d::UINT16,
        ScalarType::U8 => d::UINT8,
        ScalarType::I4 => d::INT4,
        ScalarType::U4 => d::UINT4,
        ScalarType::Bool => d::BOOL,
    }
}

/// Validated dims: non-negative, with a total element count and byte size that fit in `u64`.
pub fn checked_dims(dims: &[i64], elem: ScalarType) -> Result<(Vec<u64>, u64, u64), String> {
    let mut out = Vec::with_capacity(dims.len());
    let mut n: u64 = 1;
    for &d in dims {
        let d = u64::try_from(d).map_err(|_| format!("negative dim {d} in {dims:?}"))?;
        n = n.checked_mul(d).ok_or_else(|| format!("dims {dims:?} overflow the element count"))?;
        out.push(d);
    }
    let bits =
        n.checked_mul(elem.bits() as u64).ok_or_else(|| format!("dims {dims:?} overflow the byte size"))?;
    Ok((out, n, bits.div_ceil(8)))
}

/// Memory-maps external data files on first use and hands out slices of them.
#[derive(Default)]
pub struct ExternalData {
    /// The directory of the model file; external paths are relative to it. `None` when the
    /// model was not loaded from a file, in which case external data is an error.
    base_dir: Option<PathBuf>,
    /// Canonical base directory (computed lazily), used to reject paths escaping it.
    canonical_base: Option<PathBuf>,
    files: HashMap<PathBuf, Bytes>,
}

impl ExternalData {
    pub fn new(base_dir: Option<&Path>) -> Self {
        ExternalData {
            base_dir: base_dir.map(Path::to_path_buf),
            canonical_base: None,
            files: HashMap::new(),
        }
    }

    /// The bytes `[offset, offset + length)` of `location` (to the end of the file when
    /// `length` is `None`).
    fn slice(&mut self, location: &str, offset: u64, length: Option<u64>) -> Result<Bytes, String> {
        let Some(base) = &self.base_dir else {
            return Err(format!(
                "data is stored in external file {location:?} but the model was not loaded from a file"
            ));
        };
        let rel = Path::new(location);
        // Only plain relative paths below the model directory: an absolute path or `..` would
        // let a model read arbitrary files of the machine compiling it.
        if location.is_empty()
            || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "external data location {location:?} is not a relative path inside the model directory"
            ));
        }
        let full = base.join(rel);
        let canonical = full
            .canonicalize()
            .map_err(|e| format!("external data file {} is missing: {e}", full.display()))?;
        if self.canonical_base.is_none() {
            let b = if base.as_os_str().is_empty() { Path::new(".") } else { base.as_path() };
            self.canonical_base = Some(
                b.canonicalize()
                    .map_err(|e| format!("cannot resolve model directory {}: {e}", b.display()))?,
            );
        }
        let cbase = self.canonical_base.as_ref().expect("set above");
        if !canonical.starts_with(cbase) {
            return Err(format!("external data location {location:?} resolves outside the model directory"));
        }
        let data = match self.files.get(&canonical) {
            Some(b) => b.clone(),
            None => {
                let b = map_file(&canonical)?;
                self.files.insert(canonical.clone(), b.clone());
                b
            }
        };
        let file_len = data.len() as u64;
        let end = match length {
            Some(l) => offset.checked_add(l).ok_or("external data offset + length overflows")?,
            None => file_len,
        };
        if offset > file_len || end > file_len {
            return Err(format!(
                "external data range {offset}..{end} is outside file {} ({file_len} bytes)",
                full.display()
            ));
        }
        Ok(data.slice(offset as usize..end as usize))
    }
}

/// Maps a whole file read-only into memory as `Bytes` (zero-copy slices from then on).
pub fn map_file(path: &Path) -> Result<Bytes, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| format!("cannot stat {}: {e}", path.display()))?.len();
    if len == 0 {
        // mmap of an empty file fails on Linux; there is nothing to map anyway.
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only. Like every mmap-based loader we assume the file is not
    // truncated or rewritten while the compiler runs (that would be a SIGBUS, not UB in Rust
    // terms that we could guard against).
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| format!("cannot map {}: {e}", path.display()))?;
    Ok(Bytes::from_owner(map))
}

/// Decodes a `TensorProto` into a constant. `ext` resolves external data.
pub fn const_tensor(t: &TensorProto, ext: &mut ExternalData) -> Result<ConstTensor, String> {
    let elem = scalar_type(t.data_type.unwrap_or(0))?;
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let (dims, n, nbytes) = checked_dims(&t.dims, elem)?;
    let ty = TensorType::new(dims.iter().map(|&d| d.into()).collect(), elem);
    let bytes = if t.data_location.unwrap_or(data_location::DEFAULT) == data_location::EXTERNAL {
        let mut location = None;
        let mut offset = 0u64;
        let mut length = None;
        for e in &t.external_data {
            let v = e.value.as_deref().unwrap_or("");
            match e.key.as_deref().unwrap_or("") {
                "location" => location = Some(v),
                "offset" => {
                    offset = v.parse().map_err(|_| format!("external data offset {v:?} is not a number"))?
                }
                "length" => {
                    length =
                        Some(v.parse().map_err(|_| format!("external data length {v:?} is not a number"))?)
                }
                _ => {} // "checksum" and unknown keys carry no layout information
            }
        }
        let location = location.ok_or("external data without a location")?;
        ext.slice(location, offset, length)?
    } else if let Some(data_location) = t.data_location.filter(|&l| l != data_location::DEFAULT) {
        return Err(format!("unknown data_location {data_location}"));
    } else if let Some(raw) = t.raw_data.as_ref().filter(|r| !r.is_empty() || typed_len(t) == 0) {
        raw.clone()
    } else {
        Bytes::from(typed_bytes(t, elem, n)?)
    };
    if bytes.len() as u64 != nbytes {
        return Err(format!(
            "data has {} bytes but dims {:?} of {} need {nbytes}",
            bytes.len(),
            t.dims,
            elem
        ));
    }
    Ok(ConstTensor { ty, bytes })
}

fn typed_len(t: &TensorProto) -> usize {
    t.float_data.len()
        + t.int32_data.len()
        + t.int64_data.len()
        + t.double_data.len()
        + t.uint64_data.len()
        + t.string_data.len()
}

/// Little-endian bytes from the typed data fields, per ONNX's storage rules.
fn typed_bytes(t: &TensorProto, elem: ScalarType, n: u64) -> Result<Vec<u8>, String> {
    fn count<T>(v: &[T], n: u64, field: &str) -> Result<(), String> {
        if v.len() as u64 != n {
            return Err(format!("{field} has {} elements but the dims need {n}", v.len()));
        }
        Ok(())
    }
    let mut out = Vec::new();
    match elem {
        ScalarType::F32 => {
            count(&t.float_data, n, "float_data")?;
            t.float_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        ScalarType::F64 => {
            count(&t.double_data, n, "double_data")?;
            t.double_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        ScalarType::I64 => {
            count(&t.int64_data, n, "int64_data")?;
            t.int64_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        ScalarType::U64 => {
            count(&t.uint64_data, n, "uint64_data")?;
            t.uint64_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        ScalarType::U32 => {
            count(&t.uint64_data, n, "uint64_data")?;
            t.uint64_data.iter().for_each(|&v| out.extend_from_slice(&(v as u32).to_le_bytes()));
        }
        // 32-, 16- and 8-bit types (and f16/bf16 as their bit patterns) use one int32 each.
        ScalarType::I32 => {
            count(&t.int32_data, n, "int32_data")?;
            t.int32_data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
        }
        ScalarType::I16 | ScalarType::U16 | ScalarType::F16 | ScalarType::BF16 => {
            count(&t.int32_data, n, "int32_data")?;
            t.int32_data.iter().for_each(|&v| out.extend_from_slice(&(v as u16).to_le_bytes()));
        }
        ScalarType::I8 | ScalarType::U8 => {
            count(&t.int32_data, n, "int32_data")?;
            t.int32_data.iter().for_each(|&v| out.push(v as u8));
        }
        ScalarType::Bool => {
            count(&t.int32_data, n, "int32_data")?;
            t.int32_data.iter().for_each(|&v| out.push((v != 0) as u8));
        }
        ScalarType::I4 | ScalarType::U4 => {
            // Current ONNX packs two 4-bit values per int32 entry (low nibble first); older
            // writers stored one value per entry. The entry count tells which.
            let packed = n.div_ceil(2);
            if t.int32_data.len() as u64 == packed {
                t.int32_data.iter().for_each(|&v| out.push(v as u8));
            } else if t.int32_data.len() as u64 == n {
                for pair in t.int32_data.chunks(2) {
                    let lo = pair[0] as u8 & 0xf;
                    let hi = pair.get(1).map_or(0, |&v| v as u8 & 0xf);
                    out.push(lo | hi << 4);
                }
            } else {
                return Err(format!(
                    "int32_data has {} entries but {n} 4-bit elements need {packed}",
                    t.int32_data.len()
                ));
            }
        }
    }
    Ok(out)
}
