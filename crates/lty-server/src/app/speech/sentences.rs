//! Cuts a streamed reply into sentences for speech synthesis as the text
//! arrives, so the first sentence can be spoken while the rest is still
//! being generated.
//!
//! Where a sentence ends:
//!
//! - after Chinese `。！？；…` and a line break;
//! - after English `.`, `!` or `?` when a space, a line break, a Chinese
//!   character or the end of the reply follows (so `3.14` and `e.g.` stay
//!   whole);
//! - not after an initial, a dotted abbreviation or a title (`J.`,
//!   `e.g.`, `Mr.`);
//! - a run of end marks and the closing quotes or brackets after it
//!   (`?!`, `……`, `。」`, `."`) stay with the sentence they end. A mark at
//!   the very end of the text received so far is held until the next piece
//!   shows what follows it.
//!
//! A piece of the stream may end anywhere, even inside such a run or a
//! number; the result is the same as for the whole text at once.
//!
//! Lengths are measured in *weight*, roughly the time it takes to say the
//! text: an ASCII letter or digit weighs 1, a Chinese, Japanese or Korean
//! character 3, anything else nothing. A sentence lighter than
//! [`SplitterConfig::min_weight`] is not spoken alone but joined to the
//! next one. The first sentence of a reply may also be cut at a comma
//! (`，` or `,` before a space) once it weighs
//! [`SplitterConfig::first_cut_weight`], so the first audio starts sooner;
//! a run-on text with no end mark is cut at its last comma or space once
//! it weighs [`SplitterConfig::max_weight`]. Sentences are trimmed, and
//! one with no letter or digit at all (only spaces, marks or emoji) is
//! dropped.

/// Thresholds of a [`SentenceSplitter`], in weight (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitterConfig {
    /// A sentence lighter than this is joined to the next. Default 6 (two
    /// Chinese characters, a short English word or two).
    pub min_weight: usize,
    /// The first sentence of a reply is cut at a comma once this heavy.
    /// Default 15 (five Chinese characters, about three English words).
    pub first_cut_weight: usize,
    /// Text with no end mark is cut at its last comma or space once this
    /// heavy. Default 240 (80 Chinese characters).
    pub max_weight: usize,
}

impl Default for SplitterConfig {
    fn default() -> Self {
        Self {
            min_weight: 6,
            first_cut_weight: 15,
            max_weight: 240,
        }
    }
}

/// Turns a stream of text pieces into sentences.
#[derive(Debug, Clone, Default)]
pub struct SentenceSplitter {
    config: SplitterConfig,
    /// Text received and not yet returned.
    buf: String,
    /// Whether a sentence of this reply has been returned.
    emitted: bool,
}

/// Whether `c` is a Chinese, Japanese or Korean character (the scripts
/// spoken a syllable a character).
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30ff}'
        | '\u{3400}'..='\u{4dbf}'
        | '\u{4e00}'..='\u{9fff}'
        | '\u{f900}'..='\u{faff}'
        | '\u{ac00}'..='\u{d7af}'
        | '\u{20000}'..='\u{2ffff}')
}

fn char_weight(c: char) -> usize {
    if c.is_ascii_alphanumeric() {
        1
    } else if is_cjk(c) {
        3
    } else if c.is_alphanumeric() {
        1
    } else {
        0
    }
}

/// The weight of `text` (see the module docs).
pub fn weight(text: &str) -> usize {
    text.chars().map(char_weight).sum()
}

/// Marks that end a sentence whatever follows.
fn is_cjk_end(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '…')
}

/// Marks that end a sentence when a space or the end follows.
fn is_latin_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?')
}

/// Closing quotes and brackets that belong to the sentence before them.
fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '”' | '’' | '」' | '』' | '）' | '】' | '》' | '〉'
    )
}

