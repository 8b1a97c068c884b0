//! Int8 post-training quantization of every zoo model, checked against the float reference
//! (`ref.npz`, ONNX Runtime's fp32 outputs) on the interpreter, the host and Cortex-M7:
//! cosine similarity ≥ 0.99 and SNR ≥ 20 dB per output (issue 6's bar); the compiled int8
//! models' arenas must stay within 2% of their lower bound.
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
        let p = c.program.as_ref().ok_or("no kernel program")?;
        let weights = p.weights_bytes();
        if target == "cortex-m7"
            && weights + c.file("model.o").unwrap_or_default().len() as u64 / 4 > M7_FLASH
        {
            return Ok(format!("skip (weights {weights} bytes exceed the board's flash)"));
        }
        let q = c.report.get("quantization").cloned().unwrap_or_default();
        // Issue 5's bar holds for int8 too: the arena within 2% of the schedule's lower bound.
        let (arena, bound) = (p.arena.arena_bytes, p.arena.lower_bound_bytes);
        if arena as f64 > 1.02 * bound as f64 {
            return Err(format!("arena {arena} bytes > 1.02 x lower bound {bound}"));
        }
        let note = format!(
            "int8 layers {} float {}, arena {arena} (bound {bound})",
            q["int8_layers"], q["float_layers"]
        );
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

