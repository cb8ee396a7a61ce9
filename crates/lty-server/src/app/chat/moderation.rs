//! Child safety: blocked-term lists (per side and per language) and the
//! optional moderation provider. Every block is logged and counted; the
//! blocked text itself never is.

use lty_core::chat::find_blocked_term;

use crate::config::Config;
use crate::state::AppState;

/// Which side of a conversation a moderation check ran on.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    Input,
    Output,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
        }
    }
}

/// Whether `text` contains a blocked term: the list of its `side`, then
/// the list of `language`, or of every language when it is not given.
/// Every block is logged and counted in `lty_moderation_blocks_total{side}`
/// (the term itself is not logged: it may be the very content being kept
/// out).
pub fn blocked(
    config: &Config,
    side: Side,
    user_id: i64,
    language: Option<&str>,
    text: &str,
) -> bool {
    let side_terms = match side {
        Side::Input => &config.ai.blocked_input_terms.0,
        Side::Output => &config.ai.blocked_output_terms.0,
    };
    let by_language = &config.ai.blocked_terms;
    let hit = find_blocked_term(text, side_terms).is_some()
        || match language.map(|l| l.trim().to_ascii_lowercase()) {
            Some(l) => by_language
                .get(&l)
                .is_some_and(|t| find_blocked_term(text, &t.0).is_some()),
            None => by_language
                .values()
                .any(|t| find_blocked_term(text, &t.0).is_some()),
        };
    if !hit {
        return false;
    }
    record_block(side.as_str(), user_id);
    true
}

/// [`blocked`] for text that grows, as a streamed reply does: `text[..from]`
/// was checked before, so only the part a term overlapping the new text
/// could start in is searched. A reply of n pieces costs O(n), not O(n²).
pub fn blocked_since(
    config: &Config,
    side: Side,
    user_id: i64,
    language: Option<&str>,
    text: &str,
    from: usize,
) -> bool {
    let side_terms = match side {
        Side::Input => &config.ai.blocked_input_terms.0,
        Side::Output => &config.ai.blocked_output_terms.0,
    };
    // A match in `text` has no more characters than the lower-cased term,
    // and a character takes at most 4 bytes.
    let reach = side_terms
        .iter()
        .chain(config.ai.blocked_terms.values().flat_map(|t| t.0.iter()))
        .map(|t| t.trim().to_lowercase().chars().count() * 4)
        .max()
        .unwrap_or(0);
    let mut start = from.min(text.len()).saturating_sub(reach);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    blocked(config, side, user_id, language, &text[start..])
}

/// Whether the moderation provider (when configured) flags `text`. When
/// it fails, `ai.moderation_fail_closed` decides: block, or let the text
/// pass; either way the failure is logged and counted in
/// `lty_moderation_errors_total`.
pub async fn flagged_by_provider(state: &AppState, side: Side, user_id: i64, text: &str) -> bool {
    let Some(moderator) = &state.moderator else {
        return false;
    };
    match moderator.flagged(text).await {
        Ok(false) => false,
        Ok(true) => {
            record_block("provider", user_id);
            true
        }
        Err(err) => {
            let fail_closed = state.config.ai.moderation_fail_closed;
            tracing::warn!(%err, side = side.as_str(), fail_closed, "moderation provider failed");
            metrics::counter!("lty_moderation_errors_total", "provider" => moderator.provider())
                .increment(1);
            if fail_closed {
                record_block("provider", user_id);
            }
            fail_closed
        }
    }
}

/// The whole check of one text: blocked terms, then the provider.
pub async fn moderate(
    state: &AppState,
    side: Side,
    user_id: i64,
    language: Option<&str>,
    text: &str,
) -> bool {
    blocked(&state.config, side, user_id, language, text)
        || flagged_by_provider(state, side, user_id, text).await
}

/// Logs and counts one block (`source` = `input` or `output` for blocked
/// terms, `provider` for the provider's content filter or moderation API).
pub fn record_block(source: &'static str, user_id: i64) {
    tracing::warn!(side = source, user_id, "chat content blocked");
    metrics::counter!("lty_moderation_blocks_total", "side" => source).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TermList;

    #[test]
    fn per_language_terms_come_from_the_environment_and_apply_per_language() {
        let env = crate::config::EnvProvider::from_vars([
            (
                "LTY_AI__BLOCKED_TERMS__ZH".to_owned(),
                "坏蛋, 笨蛋".to_owned(),
            ),
            (
                "LTY_AI__BLOCKED_TERMS__EN".to_owned(),
                "dragonfire".to_owned(),
            ),
        ]);
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.ai.blocked_terms["zh"].0, ["坏蛋", "笨蛋"]);
        let check = |lang: Option<&str>, text: &str| blocked(&config, Side::Input, 1, lang, text);
        assert!(check(None, "dragonfire!"));
        assert!(check(Some("EN"), "dragonfire!"));
        assert!(!check(Some("zh"), "dragonfire!"));
        assert!(check(Some("zh"), "你是笨蛋"));
        // The side's own list applies whatever the language.
        assert!(check(Some("en"), "porn"));
    }

    #[test]
    fn a_streamed_reply_is_checked_across_piece_boundaries() {
        let mut config = Config::default();
        config.ai.blocked_output_terms = TermList::from_str_list(&["dragonfire", "坏蛋"]);
        config.ai.blocked_terms.clear();
        // Feeds `pieces` as a stream does; the index of the piece blocked.
        let feed = |pieces: &[&str]| {
            let mut text = String::new();
            pieces.iter().position(|p| {
                let from = text.len();
                text.push_str(p);
                blocked_since(&config, Side::Output, 1, None, &text, from)
            })
        };
        assert_eq!(
            feed(&["Once upon a time, ", "a drag", "onFIRE", "!"]),
            Some(2)
        );
        assert_eq!(feed(&["你是", "坏", "蛋"]), Some(2));
        assert_eq!(
            feed(&["d", "r", "a", "g", "o", "n", "f", "i", "r", "e"]),
            Some(9)
        );
        assert_eq!(feed(&["a dragon", " and a fire"]), None);
        // Long text before the term is not searched again, and does not hide it.
        let long = "好".repeat(10_000);
        assert_eq!(feed(&[&long, "坏", "蛋"]), Some(2));
    }
}
