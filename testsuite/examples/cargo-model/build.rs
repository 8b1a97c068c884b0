fn main() -> Result<(), edgec::build::Error> {
    edgec::build::Model::new("../../zoo/vae_mlp/model.onnx").name("vae").target_from_cargo().compile()?;
    Ok(())
}