/// One q.conv_transpose of the bit-exactness test: input `[N, C, D...]`, `m` output channels,
/// kernel, strides, pads (begin then end), dilations, output padding, bias, activation range,
/// per-tensor (not per-channel) weights.
struct QConvT {
    x: Vec<usize>,
    m: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    pads: Vec<usize>,
    dilations: Vec<usize>,
    output_padding: Vec<usize>,
    bias: bool,
    act: Option<(i32, i32)>,
    per_tensor: bool,
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn dims(shape: &[usize]) -> String {
    shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

fn ints(v: &[usize]) -> String {
    format!("[{}]", v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
}

/// A module with one int8 input and one q.conv_transpose per case (constant per-channel or
/// per-tensor weights, i32 bias), and random int8 inputs for it.
fn qconvt_module(cases: &[QConvT]) -> (String, Vec<Tensor>) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut params, mut results, mut body, mut rets, mut inputs) = (vec![], vec![], vec![], vec![], vec![]);
    let mut v = 0;
    for (i, c) in cases.iter().enumerate() {
        let nd = c.kernel.len();
        let (s_x, zp_x) = (0.02 + 0.01 * i as f64, rng.range(-20, 20));
        let xty = format!("tensor<{}x!q.uniform<i8:f32, {s_x}, {zp_x}>>", dims(&c.x));
        params.push(format!("%x{i}: {xty}"));
        let xn: usize = c.x.iter().product();
        let xv: Vec<i8> = (0..xn).map(|_| rng.range(-128, 127) as i8).collect();
        inputs.push(
            Tensor::from_f64(
                edgec_ir::ScalarType::I8,
                &c.x,
                &xv.iter().map(|&b| b as f64).collect::<Vec<_>>(),
            )
            .unwrap(),
        );
        let mut wshape = vec![c.x[1], c.m];
        wshape.extend(&c.kernel);
        let wn: usize = wshape.iter().product();
        let w: Vec<u8> = (0..wn).map(|_| rng.range(-127, 127) as i8 as u8).collect();
        let scales: Vec<f64> = (0..c.m).map(|_| 0.001 + rng.range(0, 1000) as f64 * 2e-6).collect();
        let wq = if c.per_tensor {
            format!("!q.uniform<i8:f32, {}, 0>", scales[0])
        } else {
            let s: Vec<String> = scales.iter().map(|s| format!("{s}:0")).collect();
            format!("!q.uniform<i8:f32:1, {{{}}}>", s.join(", "))
        };
        let wty = format!("tensor<{}x{wq}>", dims(&wshape));
        body.push(format!(
            "  %{v} = builtin.constant {{value = dense<0x{}> : {wty}}} : {wty} loc(unknown)",
            hex(&w)
        ));
        let wv = v;
        v += 1;
        let mut operands = format!("%x{i}, %{wv}");
        if c.bias {
            let b: Vec<u8> =
                (0..c.m).flat_map(|_| (rng.range(-20_000, 20_000) as i32).to_le_bytes()).collect();
            let bty = format!("tensor<{}xi32>", c.m);
            body.push(format!(
                "  %{v} = builtin.constant {{value = dense<0x{}> : {bty}}} : {bty} loc(unknown)",
                hex(&b)
            ));
            operands += &format!(", %{v}");
            v += 1;
        }
        let mut out = vec![c.x[0], c.m];
        for d in 0..nd {
            out.push(
                (c.x[2 + d] - 1) * c.strides[d]
                    + (c.kernel[d] - 1) * c.dilations[d]
                    + 1
                    + c.output_padding[d]
                    - c.pads[d]
                    - c.pads[nd + d],
            );
        }
        // An output scale that spreads typical accumulators over int8 (and saturates some).
        let s_y = s_x * scales[0] * 40.0 * ((c.x[1] * c.kernel.iter().product::<usize>()) as f64).sqrt();
        let zp_y = rng.range(-30, 30);
        let act = c.act.map(|(lo, hi)| format!("act_max = {hi}, act_min = {lo}, ")).unwrap_or_default();
        let yty = format!("tensor<{}x!q.uniform<i8:f32, {s_y}, {zp_y}>>", dims(&out));
        body.push(format!(
            "  %{v} = q.conv_transpose {operands} {{{act}dilations = {}, group = 1, kernel_shape = {}, output_padding = {}, pads = {}, scale = {s_y}, strides = {}, zero_point = {zp_y}}} : {yty} loc(\"ct{i}\")",
            ints(&c.dilations),
            ints(&c.kernel),
            ints(&c.output_padding),
            ints(&c.pads),
            ints(&c.strides)
        ));
        results.push(format!("\"y{i}\": {yty}"));
        rets.push(format!("%{v}"));
        v += 1;
    }
    let text = format!(
        "func @main({}) -> ({}) {{\n{}\n  func.return {} loc(unknown)\n}}\n",
        params.join(", "),
        results.join(", "),
        body.join("\n"),
        rets.join(", ")
    );
    (text, inputs)
}

#[test]
fn q_conv_transpose_is_bit_exact_with_the_interpreter() {
    let c = |x: &[usize], m, k: &[usize], s: &[usize], p: &[usize]| QConvT {
        x: x.to_vec(),
        m,
        kernel: k.to_vec(),
        strides: s.to_vec(),
        pads: p.to_vec(),
        dilations: vec![1; k.len()],
        output_padding: vec![0; k.len()],
        bias: true,
        act: None,
        per_tensor: false,
    };
    let cases = vec![
        // DCGAN's layers: a 1×1 latent, then stride 2 with pad 1.
        c(&[2, 16, 1, 1], 12, &[4, 4], &[1, 1], &[0, 0, 0, 0]),
        c(&[2, 12, 4, 4], 7, &[4, 4], &[2, 2], &[1, 1, 1, 1]),
        // K (input channels) not a multiple of 4, odd kernel, asymmetric pads, output padding.
        QConvT {
            output_padding: vec![1, 2],
            bias: false,
            ..c(&[1, 37, 3, 5], 5, &[3, 3], &[2, 3], &[0, 1, 2, 0])
        },
        // Dilation and a clamped activation range, per-tensor weights.
        QConvT {
            dilations: vec![2, 1],
            act: Some((-100, 90)),
            per_tensor: true,
            ..c(&[1, 6, 5, 4], 3, &[3, 2], &[1, 1], &[1, 0, 0, 1])
        },
        // 1-D, pads larger than the stride (border regions on both sides).
        c(&[2, 9, 7], 4, &[5], &[2], &[3, 2]),
    ];
    let (text, inputs) = qconvt_module(&cases);
    let module = edgec_ir::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let session = Session::from_module(module).unwrap();
    let want = session.run(inputs.clone()).unwrap();
    for target in ["host", "cortex-m7"] {
        let t = Target::parse(target).unwrap();
        let compiled = session.compile(&t, "model", false).unwrap_or_else(|e| panic!("{target}: {e}"));
        let (got, _) = session.execute(&compiled, &inputs).unwrap_or_else(|e| panic!("{target}: {e}"));
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.shape(), g.shape(), "{target}: case {i}");
            let (wv, gv) = (w.to_f64_vec(), g.to_f64_vec());
            let bad: Vec<usize> = (0..wv.len()).filter(|&j| wv[j] != gv[j]).collect();
            assert!(
                bad.is_empty(),
                "{target}: case {i}: {} of {} elements differ, first at {}: {} vs {}",
                bad.len(),
                wv.len(),
                bad[0],
                gv[bad[0]],
                wv[bad[0]]
            );
            // The outputs are not degenerate: several values, some saturated.
            let distinct: std::collections::BTreeSet<i64> = wv.iter().map(|&x| x as i64).collect();
            assert!(distinct.len() > 10, "case {i}: only {} distinct outputs", distinct.len());
        }
        println!("{target}: {} q.conv_transpose cases bit-exact", cases.len());
    }
}

