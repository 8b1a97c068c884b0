//! Int8 post-training quantization of every zoo model, checked against the float reference
//! (`ref.npz`, ONNX Runtime's fp32 outputs) on the interpreter, the host and Cortex-M7:
//! cosine similarity ≥ 0.99 and SNR ≥ 20 dB per output (issue 6's bar).
//!
//! Calibration samples are not the test input: each is the test input with its elements
//! shuffled (a deterministic permutation per sample and input), so it has the input's value
//! distribution (latents, token ids, timesteps) but different contents.

use edgec::{Calibration, CompileOptions, Quantize, Session, Target};
use edgec_ir::Tensor;
use edgec_passes::quant::Int8Options;
use edgec_testsuite::zoo::{discover, run_on_targets, zoo_dir, ZooModel};

const SAMPLES: usize = 4;
const MIN_COS: f64 = 0.99;
const MIN_SNR_DB: f64 = 20.0;
const TARGETS: &[&str] = &["interp", "host", "cortex-m7"];
/// Code memory of the mps2-an500 board.
const M7_FLASH: u64 = 4 << 20;

/// A deterministic shuffle of `t`'s elements.
fn shuffled(t: &Tensor, seed: u64) -> Tensor {
    let v = t.to_f64_vec();
    let mut idx: Vec<usize> = (0..v.len()).collect();
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in (1..idx.len()).rev() {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        idx.swap(i, (s % (i as u64 + 1)) as usize);
    }
    let out: Vec<f64> = idx.iter().map(|&i| v[i]).collect();
    Tensor::from_f64(t.scalar_type(), t.shape(), &out).unwrap()
}

/// (cosine similarity, SNR in dB) of `out` against `reference`.
fn accuracy(reference: &Tensor, out: &Tensor) -> (f64, f64) {
    let (r, o) = (reference.to_f64_vec(), out.to_f64_vec());
    let dot: f64 = r.iter().zip(&o).map(|(a, b)| a * b).sum();
    let nr: f64 = r.iter().map(|a| a * a).sum();
    let no: f64 = o.iter().map(|a| a * a).sum();
    let err: f64 = r.iter().zip(&o).map(|(a, b)| (a - b) * (a - b)).sum();
    let cos = if nr == 0.0 && no == 0.0 { 1.0 } else { dot / (nr.sqrt() * no.sqrt()) };
    let snr = if err == 0.0 { f64::INFINITY } else { 10.0 * (nr / err).log10() };
    (cos, snr)
}

/// The calibration samples of a model's test inputs.
fn calibration_of(inputs: &[Tensor]) -> Vec<Vec<Tensor>> {
    (0..SAMPLES)
        .map(|s| inputs.iter().enumerate().map(|(i, t)| shuffled(t, (s * 31 + i + 1) as u64)).collect())
        .collect()
}

