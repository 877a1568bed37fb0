//! Splitting a chunked byte stream into newline-delimited JSON lines.

/// Longest line accepted: a 1 MiB value and its previous value, base64'd,
/// plus the envelope, with room to spare.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// Collects bytes until a '\n' completes a line. Chunks may split lines
/// anywhere, including inside a UTF-8 sequence.
#[derive(Debug, Default)]
pub struct LineDecoder {
    buf: Vec<u8>,
    max_line: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("a line of the stream exceeds {0} bytes")]
pub struct LineTooLong(pub usize);

impl LineDecoder {
    pub fn new() -> Self {
        Self::with_max_line(MAX_LINE_BYTES)
    }

    pub fn with_max_line(max_line: usize) -> Self {
        LineDecoder {
            buf: Vec::new(),
            max_line,
        }
    }

    /// Adds a chunk and returns the lines it completed, without their
    /// terminator ("\n" or "\r\n"); blank lines are skipped.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, LineTooLong> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            self.buf.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let mut line = std::mem::take(&mut self.buf);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > self.max_line {
                return Err(LineTooLong(self.max_line));
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                lines.push(line);
            }
        }
        self.buf.extend_from_slice(rest);
        if self.buf.len() > self.max_line {
            return Err(LineTooLong(self.max_line));
        }
        Ok(lines)
    }

    /// Bytes of an unfinished line; a stream that ends here was cut off.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: Vec<Vec<u8>>) -> Vec<String> {
        lines
            .into_iter()
            .map(|l| String::from_utf8(l).unwrap())
            .collect()
    }

    #[test]
    fn whole_lines_in_one_chunk() {
        let mut dec = LineDecoder::new();
        assert_eq!(
            text(dec.push(b"{\"a\":1}\n{\"b\":2}\n").unwrap()),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(dec.pending(), 0);
    }

    #[test]
    fn lines_split_across_chunks() {
        let mut dec = LineDecoder::new();
        assert!(dec.push(b"{\"ke").unwrap().is_empty());
        assert_eq!(dec.pending(), 4);
        assert!(dec.push(b"y\":").unwrap().is_empty());
        assert_eq!(text(dec.push(b"1}\n{\"x\"").unwrap()), ["{\"key\":1}"]);
        assert_eq!(text(dec.push(b":2}\r\n").unwrap()), ["{\"x\":2}"]);
        assert_eq!(dec.pending(), 0);
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let input = "{\"k\":\"é\"}\r\n\n{\"n\":2}\n{\"tail\":3}\n".as_bytes();
        for cut in 0..=input.len() {
            let mut dec = LineDecoder::new();
            let mut lines = dec.push(&input[..cut]).unwrap();
            lines.extend(dec.push(&input[cut..]).unwrap());
            assert_eq!(
                text(lines),
                ["{\"k\":\"é\"}", "{\"n\":2}", "{\"tail\":3}"],
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut dec = LineDecoder::new();
        let mut lines = Vec::new();
        for b in b"one\ntwo\n  \nthree" {
            lines.extend(dec.push(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(text(lines), ["one", "two"]);
        assert_eq!(dec.pending(), 5);
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut dec = LineDecoder::with_max_line(4);
        assert_eq!(text(dec.push(b"1234\n").unwrap()), ["1234"]);
        assert_eq!(dec.push(b"123").unwrap(), Vec::<Vec<u8>>::new());
        assert_eq!(dec.push(b"45"), Err(LineTooLong(4)));
        let mut dec = LineDecoder::with_max_line(4);
        assert_eq!(dec.push(b"12345\n"), Err(LineTooLong(4)));
    }
}