#[test]
fn q_quantize_and_dequantize_are_bit_exact_with_the_interpreter() {
    // Halves (round half away from zero), values past the int8 range and past i32, infinities,
    // NaN, negative zero, and a spread of ordinary values.
    let mut vals: Vec<f32> = vec![
        0.0,
        -0.0,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
        3e9,
        -3e9,
        2147483648.0,
        -2147483648.0,
        1e-30,
    ];
    for h in -300..300 {
        vals.push(h as f32 * 0.025 + 0.0125); // exact halves of the scale below
        vals.push(h as f32 * 0.0173);
    }
    while vals.len() % 16 != 5 {
        vals.push(0.7);
    }
    let n = vals.len();
    let mut results = Vec::new();
    let mut body = Vec::new();
    for (i, (scale, zp)) in [(0.025, 0), (0.025, -128), (0.0173, 127), (0.31, -7)].into_iter().enumerate() {
        let qty = format!("tensor<{n}x!q.uniform<i8:f32, {scale}, {zp}>>");
        body.push(format!(
            "  %{} = q.quantize %x {{scale = {scale}, zero_point = {zp}}} : {qty} loc(\"q{i}\")",
            2 * i
        ));
        body.push(format!("  %{} = q.dequantize %{} : tensor<{n}xf32> loc(\"dq{i}\")", 2 * i + 1, 2 * i));
        results.push((format!("\"q{i}\": {qty}"), format!("%{}", 2 * i)));
        results.push((format!("\"dq{i}\": tensor<{n}xf32>"), format!("%{}", 2 * i + 1)));
    }
    let text = format!(
        "func @main(%x: tensor<{n}xf32>) -> ({}) {{\n{}\n  func.return {} loc(unknown)\n}}\n",
        results.iter().map(|r| r.0.clone()).collect::<Vec<_>>().join(", "),
        body.join("\n"),
        results.iter().map(|r| r.1.clone()).collect::<Vec<_>>().join(", ")
    );
    let module = edgec_ir::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let session = Session::from_module(module).unwrap();
    let inputs = vec![Tensor::from_f64(
        edgec_ir::ScalarType::F32,
        &[n],
        &vals.iter().map(|&v| v as f64).collect::<Vec<_>>(),
    )
    .unwrap()];
    let want = session.run(inputs.clone()).unwrap();
    for target in ["host", "cortex-m7"] {
        let t = Target::parse(target).unwrap();
        let compiled = session.compile(&t, "model", false).unwrap_or_else(|e| panic!("{target}: {e}"));
        let (got, _) = session.execute(&compiled, &inputs).unwrap_or_else(|e| panic!("{target}: {e}"));
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            let (wb, gb) = (w.to_le_bytes(), g.to_le_bytes());
            let bad = wb.iter().zip(&gb).position(|(a, b)| a != b);
            assert!(bad.is_none() && wb.len() == gb.len(), "{target}: output {i} differs at byte {bad:?}");
        }
    }
}