fn check(m: &ZooModel, target: &str) -> Result<String, String> {
    let mut session =
        Session::import(m.model(), &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
    let inputs = session.read_inputs(m.inputs()).map_err(|e| format!("inputs: {e}"))?;
    let calibration = calibration_of(&inputs);
    session.set_quantize(Quantize::Int8 {
        calibration: Calibration::Samples(calibration),
        options: Int8Options::default(),
    });
    let reference = edgec::io::read_npz(&m.reference()).map_err(|e| format!("reference: {e}"))?;
    let (outputs, note) = if target == "interp" {
        (session.run(inputs).map_err(|e| format!("interpreter: {e}"))?, String::new())
    } else {
        let t = Target::parse(target).map_err(|e| e.to_string())?;
        let c = session.compile(&t, "model", false).map_err(|e| format!("compile: {e}"))?;
        let weights = c.program.weights_bytes();
        if target == "cortex-m7" && weights + c.object.len() as u64 / 4 > M7_FLASH {
            return Ok(format!("skip (weights {weights} bytes exceed the board's flash)"));
        }
        let q = c.quantization.clone().unwrap_or_default();
        let note = format!("int8 layers {} float {}", q["int8_layers"], q["float_layers"]);
        (session.execute(&c, &inputs).map_err(|e| format!("execute: {e}"))?.0, note)
    };
    let mut msg = Vec::new();
    for (name, out) in session.output_names().iter().zip(&outputs) {
        let r = &reference.iter().find(|(n, _)| n == name).ok_or(format!("no reference for {name:?}"))?.1;
        let (cos, snr) = accuracy(r, out);
        if !(cos >= MIN_COS && snr >= MIN_SNR_DB) {
            return Err(format!("output {name:?}: cos {cos:.5} snr {snr:.2} dB"));
        }
        msg.push(format!("{name}: cos {cos:.5} snr {snr:.1} dB"));
    }
    Ok(format!("{} {note}", msg.join(", ")))
}

#[test]
fn int8_zoo_models_stay_close_to_the_float_reference() {
    let models = discover(&zoo_dir());
    assert!(models.len() >= 7, "only {} zoo models", models.len());
    let failures = run_on_targets(&models, TARGETS, check);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// ONNX Runtime's `quantize_static` (QDQ, per-channel int8 weights, int8 activations, MinMax)
/// on the same model and calibration samples is the accuracy anchor: edgec's int8 output must
/// be at least as close to the float reference, per output, in SNR (0.1 dB slack for the
/// printing of the numbers) and cosine similarity.
#[test]
fn int8_is_at_least_as_good_as_onnxruntime_quantize_static() {
    let models = discover(&zoo_dir());
    let script = zoo_dir().join("../scripts/ort_quantize.py");
    let tmp = std::env::temp_dir().join(format!("edgec-ort-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let failures = run_on_targets(&models, &["interp"], |m, _| {
        let mut session =
            Session::import(m.model(), &CompileOptions::default()).map_err(|e| format!("import: {e}"))?;
        let inputs = session.read_inputs(m.inputs()).map_err(|e| format!("inputs: {e}"))?;
        let calibration = calibration_of(&inputs);
        // The same samples for ONNX Runtime, stacked along a leading axis.
        let stacked: Vec<(String, Tensor)> = session
            .input_names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let t0 = &calibration[0][i];
                let bytes: Vec<u8> = calibration.iter().flat_map(|s| s[i].to_le_bytes()).collect();
                let mut shape = vec![SAMPLES];
                shape.extend(t0.shape());
                (name, Tensor::from_le_bytes(t0.scalar_type(), &shape, &bytes).unwrap())
            })
            .collect();
        let calib = tmp.join(format!("{}.npz", m.name));
        edgec::io::write_npz(&calib, &stacked).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args([m.model(), calib, m.inputs(), m.reference()])
            .output()
            .map_err(|e| format!("python3: {e}"))?;
        let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_string();
        let ort: serde_json::Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line:?}"))?;
        if let Some(e) = ort.get("error") {
            return Err(format!("ONNX Runtime's quantize_static failed: {e}"));
        }
        session.set_quantize(Quantize::Int8 {
            calibration: Calibration::Samples(calibration),
            options: Int8Options::default(),
        });
        let reference = edgec::io::read_npz(&m.reference()).map_err(|e| format!("reference: {e}"))?;
        let outputs = session.run(inputs).map_err(|e| format!("interpreter: {e}"))?;
        let mut msg = Vec::new();
        for (name, out) in session.output_names().iter().zip(&outputs) {
            let r = &reference.iter().find(|(n, _)| n == name).ok_or(format!("no reference for {name:?}"))?.1;
            let (cos, snr) = accuracy(r, out);
            let (ocos, osnr) = (
                ort[name]["cos"].as_f64().unwrap_or(f64::NAN),
                ort[name]["snr_db"].as_f64().unwrap_or(f64::NAN),
            );
            if !(snr >= osnr - 0.1 && cos >= ocos - 1e-5) {
                return Err(format!("output {name:?}: edgec cos {cos:.5} snr {snr:.2} dB < ORT cos {ocos:.5} snr {osnr:.2} dB"));
            }
            msg.push(format!(
                "{name}: edgec snr {snr:.1} dB cos {cos:.5}, ORT snr {osnr:.1} dB cos {ocos:.5}"
            ));
        }
        Ok(msg.join(", "))
    });
    std::fs::remove_dir_all(&tmp).ok();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
