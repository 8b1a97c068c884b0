//! Model inputs and outputs on disk, per the CLI contract:
//! - `.npz` archives (numpy): one array per graph input/output, named after it;
//! - a directory of ONNX `input_N.pb` / `output_N.pb` TensorProto files (the ONNX backend-test
//!   layout).
//!
//! `.npz` goes through `ndarray-npy`. It has no `float16` element, so f16 arrays use a small
//! newtype implementing its element traits. Element types numpy cannot hold (`bfloat16`, 4-bit)
//! are reported as errors when writing rather than silently widened; 4-bit values are written as
//! their 8-bit storage type, the convention of ONNX's own numpy helpers.

use crate::onnx::decode_tensor_proto;
use edgec_ir::{Function, ScalarType, Tensor};
use half::f16;
use ndarray::ArrayD;
use ndarray_npy::{
    NpzWriter, ReadDataError, ReadNpyError, ReadNpyExt, ReadableElement, WritableElement, WriteDataError,
};
use py_literal::Value as PyValue;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Errors reading or writing tensors; all are the user's input at fault except `Write`.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: cannot write: {message}")]
    Write { path: PathBuf, message: String },
    #[error("inputs {path}: {message}")]
    Mismatch { path: PathBuf, message: String },
}

fn read_err(path: &Path, message: impl std::fmt::Display) -> IoError {
    // Decoder messages can span lines (the .npy header parser's point at the error): join
    // them, so that the CLI's error stays one line (found by fuzzing).
    let message = message.to_string();
    let message = if message.contains(['\n', '\r']) {
        message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
    } else {
        message
    };
    IoError::Read { path: path.to_path_buf(), message }
}

/// An IEEE half-precision element for `ndarray-npy` (`<f2`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct NpyF16(f16);

impl ReadableElement for NpyF16 {
    fn read_to_end_exact_vec<R: Read>(
        mut reader: R,
        type_desc: &PyValue,
        len: usize,
    ) -> Result<Vec<Self>, ReadDataError> {
        let little = match type_desc {
            PyValue::String(s) if s == "<f2" || s == "f2" => true,
            PyValue::String(s) if s == ">f2" => false,
            _ => return Err(ReadDataError::WrongDescriptor(type_desc.clone())),
        };
        let mut bytes = vec![0u8; len.checked_mul(2).ok_or(ReadDataError::MissingData)?];
        reader.read_exact(&mut bytes).map_err(|_| ReadDataError::MissingData)?;
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).map_err(ReadDataError::Io)?;
        if !rest.is_empty() {
            return Err(ReadDataError::ExtraBytes(rest.len()));
        }
        Ok(bytes
            .chunks_exact(2)
            .map(|c| {
                let b = [c[0], c[1]];
                NpyF16(if little { f16::from_le_bytes(b) } else { f16::from_be_bytes(b) })
            })
            .collect())
    }
}

impl WritableElement for NpyF16 {
    fn type_descriptor() -> PyValue {
        PyValue::String("<f2".into())
    }
    fn write<W: Write>(&self, mut writer: W) -> Result<(), WriteDataError> {
        writer.write_all(&self.0.to_le_bytes()).map_err(WriteDataError::Io)
    }
    fn write_slice<W: Write>(slice: &[Self], mut writer: W) -> Result<(), WriteDataError> {
        for v in slice {
            writer.write_all(&v.0.to_le_bytes()).map_err(WriteDataError::Io)?;
        }
        Ok(())
    }
}