/// A table that is both a `q.gather` lookup and a `q.fully_connected` weight (a tied LM head and
/// its token embedding) is stored once, in the int8 GEMM's packed layout, and the lookup reads
/// rows from the panels. N = 100 rows leave a partial last panel on every target and K = 38 a
/// partial last k group; the lookups hit the first and last rows and negative indices. The same
/// weights also feed a layer that writes f32 (`dequantize = 1`) with a fused residual add.
#[test]
fn tied_int8_table_is_stored_once_and_looked_up_in_packed_form() {
    let (n, k, rows) = (100usize, 38usize, 3usize);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let w: Vec<u8> = (0..n * k).map(|_| rng.range(-127, 127) as i8 as u8).collect();
    // f32 scales, as quantized files store them (the per-row scale table is f32).
    let scales: Vec<String> =
        (0..n).map(|_| format!("{}:0", (0.002 + rng.range(0, 1000) as f64 * 1e-5) as f32 as f64)).collect();
    let wty = format!("tensor<{n}x{k}x!q.uniform<i8:f32:0, {{{}}}>>", scales.join(", "));
    let (s_x, zp_x, s_y, zp_y) = (0.05, 3, 0.375, -5);
    let xty = format!("tensor<{rows}x{k}x!q.uniform<i8:f32, {s_x}, {zp_x}>>");
    let yty = format!("tensor<{rows}x{n}x!q.uniform<i8:f32, {s_y}, {zp_y}>>");
    let ids = [0i64, 99, -1, 42, -100, 7, 63, 64];
    let text = format!(
        "func @main(%x: {xty}, %ids: tensor<{}xi64>, %r: tensor<{rows}x{n}xf32>) -> (\"y\": {yty}, \"e\": tensor<{}x{k}xf32>, \"z\": tensor<{rows}x{n}xf32>) {{\n\
         \x20 %0 = builtin.constant {{value = dense<0x{}> : {wty}}} : {wty} loc(unknown)\n\
         \x20 %1 = q.fully_connected %x, %0 {{scale = {s_y}, zero_point = {zp_y}}} : {yty} loc(\"head\")\n\
         \x20 %2 = q.gather %0, %ids : tensor<{}x{k}xf32> loc(\"embed\")\n\
         \x20 %3 = q.fully_connected %x, %0 {{dequantize = 1, scale = {s_y}, zero_point = {zp_y}}} : tensor<{rows}x{n}xf32> loc(\"head_f32\")\n\
         \x20 %4 = math.add %3, %r : tensor<{rows}x{n}xf32> loc(\"residual\")\n\
         \x20 func.return %1, %2, %4 loc(unknown)\n}}\n",
        ids.len(),
        ids.len(),
        hex(&w),
        ids.len()
    );
    let module = edgec_ir::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let session = Session::from_module(module).unwrap();
    let xv: Vec<f64> = (0..rows * k).map(|_| rng.range(-128, 127) as f64).collect();
    let inputs = vec![
        Tensor::from_f64(edgec_ir::ScalarType::I8, &[rows, k], &xv).unwrap(),
        Tensor::from_f64(edgec_ir::ScalarType::I64, &[ids.len()], &ids.map(|i| i as f64)).unwrap(),
        Tensor::from_f64(
            edgec_ir::ScalarType::F32,
            &[rows, n],
            &(0..rows * n).map(|i| (i % 7) as f64 * 0.25).collect::<Vec<_>>(),
        )
        .unwrap(),
    ];
    // The dequantized layer is the anchor of a fused kernel with the add as its epilogue.
    let optimized = edgec_ir::printer::print_module(&session.optimize().unwrap().module);
    assert!(optimized.contains("fully_connected+add"), "{optimized}");
    let want = session.run(inputs.clone()).unwrap();
    for target in ["host", "cortex-m7", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"] {
        let t = Target::parse(target).unwrap();
        let compiled = session.compile(&t, "model", false).unwrap_or_else(|e| panic!("{target}: {e}"));
        // One packed copy (panels padded to the tile, plus int32 sums per row), not two.
        let weights = compiled.program.as_ref().unwrap().weights_bytes() as usize;
        assert!(weights < 2 * n * k, "{target}: {weights} bytes of weights for a {n}x{k} table");
        let (got, _) = session.execute(&compiled, &inputs).unwrap_or_else(|e| panic!("{target}: {e}"));
        for (name, w, g) in [("y", &want[0], &got[0]), ("e", &want[1], &got[1]), ("z", &want[2], &got[2])] {
            assert_eq!(w.to_f64_vec(), g.to_f64_vec(), "{target}: {name} differs from the interpreter");
        }
        println!("{target}: tied table in {weights} bytes ({} unpacked), lookups and head bit-exact", n * k);
    }
}

