//! The line format the text-based targets share, so seed files stay readable:
//! each line is `tag:value` (a tag of one or more ASCII letters); other lines are ignored.
#![allow(dead_code)]

/// `(tag, value)` of every `tag:value` line; the value is raw bytes (may be non-UTF-8).
pub fn tagged_lines(data: &[u8]) -> Vec<(&str, &[u8])> {
    data.split(|&b| b == b'\n')
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let tag = std::str::from_utf8(&line[..colon]).ok()?;
            if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphabetic()) {
                return None;
            }
            Some((tag, &line[colon + 1..]))
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), for chunk sizes and choices.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
