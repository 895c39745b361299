//! Witness files: `Witness` messages, each preceded by its length as a varint (the framing of
//! protobuf's `writeDelimitedTo` / `parseDelimitedFrom`), one after another, nothing else.
//!
//! [`WitnessWriter`] writes encoded records handed over in order, dropping a witness whose hash
//! was already written when deduplicating (the first one wins, so the result depends only on
//! the order, which the pipeline keeps deterministic). [`read_witnesses`] reads such a file, or
//! a protobuf text-format witness, back.

use std::io::{self, Write};

use rustc_hash::FxHashSet;

use crate::ir::{Digest, pb, text};

/// Writes length-delimited witnesses.
pub struct WitnessWriter<W: Write> {
    w: W,
    dedup: Option<FxHashSet<Digest>>,
    written: u64,
    duplicates: u64,
}

impl<W: Write> WitnessWriter<W> {
    /// A writer; with `dedup`, a witness whose hash was already written is dropped.
    pub fn new(w: W, dedup: bool) -> Self {
        WitnessWriter { w, dedup: dedup.then(FxHashSet::default), written: 0, duplicates: 0 }
    }

    /// Writes encoded records (each already length-prefixed) with their hashes, in order.
    pub fn write_batch(&mut self, batch: &[(Digest, &[u8])]) -> io::Result<()> {
        let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(batch.len());
        for (d, bytes) in batch {
            if let Some(seen) = &mut self.dedup
                && !seen.insert(*d)
            {
                self.duplicates += 1;
                continue;
            }
            self.written += 1;
            slices.push(io::IoSlice::new(bytes));
        }
        super::write_all_slices(&mut self.w, &mut slices)
    }

    /// Witnesses written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Witnesses dropped as duplicates so far.
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// Why a witness file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("byte {offset}: {msg}")]
    Binary { offset: usize, msg: String },
    #[error("{0}")]
    Text(#[from] text::TextError),
}

/// Reads the witnesses of a file: length-delimited messages, or one witness in protobuf text
/// format (taken when the bytes are UTF-8 text that starts like one).
pub fn read_witnesses(bytes: &[u8]) -> Result<Vec<pb::Witness>, ReadError> {
    if looks_like_text(bytes) {
        let s = std::str::from_utf8(bytes).expect("checked");
        return Ok(vec![text::parse::<pb::Witness>(s)?]);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let mut rest = &bytes[at..];
        let before = rest.len();
        let len = prost::encoding::decode_varint(&mut rest).map_err(|e| ReadError::Binary { offset: at, msg: e.to_string() })? as usize;
        let head = before - rest.len();
        if len > rest.len() {
            return Err(ReadError::Binary {
                offset: at,
                msg: format!("a witness of {len} bytes, only {} left (file cut short?)", rest.len()),
            });
        }
        let w = <pb::Witness as prost::Message>::decode(&rest[..len])
            .map_err(|e| ReadError::Binary { offset: at + head, msg: format!("not a witness: {e}") })?;
        out.push(w);
        at += head + len;
    }
    Ok(out)
}

/// Text format starts with a field name (or a comment) after optional whitespace; a binary
/// witness file starts with a varint length and then the tag byte 0x0a.
fn looks_like_text(b: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(b) else { return false };
    s.trim_start().starts_with(|c: char| c.is_ascii_alphabetic() || c == '#')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn witness(path: &str) -> pb::Witness {
        text::parse(&format!("method {{ meta {{ http {{ method: \"GET\" path_template: \"{path}\" }} }} }}")).unwrap()
    }

    #[test]
    fn round_trip_and_dedup() {
        let ws = [witness("/a"), witness("/b"), witness("/a")];
        let enc: Vec<(Digest, Vec<u8>)> = ws
            .iter()
            .map(|w| {
                let mut b = Vec::new();
                crate::ir::build::encode_delimited(w, &mut b);
                (crate::ir::digest(w), b)
            })
            .collect();
        let batch: Vec<(Digest, &[u8])> = enc.iter().map(|(d, b)| (*d, b.as_slice())).collect();
        let mut w = WitnessWriter::new(Vec::new(), true);
        w.write_batch(&batch).unwrap();
        assert_eq!((w.written(), w.duplicates()), (2, 1));
        let bytes = w.finish().unwrap();
        assert_eq!(read_witnesses(&bytes).unwrap(), ws[..2].to_vec());
        let mut w = WitnessWriter::new(Vec::new(), false);
        w.write_batch(&batch).unwrap();
        assert_eq!(read_witnesses(&w.finish().unwrap()).unwrap(), ws.to_vec());
        // Text format.
        assert_eq!(read_witnesses(text::to_text(&ws[0]).as_bytes()).unwrap(), vec![ws[0].clone()]);
        // Cut short.
        assert!(matches!(read_witnesses(&bytes[..bytes.len() - 1]), Err(ReadError::Binary { .. })));
        assert!(read_witnesses(b"").unwrap().is_empty());
    }
}