/// The two forms int8 post-training quantization gives the layers of a transformer MLP, on every
/// target against the interpreter: a 256-entry `q.lookup` between two int8 layers (300 elements:
/// whole 64-byte vectors where the target has byte permutes, then a tail), and a
/// `q.fully_connected` without output quantization (f32 `acc · scale_x · scale_w[c]`, with
/// bias, per-channel scales and a fused residual add on the int8 GEMM; with run-time weights in
/// loops).
#[test]
fn lookup_tables_and_real_valued_layers_are_bit_exact_with_the_interpreter() {
    let (n, k, rows) = (100usize, 38usize, 3usize);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let w: Vec<u8> = (0..n * k).map(|_| rng.range(-127, 127) as i8 as u8).collect();
    let scales: Vec<String> =
        (0..n).map(|_| format!("{}:0", (0.002 + rng.range(0, 1000) as f64 * 1e-5) as f32 as f64)).collect();
    let wty = format!("tensor<{n}x{k}x!q.uniform<i8:f32:0, {{{}}}>>", scales.join(", "));
    let bias: Vec<u8> = (0..n).flat_map(|_| (rng.range(-5000, 5000) as i32).to_le_bytes()).collect();
    let table: Vec<u8> = (0..256).map(|_| rng.range(-128, 127) as i8 as u8).collect();
    let (s_x, zp_x, s_y, zp_y, s_l, zp_l) = (0.05, 3, 0.375, -5, 0.125, 17);
    let xty = format!("tensor<{rows}x{k}x!q.uniform<i8:f32, {s_x}, {zp_x}>>");
    let yty = format!("tensor<{rows}x{n}x!q.uniform<i8:f32, {s_y}, {zp_y}>>");
    let lty = format!("tensor<{rows}x{n}x!q.uniform<i8:f32, {s_l}, {zp_l}>>");
    let text = format!(
        "func @main(%x: {xty}, %r: tensor<{rows}x{n}xf32>, %w: {wty}) -> (\"l\": {lty}, \"z\": tensor<{rows}x{n}xf32>, \"v\": tensor<{rows}x{n}xf32>) {{\n\
         \x20 %0 = builtin.constant {{value = dense<0x{}> : {wty}}} : {wty} loc(unknown)\n\
         \x20 %1 = builtin.constant {{value = dense<0x{}> : tensor<{n}xi32>}} : tensor<{n}xi32> loc(unknown)\n\
         \x20 %2 = builtin.constant {{value = dense<0x{}> : tensor<256xi8>}} : tensor<256xi8> loc(unknown)\n\
         \x20 %3 = q.fully_connected %x, %0, %1 {{scale = {s_y}, zero_point = {zp_y}}} : {yty} loc(\"fc\")\n\
         \x20 %4 = q.lookup %3, %2 {{scale = {s_l}, zero_point = {zp_l}}} : {lty} loc(\"act\")\n\
         \x20 %5 = q.fully_connected %x, %0, %1 : tensor<{rows}x{n}xf32> loc(\"fc_real\")\n\
         \x20 %6 = math.add %5, %r : tensor<{rows}x{n}xf32> loc(\"residual\")\n\
         \x20 %7 = q.fully_connected %x, %w, %1 : tensor<{rows}x{n}xf32> loc(\"fc_real_loops\")\n\
         \x20 func.return %4, %6, %7 loc(unknown)\n}}\n",
        hex(&w),
        hex(&bias),
        hex(&table),
    );
    let module = edgec_ir::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let session = Session::from_module(module).unwrap();
    let xv: Vec<f64> = (0..rows * k).map(|_| rng.range(-128, 127) as f64).collect();
    let inputs = vec![
        Tensor::from_f64(edgec_ir::ScalarType::I8, &[rows, k], &xv).unwrap(),
        Tensor::from_f64(
            edgec_ir::ScalarType::F32,
            &[rows, n],
            &(0..rows * n).map(|i| (i % 7) as f64 * 0.25 - 0.5).collect::<Vec<_>>(),
        )
        .unwrap(),
        // Run-time weights: the layer compiles to loops instead of the int8 GEMM.
        Tensor::from_f64(
            edgec_ir::ScalarType::I8,
            &[n, k],
            &w.iter().map(|&b| b as i8 as f64).collect::<Vec<_>>(),
        )
        .unwrap(),
    ];
    let optimized = edgec_ir::printer::print_module(&session.optimize().unwrap().module);
    assert!(optimized.contains("fully_connected+add"), "{optimized}");
    let want = session.run(inputs.clone()).unwrap();
    // The interpreter's real-valued layer is the accumulator times the f32 scale product.
    let z = want[1].to_f64_vec();
    assert!(z.iter().any(|v| v.fract() != 0.0 && v.abs() > 1.0), "{z:?}");
    for target in ["host", "cortex-m7", "aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu"] {
        let t = Target::parse(target).unwrap();
        let compiled = session.compile(&t, "model", false).unwrap_or_else(|e| panic!("{target}: {e}"));
        let (got, _) = session.execute(&compiled, &inputs).unwrap_or_else(|e| panic!("{target}: {e}"));
        for (name, w, g) in [("l", &want[0], &got[0]), ("z", &want[1], &got[1]), ("v", &want[2], &got[2])] {
            assert_eq!(w.to_f64_vec(), g.to_f64_vec(), "{target}: {name} differs from the interpreter");
        }
        println!("{target}: lookup and real-valued layers (GEMM and loops) bit-exact");
    }
}

