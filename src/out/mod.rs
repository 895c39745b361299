//! Streaming writers of the results: HAR 1.2 entries and their envelope.

pub mod har;
pub mod json;
pub mod multipart;
pub mod time;