/// Reads every array of an `.npz` archive, in archive order.
///
/// Each entry is read into memory first and its `.npy` header checked against the bytes that are
/// really there before `ndarray-npy` decodes it: `ndarray-npy` allocates the element count the
/// header claims before reading any data, so a 100-byte archive claiming a 2^40-element array
/// would otherwise ask for terabytes (found by fuzzing).
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>, IoError> {
    let file = File::open(path).map_err(|e| read_err(path, e))?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| read_err(path, format!("not an .npz archive: {e}")))?;
    let mut out = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| read_err(path, format!("not an .npz archive: {e}")))?;
        let name = entry.name().to_string();
        // At most the size the archive declares; memory grows with the data actually
        // decompressed, never with a size field.
        let declared = entry.size();
        let mut bytes = Vec::new();
        (&mut entry)
            .take(declared)
            .read_to_end(&mut bytes)
            .map_err(|e| read_err(path, format!("array {name:?}: {e}")))?;
        let t = read_entry(&bytes).map_err(|m| read_err(path, format!("array {name:?}: {m}")))?;
        let name = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        out.push((name, t));
    }
    Ok(out)
}

/// Checks that an `.npy` file holds all the data its header describes (element count times element
/// size, with checked arithmetic); an error when the header is malformed or the data is short.
fn check_npy_size(npy: &[u8]) -> Result<(), String> {
    let bad = |m: &str| Err(format!("not a valid .npy array: {m}"));
    if npy.len() < 10 || &npy[..6] != b"\x93NUMPY" {
        return bad("no .npy magic");
    }
    let (header_len, start): (usize, usize) = match npy[6] {
        1 => (u16::from_le_bytes([npy[8], npy[9]]) as usize, 10),
        2 | 3 if npy.len() >= 12 => (u32::from_le_bytes([npy[8], npy[9], npy[10], npy[11]]) as usize, 12),
        _ => return bad("unknown format version"),
    };
    let Some(header) = npy.get(start..start.saturating_add(header_len)) else {
        return bad("truncated header");
    };
    let Ok(header) = std::str::from_utf8(header) else { return bad("header is not text") };
    let (descr, shape) = parse_npy_header(header).map_err(|m| format!("not a valid .npy array: {m}"))?;
    let item: u64 = match descr.trim_start_matches(['<', '>', '|', '=']).get(1..).and_then(|n| n.parse().ok())
    {
        Some(n) if n > 0 => n,
        _ => return bad("unknown element type"),
    };
    let mut elems: u64 = 1;
    for &d in &shape {
        elems = elems.checked_mul(d).ok_or("the shape's element count overflows")?;
    }
    let need = elems.checked_mul(item).ok_or("the shape's byte count overflows")?;
    let have = (npy.len() - start - header_len) as u64;
    if need > have {
        return Err(format!("shape {shape:?} needs {need} bytes of data but the array holds {have}"));
    }
    Ok(())
}

