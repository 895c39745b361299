//! Streaming writers of the results: HAR 1.2 entries and their envelope, length-delimited
//! witnesses, and the filter that picks the exchanges written.

pub mod filter;
pub mod har;
pub mod json;
pub mod multipart;
pub mod time;
pub mod witness;
