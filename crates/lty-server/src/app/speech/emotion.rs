//! Emotions of a spoken reply and the emoji that carry them.
//!
//! A reply may open with an emoji (the prompt asks the model for one); a
//! xiaozhi device shows it as a face, named by one of [`EMOTIONS`] in the
//! `llm` message. [`leading_emotion`] reads that emoji, and
//! [`strip_emoji`] takes every emoji out of the text so speech synthesis
//! does not read them aloud.

/// The emotion names a xiaozhi device knows (protocol reference §4.3).
pub const EMOTIONS: [&str; 21] = [
    "neutral",
    "happy",
    "laughing",
    "funny",
    "sad",
    "angry",
    "crying",
    "loving",
    "embarrassed",
    "surprised",
    "shocked",
    "thinking",
    "winking",
    "cool",
    "relaxed",
    "delicious",
    "kissy",
    "confident",
    "sleepy",
    "silly",
    "confused",
];

/// Each emotion with the emoji that stand for it, the first being the one
/// the device firmware draws for it.
const TABLE: [(&str, &[&str]); 21] = [
    ("neutral", &["😶", "😐", "😑"]),
    ("happy", &["🙂", "😊", "😀", "😃", "☺", "😇", "🤗", "🥳"]),
    ("laughing", &["😆", "😄", "😁", "😸"]),
    ("funny", &["😂", "🤣", "😹"]),
    (
        "sad",
        &["😔", "😢", "😞", "😟", "🙁", "☹", "😥", "😓", "🥺", "😿"],
    ),
    ("angry", &["😠", "😡", "🤬", "😤", "👿"]),
    ("crying", &["😭"]),
    (
        "loving",
        &[
            "😍", "🥰", "❤", "💕", "💖", "💗", "💓", "💞", "💘", "😻", "🧡", "💛", "💚", "💙",
            "💜", "🩷",
        ],
    ),
    ("embarrassed", &["😳", "😅", "😬", "🫣"]),
    ("surprised", &["😯", "😲", "😮", "😦", "😧"]),
    ("shocked", &["😱", "🤯", "😨", "😰", "🙀"]),
    ("thinking", &["🤔", "🧐"]),
    ("winking", &["😉"]),
    ("cool", &["😎"]),
    ("relaxed", &["😌"]),
    ("delicious", &["🤤", "😋"]),
    ("kissy", &["😘", "😗", "😙", "😚", "💋"]),
    ("confident", &["😏", "💪"]),
    ("sleepy", &["😴", "😪", "🥱", "💤"]),
    ("silly", &["😜", "🤪", "😝", "😛"]),
    ("confused", &["🙄", "😕", "🤨", "😵", "🫤"]),
];

/// Whether `name` is one of [`EMOTIONS`].
pub fn is_emotion(name: &str) -> bool {
    EMOTIONS.contains(&name)
}

/// The emoji the device draws for `emotion` (e.g. `happy` → 🙂), for the
/// `text` of an `llm` message.
pub fn emotion_emoji(emotion: &str) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(name, _)| *name == emotion)
        .and_then(|(_, emoji)| emoji.first().copied())
}

/// The emotion of `c`, when the table has it.
fn emotion_of(c: char) -> Option<&'static str> {
    TABLE
        .iter()
        .find(|(_, emoji)| emoji.iter().any(|e| e.starts_with(c)))
        .map(|(name, _)| *name)
}

/// Whether `c` is an emoji or pictograph (one that speech synthesis should
/// not read): the emoji and pictograph blocks, the miscellaneous symbols
/// and dingbats, and the few emoji among technical symbols and arrows.
pub fn is_emoji(c: char) -> bool {
    matches!(c,
        '\u{1f000}'..='\u{1faff}'
        | '\u{2600}'..='\u{27bf}'
        | '\u{2b05}'..='\u{2b07}'
        | '\u{2b1b}'..='\u{2b1c}'
        | '\u{2b50}'
        | '\u{2b55}'
        | '\u{231a}'..='\u{231b}'
        | '\u{2328}'
        | '\u{23cf}'
        | '\u{23e9}'..='\u{23f3}'
        | '\u{23f8}'..='\u{23fa}')
}