/// Post-training quantization of `matmul → tanh → matmul → tanh`: the first tanh, between two
/// int8 layers, becomes a `q.lookup` (listed in the report with its SQNR), the last layer writes
/// f32 without output quantization, and the result stays close to the float function.
#[test]
fn ptq_forms_lookup_tables_between_int8_layers() {
    let (rows, k, h, n) = (8usize, 32usize, 48usize, 16usize);
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut mat = |r: usize, c: usize| -> String {
        let v: Vec<String> = (0..r * c).map(|_| format!("{}", rng.range(-100, 100) as f32 / 400.0)).collect();
        format!("dense<[{}]> : tensor<{r}x{c}xf32>", v.join(", "))
    };
    let (w1, w2) = (mat(k, h), mat(h, n));
    let text = format!(
        "func @main(%x: tensor<{rows}x{k}xf32>) -> (\"y\": tensor<{rows}x{n}xf32>) {{\n\
         \x20 %0 = builtin.constant {{value = {w1}}} : tensor<{k}x{h}xf32> loc(unknown)\n\
         \x20 %1 = builtin.constant {{value = {w2}}} : tensor<{h}x{n}xf32> loc(unknown)\n\
         \x20 %2 = nn.matmul %x, %0 : tensor<{rows}x{h}xf32> loc(\"fc1\")\n\
         \x20 %3 = math.tanh %2 : tensor<{rows}x{h}xf32> loc(\"act1\")\n\
         \x20 %4 = nn.matmul %3, %1 : tensor<{rows}x{n}xf32> loc(\"fc2\")\n\
         \x20 %5 = math.tanh %4 : tensor<{rows}x{n}xf32> loc(\"act2\")\n\
         \x20 func.return %5 loc(unknown)\n}}\n"
    );
    let module = edgec_ir::parser::parse_module(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let float = Session::from_module(module.clone()).unwrap();
    let mut session = Session::from_module(module).unwrap();
    let sample = |rng: &mut Rng| {
        let v: Vec<f64> = (0..rows * k).map(|_| rng.range(-200, 200) as f64 / 100.0).collect();
        Tensor::from_f64(edgec_ir::ScalarType::F32, &[rows, k], &v).unwrap()
    };
    let calibration: Vec<Vec<Tensor>> = (0..4).map(|_| vec![sample(&mut rng)]).collect();
    session.set_quantize(Quantize::Int8 {
        calibration: Calibration::Samples(calibration),
        options: Int8Options::default(),
    });
    let o = session.optimize().unwrap();
    let text = edgec_ir::printer::print_module(&o.module);
    assert_eq!(text.matches("q.lookup").count(), 1, "{text}");
    assert_eq!(text.matches("math.tanh").count(), 1, "{text}");
    let real = |l: &&str| l.contains("q.fully_connected") && l.contains("xf32>") && !l.contains("scale =");
    assert_eq!(text.lines().filter(real).count(), 1, "{text}");
    assert!(!text.contains("dequantize = 1"), "{text}");
    let report = o.quantization.unwrap();
    let lut = report.layers.iter().find(|l| l.op == "q.lookup(math.tanh)").expect("the table is reported");
    assert!(lut.int8 && lut.sqnr_db >= 20.0, "{lut:?}");
    let x = vec![sample(&mut rng)];
    let (want, got) = (float.run(x.clone()).unwrap(), session.run(x.clone()).unwrap());
    let (cos, snr) = accuracy(&want[0], &got[0]);
    assert!(cos >= 0.999 && snr >= 25.0, "cos {cos} snr {snr}");
    // The integer part is exact; the last tanh is the backend's float tanh (within an ulp or so).
    let host = session.compile(&Target::parse("host").unwrap(), "model", false).unwrap();
    let h = session.execute(&host, &x).unwrap().0[0].to_f64_vec();
    let worst = h.iter().zip(got[0].to_f64_vec()).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(worst <= 1e-6, "host differs from the interpreter by {worst}");
}
