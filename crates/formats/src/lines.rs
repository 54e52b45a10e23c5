//! Bounded line reading for the line formats (`.rec`, CSV, the friends file): a line longer
//! than the limit is skipped to its end, never held.

use crate::item::Position;
use std::io::{self, BufRead};

/// One line read.
pub(crate) enum Line<'a> {
    /// The line's bytes without its `\n` (and a `\r` before it), and where it starts.
    Text(Position, &'a [u8]),
    /// A line longer than the limit, skipped.
    TooLong(Position),
}

pub(crate) struct Lines<R> {
    input: R,
    offset: u64,
    line: u64,
    buf: Vec<u8>,
    limit: usize,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(input: R, limit: usize) -> Lines<R> {
        Lines {
            input,
            offset: 0,
            line: 1,
            buf: Vec::new(),
            limit,
        }
    }

    /// Where the next line starts.
    pub(crate) fn position(&self) -> Position {
        Position {
            offset: self.offset,
            line: self.line,
        }
    }

    /// The next line, `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        let at = self.position();
        self.buf.clear();
        let mut too_long = false;
        let mut seen = false;
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                if !seen {
                    return Ok(None);
                }
                break;
            }
            seen = true;
            let (n, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                if self.buf.len() + n > self.limit + 2 {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..n]);
                }
            }
            self.input.consume(n);
            self.offset += n as u64;
            if end {
                self.line += 1;
                break;
            }
        }
        if too_long {
            return Ok(Some(Line::TooLong(at)));
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.buf.len() > self.limit {
            return Ok(Some(Line::TooLong(at)));
        }
        Ok(Some(Line::Text(at, &self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], limit: usize) -> Vec<(u64, u64, Option<Vec<u8>>)> {
        let mut lines = Lines::new(input, limit);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().unwrap() {
            out.push(match line {
                Line::Text(at, text) => (at.offset, at.line, Some(text.to_vec())),
                Line::TooLong(at) => (at.offset, at.line, None),
            });
        }
        out
    }

    #[test]
    fn splits_and_bounds() {
        let got = all(b"ab\r\n\nxxxxxxxxxx\ncd", 4);
        assert_eq!(
            got,
            vec![
                (0, 1, Some(b"ab".to_vec())),
                (4, 2, Some(Vec::new())),
                (5, 3, None),
                (16, 4, Some(b"cd".to_vec())),
            ]
        );
        assert!(all(b"", 4).is_empty());
        assert_eq!(all(b"abcd\n", 4), vec![(0, 1, Some(b"abcd".to_vec()))]);
        assert_eq!(all(b"abcde", 4), vec![(0, 1, None)]);
    }
}