/// Invisible characters that only shape the emoji before them: variation
/// selectors, the keycap mark and tag characters (flag subdivisions).
fn is_emoji_modifier(c: char) -> bool {
    matches!(
        c,
        '\u{fe0e}' | '\u{fe0f}' | '\u{20e3}' | '\u{e0020}'..='\u{e007f}'
    )
}

const ZWJ: char = '\u{200d}';

/// The emotion of the emoji that opens `text` (after any whitespace):
/// `(emotion, the emoji as written, bytes of text it and the whitespace
/// before it take)`. The emoji as written includes its variation selector,
/// skin tone and any joined sequence (`❤️`, `👍🏽`, `😮‍💨`); the emotion is
/// that of its first character. `None` when the text does not open with an
/// emoji of a known emotion; the caller picks a default (e.g. `neutral`).
pub fn leading_emotion(text: &str) -> Option<(&'static str, &str, usize)> {
    let start = text.len() - text.trim_start().len();
    let rest = &text[start..];
    let first = rest.chars().next()?;
    let emotion = emotion_of(first)?;
    let mut end = first.len_utf8();
    let mut chars = rest[end..].chars().peekable();
    while let Some(&c) = chars.peek() {
        if is_emoji_modifier(c) || ('\u{1f3fb}'..='\u{1f3ff}').contains(&c) {
            end += c.len_utf8();
            chars.next();
        } else if c == ZWJ {
            // A joined sequence goes on only if an emoji follows the joiner.
            let mut ahead = chars.clone();
            ahead.next();
            match ahead.peek() {
                Some(&next) if is_emoji(next) => {
                    end += c.len_utf8() + next.len_utf8();
                    chars.next();
                    chars.next();
                }
                _ => break,
            }
        } else {
            break;
        }
    }
    Some((emotion, &rest[..end], start + end))
}