/// Whether the word at the end of `before` is one a point after it does
/// not end a sentence: an initial (`J.`), a dotted abbreviation (`e.g.`,
/// `U.S.`) or a title (`Mr.`, `Dr.`).
fn is_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(char::is_whitespace)
        .next()
        .unwrap_or("")
        .trim_start_matches(|c: char| !c.is_alphanumeric());
    let mut letters = word.chars();
    let single =
        matches!((letters.next(), letters.next()), (Some(c), None) if c.is_ascii_alphabetic());
    single
        || (word.contains('.') && word.chars().all(|c| c == '.' || c.is_ascii_alphabetic()))
        || matches!(
            word,
            "Mr" | "Mrs" | "Ms" | "Dr" | "Prof" | "St" | "Jr" | "Sr" | "vs"
        )
}

/// Where to cut, found by [`SentenceSplitter::scan`].
enum Scan {
    /// Cut before this byte offset.
    Cut(usize),
    /// Nothing to cut in the text so far.
    Wait,
}

impl SentenceSplitter {
    /// A splitter with the default thresholds.
    pub fn new() -> Self {
        Self::default()
    }

    /// A splitter with these thresholds.
    pub fn with_config(config: SplitterConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// Takes the next piece of the reply and returns the sentences it
    /// completed, in order (often none).
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.buf.push_str(piece);
        let mut out = Vec::new();
        while let Scan::Cut(end) = self.scan(false) {
            let rest = self.buf.split_off(end);
            let sentence = std::mem::replace(&mut self.buf, rest);
            if let Some(s) = self.emit(&sentence) {
                out.push(s);
            }
        }
        out
    }

    /// Ends the reply: returns what is left as the last sentence (`None`
    /// when nothing speakable is left) and makes the splitter ready for the
    /// next reply. A fragment too short to speak alone is returned all the
    /// same, since nothing follows to join it to.
    pub fn finish(&mut self) -> Option<String> {
        // Whatever was held back waited for more text or for the end; this
        // is the end, and nothing before it could be cut (`push` would have).
        let rest = std::mem::take(&mut self.buf);
        let last = self.emit(&rest);
        self.emitted = false;
        last
    }

    /// A sentence as returned: trimmed, or `None` when nothing in it can be
    /// spoken.
    fn emit(&mut self, sentence: &str) -> Option<String> {
        let s = sentence.trim();
        if weight(s) == 0 {
            return None;
        }
        self.emitted = true;
        Some(s.to_owned())
    }

