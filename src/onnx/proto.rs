//! The ONNX IR message types, generated at build time by `prost-build` from `proto/onnx.proto` (build.rs).
#![allow(clippy::all, missing_docs, rustdoc::all)]
include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
