//! The witness IR: protobuf types, their hash, text format and a visitor.
pub mod hash;
pub mod pb;
pub mod text;