/// Parses the header dictionary numpy writes, `{'descr': '<f4', 'fortran_order': False, 'shape':
/// (2, 3), }` (keys in any order, any spacing), into the descriptor and the shape. Anything else
/// is rejected here, before `ndarray-npy` parses it: its general Python-literal parser takes
/// exponential time on some 300-byte headers (nested braces, long digit runs; found by fuzzing).
fn parse_npy_header(h: &str) -> Result<(String, Vec<u64>), String> {
    let b = h.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1
        }
    };
    let eat = |i: &mut usize, c: u8| -> Result<(), String> {
        ws(i);
        if b.get(*i) == Some(&c) {
            *i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` in the header at byte {}", c as char, *i))
        }
    };
    let string = |i: &mut usize| -> Result<String, String> {
        ws(i);
        let q = *b.get(*i).ok_or("the header ends early")?;
        if q != b'\'' && q != b'"' {
            return Err(format!("expected a string in the header at byte {}", *i));
        }
        let end = b[*i + 1..].iter().position(|&c| c == q).ok_or("unterminated string in the header")?;
        let v = h[*i + 1..*i + 1 + end].to_string();
        *i += end + 2;
        Ok(v)
    };
    let (mut descr, mut shape, mut seen_order) = (None, None, false);
    eat(&mut i, b'{')?;
    loop {
        ws(&mut i);
        if b.get(i) == Some(&b'}') {
            break;
        }
        let key = string(&mut i)?;
        eat(&mut i, b':')?;
        ws(&mut i);
        match key.as_str() {
            "descr" => descr = Some(string(&mut i)?),
            "fortran_order" if h[i..].starts_with("False") => (seen_order, i) = (true, i + 5),
            "fortran_order" if h[i..].starts_with("True") => (seen_order, i) = (true, i + 4),
            "shape" => {
                eat(&mut i, b'(')?;
                let mut dims = Vec::new();
                loop {
                    ws(&mut i);
                    if b.get(i) == Some(&b')') {
                        i += 1;
                        break;
                    }
                    let n = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
                    let d = h[i..i + n]
                        .parse::<u64>()
                        .map_err(|_| "a dimension is not a non-negative integer")?;
                    dims.push(d);
                    i += n;
                    ws(&mut i);
                    match b.get(i) {
                        Some(b',') => i += 1,
                        Some(b')') => {}
                        _ => return Err("expected `,` or `)` in the shape".into()),
                    }
                }
                shape = Some(dims);
            }
            _ => return Err(format!("unexpected header entry {key:?}")),
        }
        ws(&mut i);
        if b.get(i) == Some(&b',') {
            i += 1;
        }
    }
    match (descr, shape, seen_order) {
        (Some(d), Some(s), true) => Ok((d, s)),
        _ => Err("the header lacks 'descr', 'fortran_order' or 'shape'".into()),
    }
}

/// Decodes one `.npy` entry whatever its element type: try f32 first, and on a descriptor
/// mismatch dispatch on the descriptor `ndarray-npy` reports.
fn read_entry(npy: &[u8]) -> Result<Tensor, String> {
    check_npy_size(npy)?;
    let desc = match ArrayD::<f32>::read_npy(npy) {
        Ok(a) => return Ok(Tensor::F32(a)),
        Err(ReadNpyError::WrongDescriptor(d)) => d,
        Err(e) => return Err(e.to_string()),
    };
    let code = match &desc {
        PyValue::String(s) => s.trim_start_matches(['<', '|', '=']).to_string(),
        other => return Err(format!("unsupported array type {other}")),
    };
    fn get<T: ReadableElement>(npy: &[u8]) -> Result<ArrayD<T>, String> {
        ArrayD::<T>::read_npy(npy).map_err(|e| e.to_string())
    }
    Ok(match code.as_str() {
        "f8" => Tensor::F64(get(npy)?),
        "f2" => Tensor::F16(get::<NpyF16>(npy)?.mapv(|v| v.0)),
        "i8" => Tensor::I64(get(npy)?),
        "i4" => Tensor::I32(get(npy)?),
        "i2" => Tensor::I16(get(npy)?),
        "i1" => Tensor::I8(get(npy)?),
        "u8" => Tensor::U64(get(npy)?),
        "u4" => Tensor::U32(get(npy)?),
        "u2" => Tensor::U16(get(npy)?),
        "u1" => Tensor::U8(get(npy)?),
        "b1" => Tensor::Bool(get(npy)?),
        _ => return Err(format!("unsupported numpy dtype {desc}")),
    })
}

/// Writes arrays to an `.npz` archive. The archive is written to a temporary file next to
/// `path` and renamed, so a failure never leaves a half-written output.
pub fn write_npz(path: &Path, arrays: &[(String, Tensor)]) -> Result<(), IoError> {
    let werr = |m: String| IoError::Write { path: path.to_path_buf(), message: m };
    let tmp = path.with_extension("npz.partial");
    let file = File::create(&tmp).map_err(|e| werr(e.to_string()))?;
    let mut npz = NpzWriter::new(file);
    let result = (|| -> Result<(), String> {
        for (name, t) in arrays {
            let r = match t {
                Tensor::F32(a) => npz.add_array(name.as_str(), a),
                Tensor::F64(a) => npz.add_array(name.as_str(), a),
                Tensor::F16(a) => npz.add_array(name.as_str(), &a.mapv(NpyF16)),
                Tensor::I64(a) => npz.add_array(name.as_str(), a),
                Tensor::I32(a) => npz.add_array(name.as_str(), a),
                Tensor::I16(a) => npz.add_array(name.as_str(), a),
                Tensor::I8(a) | Tensor::I4(a) => npz.add_array(name.as_str(), a),
                Tensor::U64(a) => npz.add_array(name.as_str(), a),
                Tensor::U32(a) => npz.add_array(name.as_str(), a),
                Tensor::U16(a) => npz.add_array(name.as_str(), a),
                Tensor::U8(a) | Tensor::U4(a) => npz.add_array(name.as_str(), a),
                Tensor::Bool(a) => npz.add_array(name.as_str(), a),
                Tensor::BF16(_) => {
                    return Err(format!("output {name:?} is bfloat16, which .npz cannot hold"))
                }
            };
            r.map_err(|e| format!("array {name:?}: {e}"))?;
        }
        npz.finish().map_err(|e| e.to_string())?;
        Ok(())
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, path).map_err(|e| werr(e.to_string())),
        Err(m) => {
            let _ = std::fs::remove_file(&tmp);
            Err(werr(m))
        }
    }
}

/// Reads `prefix_N.pb` files (`input_0.pb`, `input_1.pb`, ...) from a directory, in N order.
pub fn read_pb_dir(dir: &Path, prefix: &str) -> Result<Vec<(String, Tensor)>, IoError> {
    let mut files = Vec::new();
    let rd = std::fs::read_dir(dir).map_err(|e| read_err(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| read_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(n) =
            name.strip_prefix(prefix).and_then(|r| r.strip_prefix('_')).and_then(|r| r.strip_suffix(".pb"))
        {
            if let Ok(n) = n.parse::<usize>() {
                files.push((n, entry.path()));
            }
        }
    }
    files.sort();
    for (i, (n, p)) in files.iter().enumerate() {
        if *n != i {
            return Err(read_err(p, format!("expected {prefix}_{i}.pb before this file")));
        }
    }
    files
        .into_iter()
        .map(|(_, p)| {
            let bytes = std::fs::read(&p).map_err(|e| read_err(&p, e))?;
            decode_tensor_proto(&bytes).map_err(|e| read_err(&p, e))
        })
        .collect()
}

/// Reads the inputs for `func` from an `.npz` file or an `input_N.pb` directory and orders
/// them like the function's parameters. `.npz` arrays are matched by name; `.pb` files by
/// name when every file is named after a parameter, else by position.
pub fn read_inputs(path: &Path, func: &Function) -> Result<Vec<Tensor>, IoError> {
    let mismatch = |m: String| IoError::Mismatch { path: path.to_path_buf(), message: m };
    let params: Vec<String> = func
        .params()
        .iter()
        .enumerate()
        .map(|(i, &p)| func.values[p].name.clone().unwrap_or_else(|| format!("input_{i}")))
        .collect();
    let (arrays, by_position_ok) =
        if path.is_dir() { (read_pb_dir(path, "input")?, true) } else { (read_npz(path)?, false) };
    let all_named = arrays.iter().all(|(n, _)| params.contains(n));
    if all_named && arrays.len() == params.len() {
        let mut out = Vec::with_capacity(params.len());
        for p in &params {
            let t = arrays.iter().find(|(n, _)| n == p).map(|(_, t)| t.clone());
            out.push(t.ok_or_else(|| mismatch(format!("no array for input {p:?}")))?);
        }
        return Ok(out);
    }
    if by_position_ok && arrays.len() == params.len() {
        return Ok(arrays.into_iter().map(|(_, t)| t).collect());
    }
    let missing: Vec<&String> = params.iter().filter(|p| !arrays.iter().any(|(n, _)| n == *p)).collect();
    let extra: Vec<&String> = arrays.iter().map(|(n, _)| n).filter(|n| !params.contains(n)).collect();
    Err(mismatch(format!("the model takes inputs {params:?}; missing {missing:?}, unexpected {extra:?}")))
}

/// Reads calibration samples for `func` from an `.npz` file: one array per graph input, named
/// after it, holding either one sample (the input's own rank) or a leading axis of samples (rank
/// + 1). Every input must have the same number of samples.
pub fn read_calibration(path: &Path, func: &Function) -> Result<Vec<Vec<Tensor>>, IoError> {
    let mismatch = |m: String| IoError::Mismatch { path: path.to_path_buf(), message: m };
    let arrays = read_npz(path)?;
    let mut per_input: Vec<Vec<Tensor>> = Vec::new();
    for (i, &p) in func.params().iter().enumerate() {
        let name = func.values[p].name.clone().unwrap_or_else(|| format!("input_{i}"));
        let ty = &func.values[p].ty;
        let t = arrays
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| mismatch(format!("no calibration array for input {name:?}")))?;
        let samples = if t.shape().len() == ty.rank() {
            vec![t.clone()]
        } else if t.shape().len() == ty.rank() + 1 {
            let n = t.shape()[0];
            let inner = &t.shape()[1..];
            let per = inner.iter().product::<usize>() * t.scalar_type().bits().div_ceil(8);
            let bytes = t.to_le_bytes();
            (0..n)
                .map(|k| Tensor::from_le_bytes(t.scalar_type(), inner, &bytes[k * per..(k + 1) * per]))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| mismatch(format!("input {name:?}: {e}")))?
        } else {
            return Err(mismatch(format!(
                "calibration array {name:?} has shape {:?}; expected the input's rank {} or a leading sample axis",
                t.shape(),
                ty.rank()
            )));
        };
        for s in &samples {
            edgec_ir::interp::check_value(ty, s).map_err(|m| mismatch(format!("input {name:?}: {m}")))?;
        }
        if let Some(first) = per_input.first() {
            if first.len() != samples.len() {
                return Err(mismatch(format!(
                    "input {name:?} has {} samples, the first input {}",
                    samples.len(),
                    first.len()
                )));
            }
        }
        per_input.push(samples);
    }
    let n = per_input.first().map_or(1, |v| v.len());
    if n == 0 {
        return Err(mismatch("calibration data has no samples".into()));
    }
    Ok((0..n).map(|k| per_input.iter().map(|v| v[k].clone()).collect()).collect())
}

/// Whether the element type can be written to `.npz`.
pub fn npz_can_hold(t: ScalarType) -> bool {
    t != ScalarType::BF16
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::IxDyn;

    #[test]
    fn npz_round_trip_all_types() {
        let dir = std::env::temp_dir().join(format!("edgec-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.npz");
        let mut arrays = Vec::new();
        for ty in ScalarType::ALL {
            if matches!(ty, ScalarType::BF16 | ScalarType::I4 | ScalarType::U4) {
                continue;
            }
            arrays.push((format!("a_{ty}"), Tensor::zeros(ty, &[2, 3])));
        }
        arrays.push(("h".into(), Tensor::F16(ArrayD::from_elem(IxDyn(&[2]), f16::from_f32(1.5)))));
        write_npz(&path, &arrays).unwrap();
        let back = read_npz(&path).unwrap();
        assert_eq!(back, arrays);
        assert!(write_npz(&path, &[("b".into(), Tensor::zeros(ScalarType::BF16, &[1]))]).is_err());
        // the failed write left the previous file intact
        assert_eq!(read_npz(&path).unwrap(), arrays);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Writes `contents` to `path` through a temporary file and a rename, so that a failure never
/// leaves a half-written output.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), IoError> {
    let tmp = path.with_file_name(format!(
        ".{}.partial",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    res.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        IoError::Write { path: path.to_path_buf(), message: e.to_string() }
    })
}
