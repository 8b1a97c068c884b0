//! The model compiled by build.rs, called through its generated wrapper, computes what the
//! interpreter computes on the zoo's inputs.

use edgec::{CompileOptions, Session};
use edgec_example_cargo_model::vae;
use std::path::Path;

fn zoo(file: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../zoo/vae_mlp").join(file)
}

#[test]
fn wrapper_runs_the_model_like_the_interpreter() {
    let session = Session::import(zoo("model.onnx"), &CompileOptions::default()).expect("import");
    let inputs = session.read_inputs(zoo("inputs.npz")).expect("inputs");
    let reference = session.run(inputs.clone()).expect("interpreter")[0].to_f64_vec();

    let z: Vec<f64> = inputs[0].to_f64_vec();
    let mut typed = vae::Inputs::zeroed();
    assert_eq!(z.len(), typed.z.len() * typed.z[0].len(), "the wrapper's input shape");
    for (row, chunk) in typed.z.iter_mut().zip(z.chunks(16)) {
        for (x, v) in row.iter_mut().zip(chunk) {
            *x = *v as f32;
        }
    }
    let mut model = vae::take().expect("the static arena, first use");
    assert!(vae::take().is_none(), "the static arena is handed out once");
    let outputs = model.run(&typed).expect("run");
    let got: Vec<f64> = outputs.x.iter().flatten().map(|&v| f64::from(v)).collect();
    assert_eq!(got.len(), reference.len());
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    assert!(worst <= 1e-4 * scale, "max abs error {worst:e} vs max |reference| {scale:e}");

    // The same model on an arena of the caller's, run again: the same outputs.
    let mut arena = vae::Arena::new();
    let mut again = vae::Model::new(&mut arena).expect("init");
    let mut second = vae::Outputs::zeroed();
    again.run_into(&typed, &mut second).expect("run_into");
    assert_eq!(second, outputs);
    assert_eq!(core::mem::size_of::<vae::Arena>() % vae::ARENA_ALIGN, 0);
    assert!(core::mem::size_of::<vae::Arena>() >= vae::ARENA_BYTES);
}
