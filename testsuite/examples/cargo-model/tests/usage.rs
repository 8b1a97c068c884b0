//! The usage docs/user-guide.md shows (between the `guide:` markers; the guide's test keeps the
//! two equal), run as a test in a process of its own: the static arena is handed out once.

#[test]
fn guide_usage() {
    // guide: cargo-usage
    use edgec_example_cargo_model::vae;

    let mut model = vae::take().expect("the static arena, first use");
    let mut inputs = vae::Inputs::zeroed(); // inputs.z: [[f32; 16]; 4]
    inputs.z[0][0] = 1.0;
    let outputs = model.run(&inputs).expect("run"); // outputs.x: [[f32; 784]; 4]
    let first_image: &[f32; 784] = &outputs.x[0];
    // guide: end
    assert!(first_image.iter().all(|v| v.is_finite() && *v != 0.0), "{first_image:?}");
    assert_ne!(outputs.x[0], outputs.x[1], "a different latent, the same image");
}