/// `text` without its emoji (and their modifiers and joiners), for speech.
/// Spaces the emoji leave doubled, leading or trailing are removed, and
/// an emoji between two words keeps them apart with a space.
pub fn strip_emoji(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // An emoji was just dropped, and nothing but spaces after it yet.
    let mut gap = false;
    let mut in_emoji = false;
    for c in text.chars() {
        if is_emoji(c) {
            gap = true;
            in_emoji = true;
            continue;
        }
        if is_emoji_modifier(c) || (in_emoji && c == ZWJ) {
            continue;
        }
        in_emoji = false;
        if gap && c.is_whitespace() {
            if out.is_empty() || out.ends_with(char::is_whitespace) {
                continue;
            }
        } else if gap && c.is_alphanumeric() && out.ends_with(|p: char| p.is_ascii_alphanumeric()) {
            out.push(' ');
        }
        if !c.is_whitespace() {
            gap = false;
        }
        out.push(c);
    }
    if gap {
        out.truncate(out.trim_end().len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_exactly_the_device_emotions() {
        let names: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, EMOTIONS);
        assert!(is_emotion("happy"));
        assert!(!is_emotion("Happy"));
        // No emoji stands for two emotions, and every one is an emoji.
        let mut seen = std::collections::HashSet::new();
        for (_, emoji) in TABLE {
            for e in emoji {
                let chars: Vec<char> = e.chars().collect();
                assert_eq!(chars.len(), 1, "{e}");
                assert!(seen.insert(chars[0]), "{e} twice");
                assert!(is_emoji(chars[0]), "{e}");
            }
        }
    }

    #[test]
    fn the_device_emoji_of_each_emotion_maps_back_to_it() {
        for name in EMOTIONS {
            let emoji = emotion_emoji(name).unwrap();
            assert_eq!(leading_emotion(emoji).map(|e| e.0), Some(name));
        }
        assert_eq!(emotion_emoji("happy"), Some("🙂"));
        assert_eq!(emotion_emoji("grumpy"), None);
    }

    #[test]
    fn common_leading_emoji_give_their_emotion() {
        for (emoji, name) in [
            ("😊", "happy"),
            ("🙂", "happy"),
            ("😄", "laughing"),
            ("😂", "funny"),
            ("🤣", "funny"),
            ("😢", "sad"),
            ("😭", "crying"),
            ("😠", "angry"),
            ("❤️", "loving"),
            ("😍", "loving"),
            ("😳", "embarrassed"),
            ("😲", "surprised"),
            ("😱", "shocked"),
            ("🤔", "thinking"),
            ("😉", "winking"),
            ("😎", "cool"),
            ("😌", "relaxed"),
            ("😋", "delicious"),
            ("😘", "kissy"),
            ("😏", "confident"),
            ("😴", "sleepy"),
            ("🤪", "silly"),
            ("😕", "confused"),
        ] {
            let text = format!("{emoji}你好呀！");
            let (got, written, used) = leading_emotion(&text).unwrap();
            assert_eq!(got, name, "{emoji}");
            assert_eq!(written, emoji);
            assert_eq!(&text[used..], "你好呀！");
        }
    }

    #[test]
    fn the_leading_emoji_takes_its_modifiers_and_the_whitespace_before_it() {
        let text = "\n  ❤️ I love that story!";
        let (name, emoji, used) = leading_emotion(text).unwrap();
        assert_eq!((name, emoji), ("loving", "❤\u{fe0f}"));
        assert_eq!(&text[used..], " I love that story!");
        // A joined sequence is one emoji, named after its first part.
        let text = "😮\u{200d}💨 Phew.";
        let (name, emoji, used) = leading_emotion(text).unwrap();
        assert_eq!(
            (name, emoji, &text[used..]),
            ("surprised", "😮\u{200d}💨", " Phew.")
        );
        // A skin tone is part of the emoji.
        let text = "💪🏽加油";
        assert_eq!(leading_emotion(text).map(|e| (e.1, e.2)), Some(("💪🏽", 8)));
        // A joiner not followed by an emoji ends it.
        assert_eq!(leading_emotion("😊\u{200d}a").map(|e| e.2), Some(4));
    }

    #[test]
    fn text_without_a_known_leading_emoji_has_no_emotion() {
        assert_eq!(leading_emotion(""), None);
        assert_eq!(leading_emotion("   "), None);
        assert_eq!(leading_emotion("你好😊"), None);
        assert_eq!(leading_emotion("🚀 Let's go"), None);
        assert_eq!(leading_emotion("Hello"), None);
    }

    #[test]
    fn emoji_are_stripped_and_the_spaces_they_leave_tidied() {
        assert_eq!(strip_emoji("😊你好呀！"), "你好呀！");
        assert_eq!(strip_emoji("你好 😊 呀"), "你好 呀");
        assert_eq!(strip_emoji("😊 Hello there 🎉"), "Hello there");
        assert_eq!(strip_emoji("Great👍🏽job"), "Great job");
        assert_eq!(strip_emoji("一起玩吧🚀✨⭐！"), "一起玩吧！");
        assert_eq!(strip_emoji("👨\u{200d}👩\u{200d}👧 family"), "family");
        assert_eq!(strip_emoji("Press 1️⃣ now"), "Press 1 now");
        assert_eq!(strip_emoji("🇨🇳 中国"), "中国");
        assert_eq!(strip_emoji("😊"), "");
        // Text without emoji is untouched, spaces and marks included.
        let plain = "Pi is 3.14, 对吧？  Yes:\n“好”（真的）。 ©";
        assert_eq!(strip_emoji(plain), plain);
    }
}