    /// Finds the first place to cut the buffer. `at_end`: nothing more
    /// will come, so a mark at the end is confirmed.
    fn scan(&self, at_end: bool) -> Scan {
        let text = self.buf.as_str();
        let cfg = &self.config;
        let mut weight = 0;
        // The end of the last comma or space, for a cut of a long text.
        let mut soft_break = None;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            weight += char_weight(c);
            let after = i + c.len_utf8();
            if c == '\n' {
                if weight >= cfg.min_weight {
                    return Scan::Cut(after);
                }
                continue;
            }
            if c == '.' && is_abbreviation(&text[..i]) {
                continue;
            }
            if is_cjk_end(c) || is_latin_end(c) {
                // The run of marks and closers this one starts.
                let mut end = after;
                let mut latin_only = is_latin_end(c);
                while let Some(&(j, d)) = chars.peek() {
                    if is_cjk_end(d) || is_latin_end(d) || is_closer(d) {
                        latin_only &= !is_cjk_end(d);
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let confirmed = match text[end..].chars().next() {
                    None => at_end,
                    Some(next) => !latin_only || next.is_whitespace() || is_cjk(next),
                };
                if confirmed && weight >= cfg.min_weight {
                    return Scan::Cut(end);
                }
                if !confirmed && end == text.len() {
                    // Held until the next piece shows what follows.
                    return Scan::Wait;
                }
                continue;
            }
            let comma = match c {
                '，' | '、' | '：' => true,
                // Not in "1,000"; at the very end, wait to see what follows.
                ',' | ';' | ':' => match text[after..].chars().next() {
                    Some(next) => next.is_whitespace(),
                    None if at_end => true,
                    None => return Scan::Wait,
                },
                _ => false,
            };
            if comma {
                soft_break = Some(after);
                let first_cut = matches!(c, '，' | ',');
                if first_cut && !self.emitted && weight >= cfg.first_cut_weight {
                    return Scan::Cut(after);
                }
            }
            if c.is_whitespace() {
                soft_break = Some(after);
            }
            if weight >= cfg.max_weight {
                let cut = soft_break
                    .filter(|&b| self::weight(&text[..b]) >= cfg.min_weight)
                    .unwrap_or(after);
                return Scan::Cut(cut);
            }
        }
        Scan::Wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything `pieces` give, `finish` included.
    fn split(pieces: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    /// The same text cut into pieces of one character each.
    fn split_by_char(text: &str) -> Vec<String> {
        let pieces: Vec<String> = text.chars().map(String::from).collect();
        let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
        split(&refs)
    }

    #[test]
    fn chinese_sentences_end_at_chinese_marks() {
        let text = "今天天气很好。我们去公园玩吧！你想去吗？";
        let want = ["今天天气很好。", "我们去公园玩吧！", "你想去吗？"];
        assert_eq!(split(&[text]), want);
        assert_eq!(split_by_char(text), want);
    }

    #[test]
    fn english_sentences_end_at_a_mark_before_a_space_or_the_end() {
        let text = "The sun is out today. Shall we go to the park? Yes!";
        // "Yes!" is too short alone, but nothing follows it.
        let want = ["The sun is out today.", "Shall we go to the park?", "Yes!"];
        assert_eq!(split(&[text]), want);
        assert_eq!(split_by_char(text), want);
    }

    #[test]
    fn numbers_and_abbreviations_are_not_cut() {
        let text = "Pi is about 3.14 and e is about 2.71 in math class. Done now.";
        let want = [
            "Pi is about 3.14 and e is about 2.71 in math class.",
            "Done now.",
        ];
        assert_eq!(split(&[text]), want);
        assert_eq!(split_by_char(text), want);
        let text = "Mr. Fox met Dr. Owl, e.g. at noon. J. K. wrote it. The end.";
        let want = [
            "Mr. Fox met Dr. Owl, e.g. at noon.",
            "J. K. wrote it.",
            "The end.",
        ];
        assert_eq!(split(&[text]), want);
        assert_eq!(split_by_char(text), want);
        // A piece ending right after the point: held until the digits come.
        let mut s = SentenceSplitter::new();
        assert!(s.push("圆周率大约是3.").is_empty());
        assert_eq!(s.push("14。然后"), ["圆周率大约是3.14。"]);
        assert_eq!(s.finish().as_deref(), Some("然后"));
    }

    #[test]
    fn runs_of_marks_and_closing_quotes_stay_with_their_sentence() {
        let text = "他说：“你好。”然后走了……真的吗？！“Really?!” she asked. OK.";
        let want = [
            "他说：“你好。”",
            "然后走了……",
            "真的吗？！",
            "“Really?!”",
            "she asked.",
            "OK.",
        ];
        assert_eq!(split(&[text]), want);
        assert_eq!(split_by_char(text), want);
    }

    #[test]
    fn mixed_chinese_and_english_is_split_at_both_kinds_of_marks() {
        let text = "我喜欢 Apple 和 Banana. 你呢？I like 苹果 too!再见。";
        let want = [
            "我喜欢 Apple 和 Banana.",
            "你呢？",
            "I like 苹果 too!",
            "再见。",
        ];
        assert_eq!(split(&[text]), want);
        assert_eq!(split_by_char(text), want);
        // Pieces that end inside an English word or a Chinese phrase.
        assert_eq!(
            split(&[
                "我喜欢 Ap",
                "ple 和 Ban",
                "ana. 你",
                "呢？I like 苹",
                "果 too!再见",
                "。"
            ]),
            want
        );
    }

    #[test]
    fn fragments_too_short_to_speak_alone_are_joined_to_the_next() {
        assert_eq!(
            split(&["好。我们开始讲故事吧。"]),
            ["好。我们开始讲故事吧。"]
        );
        assert_eq!(
            split(&["OK. Let me tell you a story. Ready?"]),
            ["OK. Let me tell you a story.", "Ready?"]
        );
        // The last fragment is returned even when short: nothing follows.
        assert_eq!(
            split(&["我们开始讲故事吧。好。"]),
            ["我们开始讲故事吧。", "好。"]
        );
    }

    #[test]
    fn the_first_sentence_is_cut_early_at_a_comma_once_long_enough() {
        let text = "小朋友你好呀，今天我们来讲一个故事，故事的名字叫小红帽。";
        assert_eq!(
            split(&[text]),
            [
                "小朋友你好呀，",
                "今天我们来讲一个故事，故事的名字叫小红帽。"
            ]
        );
        // A comma too early does not cut.
        assert_eq!(split(&["好的，我们开始吧。"]), ["好的，我们开始吧。"]);
        let text = "Well hello there my friend, today we will read a story, a long one.";
        assert_eq!(
            split_by_char(text),
            [
                "Well hello there my friend,",
                "today we will read a story, a long one."
            ]
        );
        // A comma inside a number does not cut either.
        assert_eq!(
            split(&["The castle had 1,000 rooms and towers. Wow."]),
            ["The castle had 1,000 rooms and towers.", "Wow."]
        );
    }

    #[test]
    fn the_early_cut_is_only_for_the_first_sentence_of_each_reply() {
        let mut s = SentenceSplitter::new();
        let got = s.push("第一句话在这里。第二句话很长很长，还有后半句。");
        // The last mark is held: a closing quote could still follow it.
        assert_eq!(got, ["第一句话在这里。"]);
        assert_eq!(
            s.finish().as_deref(),
            Some("第二句话很长很长，还有后半句。")
        );
        assert!(s.finish().is_none());
        // A new reply gets its early cut again.
        assert_eq!(s.push("新的回答开始了，后面还有。"), ["新的回答开始了，"]);
        assert_eq!(s.finish().as_deref(), Some("后面还有。"));
    }

    #[test]
    fn line_breaks_end_sentences_and_blank_ones_are_dropped() {
        assert_eq!(
            split(&["第一行的内容\n\n   \n第二行的内容\n"]),
            ["第一行的内容", "第二行的内容"]
        );
        assert_eq!(split(&["  ", "\n", "……", " \n"]), Vec::<String>::new());
        assert_eq!(split(&["😊"]), Vec::<String>::new());
        let mut s = SentenceSplitter::new();
        assert!(s.push("   ").is_empty());
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn text_without_marks_is_cut_at_a_comma_or_space_when_too_long() {
        let config = SplitterConfig {
            min_weight: 6,
            first_cut_weight: 1_000,
            max_weight: 30,
        };
        let mut s = SentenceSplitter::with_config(config);
        let got = s.push("一二三四五六七，八九十一二三四五六七八九十");
        assert_eq!(got, ["一二三四五六七，", "八九十一二三四五六七"]);
        assert_eq!(s.finish().as_deref(), Some("八九十"));
        let got = s.push("one two three four five six seven eight nine");
        assert_eq!(got, ["one two three four five six seven"]);
    }

    #[test]
    fn finish_returns_the_rest_and_joins_what_was_held_back() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("It is 3.").is_empty());
        assert_eq!(s.finish().as_deref(), Some("It is 3."));
        assert!(s.push("Hi.").is_empty());
        assert_eq!(s.finish().as_deref(), Some("Hi."));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn weight_counts_letters_once_and_cjk_characters_thrice() {
        assert_eq!(weight("abc 12"), 5);
        assert_eq!(weight("你好"), 6);
        assert_eq!(weight("，。!? 😊"), 0);
        assert_eq!(weight("こんにちは"), 15);
    }
}
