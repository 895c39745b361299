//! Bounded reassembly of IP fragments.
//!
//! Contract: [`Defragmenter::push`] takes one [`Fragment`] and returns the datagram's whole
//! payload once every piece is there. Memory is capped by [`DefragLimits`]: datagrams in
//! flight, bytes held, and an age in capture time. A datagram dropped for a cap or its age is
//! counted, never silently lost. Overlapping pieces keep the bytes seen first.

use crate::capture::Ts;

use super::Fragment;

/// Caps on fragment reassembly.
#[derive(Clone, Copy, Debug)]
pub struct DefragLimits {
    /// Datagrams being reassembled at once; the oldest is dropped past it.
    pub max_datagrams: usize,
    /// Bytes held in all partial datagrams; the oldest are dropped past it.
    pub max_bytes: usize,
    /// A partial datagram older than this (capture time, ns) is dropped.
    pub timeout_ns: i64,
}

impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits { max_datagrams: 1024, max_bytes: 4 << 20, timeout_ns: 30_000_000_000 }
    }
}

/// Counters of fragment reassembly.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct DefragStats {
    pub fragments: u64,
    pub reassembled: u64,
    /// Partial datagrams given up (cap, age, or end of capture).
    pub dropped: u64,
    /// Pieces that would make a datagram larger than 65535 bytes or that overlapped with
    /// different bytes.
    pub bad: u64,
}

#[derive(Debug)]
struct Partial {
    src: [u8; 16],
    dst: [u8; 16],
    v6: bool,
    id: u32,
    protocol: u8,
    first_ts: Ts,
    /// Payload bytes, indexed by offset; `have` says which are filled.
    data: Vec<u8>,
    /// Filled ranges, sorted and merged.
    have: Vec<(u32, u32)>,
    /// Total length, known once the last piece came.
    total: Option<u32>,
}

impl Partial {
    fn matches(&self, f: &Fragment<'_>) -> bool {
        self.id == f.id && self.protocol == f.protocol && self.v6 == f.v6 && self.src == f.src && self.dst == f.dst
    }

    fn complete(&self) -> bool {
        matches!((self.total, self.have.first()), (Some(t), Some(&(0, end))) if end >= t && self.have.len() == 1)
    }

    /// Adds a piece; returns false when it was inconsistent.
    fn add(&mut self, offset: u32, piece: &[u8], more: bool) -> bool {
        let end = offset as usize + piece.len();
        if end > 65_535 {
            return false;
        }
        if !more {
            self.total = Some(end as u32);
        }
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        // Copy only the bytes not filled yet (first seen wins).
        let mut cursor = offset;
        let end = end as u32;
        let mut i = 0;
        while cursor < end {
            let next_have = self.have.get(i).copied();
            match next_have {
                Some((_, e)) if e <= cursor => {
                    i += 1;
                    continue;
                }
                Some((s, e)) if s <= cursor => {
                    cursor = e.min(end);
                    i += 1;
                }
                Some((s, _)) => {
                    let stop = s.min(end);
                    let from = (cursor - offset) as usize;
                    let to = (stop - offset) as usize;
                    self.data[cursor as usize..stop as usize].copy_from_slice(&piece[from..to]);
                    cursor = stop;
                }
                None => {
                    let from = (cursor - offset) as usize;
                    self.data[cursor as usize..end as usize].copy_from_slice(&piece[from..]);
                    cursor = end;
                }
            }
        }
        // Merge the new range into `have`.
        self.have.push((offset, end));
        self.have.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(self.have.len());
        for &(s, e) in &self.have {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.have = merged;
        true
    }
}

/// Reassembles IP datagrams from their fragments, within caps.
#[derive(Debug, Default)]
pub struct Defragmenter {
    limits: DefragLimits,
    partials: Vec<Partial>,
    bytes: usize,
    pub stats: DefragStats,
}

impl Defragmenter {
    pub fn new(limits: DefragLimits) -> Defragmenter {
        Defragmenter { limits, ..Default::default() }
    }

