//! Streaming writers of the results: HAR 1.2 entries and their envelope, length-delimited
//! witnesses, and the filter that picks the exchanges written.

pub mod filter;
pub mod har;
pub mod json;
pub mod multipart;
pub mod time;
pub mod witness;

use std::io::{self, IoSlice, Write};

/// Writes every slice with vectored writes of at most `IOV_MAX` (1024) slices each.
pub(crate) fn write_all_slices(w: &mut impl Write, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut rest = slices;
    while !rest.is_empty() {
        let take = rest.len().min(1024);
        let n = w.write_vectored(&rest[..take])?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}
