//! Crate-wide error plumbing: each layer has its own `thiserror` type; the CLI maps them to one line and exit 2.