    /// Adds a fragment seen at `ts`; returns the datagram's payload when complete.
    pub fn push(&mut self, ts: Ts, f: &Fragment<'_>) -> Option<Vec<u8>> {
        self.stats.fragments += 1;
        self.expire(ts);
        let idx = match self.partials.iter().position(|p| p.matches(f)) {
            Some(i) => i,
            None => {
                if self.partials.len() >= self.limits.max_datagrams.max(1) {
                    self.drop_oldest();
                }
                self.partials.push(Partial {
                    src: f.src,
                    dst: f.dst,
                    v6: f.v6,
                    id: f.id,
                    protocol: f.protocol,
                    first_ts: ts,
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                });
                self.partials.len() - 1
            }
        };
        let before = self.partials[idx].data.len();
        if !self.partials[idx].add(f.offset, f.data, f.more) {
            self.stats.bad += 1;
            return None;
        }
        self.bytes += self.partials[idx].data.len() - before;
        if self.partials[idx].complete() {
            let p = self.partials.swap_remove(idx);
            self.bytes -= p.data.len();
            self.stats.reassembled += 1;
            let mut data = p.data;
            data.truncate(p.total.unwrap_or(0) as usize);
            return Some(data);
        }
        while self.bytes > self.limits.max_bytes && !self.partials.is_empty() {
            self.drop_oldest();
        }
        None
    }

    fn drop_oldest(&mut self) {
        if let Some((i, _)) = self.partials.iter().enumerate().min_by_key(|(_, p)| p.first_ts) {
            let p = self.partials.swap_remove(i);
            self.bytes -= p.data.len();
            self.stats.dropped += 1;
        }
    }

    /// Drops partial datagrams older than the timeout at `now`.
    pub fn expire(&mut self, now: Ts) {
        let limit = self.limits.timeout_ns;
        let before = self.partials.len();
        let mut freed = 0;
        self.partials.retain(|p| {
            let keep = now.0.saturating_sub(p.first_ts.0) <= limit;
            if !keep {
                freed += p.data.len();
            }
            keep
        });
        self.bytes -= freed;
        self.stats.dropped += (before - self.partials.len()) as u64;
    }

    /// Gives up every partial datagram (end of capture).
    pub fn finish(&mut self) {
        self.stats.dropped += self.partials.len() as u64;
        self.partials.clear();
        self.bytes = 0;
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(id: u32, offset: u32, more: bool, data: &[u8]) -> Fragment<'_> {
        Fragment { src: [1; 16], dst: [2; 16], v6: false, id, protocol: 6, offset, more, data }
    }

    #[test]
    fn reassembles_in_any_order_and_first_bytes_win() {
        let payload: Vec<u8> = (0..40u8).collect();
        let pieces = [(0u32, 16usize), (16, 32), (32, 40)];
        let orders = [[0, 1, 2], [2, 1, 0], [1, 2, 0], [2, 0, 1]];
        for order in orders {
            let mut d = Defragmenter::new(DefragLimits::default());
            let mut out = None;
            for &i in &order {
                let (s, e) = pieces[i];
                let r = d.push(Ts(0), &frag(9, s, e != 40, &payload[s as usize..e]));
                if r.is_some() {
                    out = r;
                }
            }
            assert_eq!(out.as_deref(), Some(&payload[..]), "order {order:?}");
            assert_eq!(d.held_bytes(), 0);
        }
        // Overlap: the later piece's different bytes are ignored.
        let mut d = Defragmenter::new(DefragLimits::default());
        assert!(d.push(Ts(0), &frag(1, 0, true, &[1; 16])).is_none());
        assert!(d.push(Ts(0), &frag(1, 8, true, &[2; 16])).is_none());
        let out = d.push(Ts(0), &frag(1, 24, false, &[3; 8])).unwrap();
        assert_eq!(&out[..16], &[1; 16]);
        assert_eq!(&out[16..24], &[2; 8]);
    }

    #[test]
    fn caps_and_age_drop_and_count() {
        let limits = DefragLimits { max_datagrams: 2, max_bytes: 1000, timeout_ns: 10 };
        let mut d = Defragmenter::new(limits);
        for id in 0..5 {
            d.push(Ts(0), &frag(id, 0, true, &[0; 8]));
        }
        assert_eq!(d.stats.dropped, 3);
        d.push(Ts(100), &frag(77, 0, true, &[0; 8]));
        assert_eq!(d.stats.dropped, 5);
        d.push(Ts(100), &frag(78, 0, true, &[0; 2000]));
        assert!(d.held_bytes() <= 1000);
        assert!(d.push(Ts(100), &frag(79, 65_530, false, &[0; 100])).is_none());
        assert_eq!(d.stats.bad, 1);
    }

    #[test]
    fn expiring_at_extreme_times_does_not_overflow() {
        let mut d = Defragmenter::new(DefragLimits::default());
        assert!(d.push(Ts(i64::MIN), &frag(1, 0, true, &[0; 8])).is_none());
        d.expire(Ts(i64::MAX));
        assert_eq!(d.stats.dropped, 1);
    }
}
