//! Generates the ONNX protobuf message types (`onnx.rs` in OUT_DIR) from `proto/onnx.proto` (see proto/README.md).
//! `protox` parses the .proto in Rust, so building needs no `protoc` binary.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let descriptors = protox::compile(["proto/onnx.proto"], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
