//! A server-sent events line parser (WHATWG rules as far as chat
//! completions use them): `\n`, `\r\n` and lone `\r` line ends, `:`
//! comments, multi-line `data:`, other fields ignored, chunk boundaries
//! anywhere (inside a UTF-8 sequence too: only complete lines are decoded).

/// Incremental parser: feed it bytes, get the `data` of each dispatched event.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: String,
    has_data: bool,
    // The previous chunk ended in `\r`: a leading `\n` belongs to it.
    skip_lf: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `chunk`, returning the payloads of the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut bytes = chunk;
        if self.skip_lf {
            if let Some((b'\n', rest)) = bytes.split_first() {
                bytes = rest;
            }
            self.skip_lf = false;
        }
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        let (mut start, mut i) = (0, 0);
        while i < self.buf.len() {
            let b = self.buf[i];
            if b == b'\n' || b == b'\r' {
                lines.push(String::from_utf8_lossy(&self.buf[start..i]).into_owned());
                if b == b'\r' {
                    match self.buf.get(i + 1) {
                        Some(b'\n') => i += 1,
                        Some(_) => {}
                        None => self.skip_lf = true,
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buf.drain(..start);
        let mut events = Vec::new();
        for line in lines {
            if let Some(event) = self.line(&line) {
                events.push(event);
            }
        }
        events
    }

    fn line(&mut self, line: &str) -> Option<String> {
        if line.is_empty() {
            if !self.has_data {
                return None;
            }
            self.has_data = false;
            return Some(std::mem::take(&mut self.data));
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            if self.has_data {
                self.data.push('\n');
            }
            self.data.push_str(value);
            self.has_data = true;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_end_at_blank_lines_with_any_line_ending() {
        let mut p = SseParser::new();
        assert_eq!(
            p.push(b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata:d\n"),
            ["a", "b", "c"]
        );
        assert_eq!(p.push(b"\n"), ["d"]);
    }

    #[test]
    fn comments_and_other_fields_are_ignored_and_data_lines_join() {
        let mut p = SseParser::new();
        let out = p.push(b": keep-alive\n\nevent: x\nid: 1\nretry: 5\ndata: one\ndata: two\n\n");
        assert_eq!(out, ["one\ntwo"]);
    }

    #[test]
    fn chunks_may_split_lines_crlf_pairs_and_utf8_sequences() {
        let whole = "data: 你好\r\n\r\ndata: [DONE]\r\n\r\n".as_bytes();
        for cut in 0..whole.len() {
            let mut p = SseParser::new();
            let mut out = p.push(&whole[..cut]);
            out.extend(p.push(&whole[cut..]));
            assert_eq!(out, ["你好", "[DONE]"], "cut at {cut}");
        }
    }
}
