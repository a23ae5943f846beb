//! Stop sequences matched by porten rather than the engine, for dialects that must say which
//! sequence ended the answer (Anthropic's `stop_sequence`): mistral.rs 0.8 reports a stop
//! string and an end-of-turn token alike as `stop`. Text that could be the start of a stop
//! sequence is held back until the next piece settles it, so no part of a stop sequence is
//! ever sent.

/// Watches streamed text for any of its stop sequences.
#[derive(Debug, Clone, Default)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released: it may be the start of a stop sequence.
    held: String,
}

/// What a piece of text came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matched {
    /// Text that is safe to send (possibly empty, when all of it is held back).
    Text(String),
    /// A stop sequence was found: the text before it, and the sequence.
    Stop {
        /// Text before the stop sequence, still to be sent.
        before: String,
        /// The stop sequence that matched.
        sequence: String,
    },
}

impl StopMatcher {
    /// A matcher for `stops` (empty ones are ignored).
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    /// Whether there is anything to match.
    pub fn is_empty(&self) -> bool {
        self.stops.is_empty()
    }

    /// Takes the next piece of text.
    pub fn push(&mut self, piece: &str) -> Matched {
        if self.stops.is_empty() {
            return Matched::Text(piece.to_string());
        }
        self.held.push_str(piece);
        // The earliest match wins; among matches at one place, the longest.
        let found = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()).map(|at| (at, s)))
            .min_by_key(|(at, s)| (*at, std::cmp::Reverse(s.len())));
        if let Some((at, sequence)) = found {
            let sequence = sequence.clone();
            let before = self.held[..at].to_string();
            self.held.clear();
            return Matched::Stop { before, sequence };
        }
        let keep = self.longest_pending_prefix();
        let release = self.held.len() - keep;
        let text = self.held[..release].to_string();
        self.held.drain(..release);
        Matched::Text(text)
    }

    /// The text still held back, released when the answer ends without a match.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Bytes at the end of the held text that begin some stop sequence (on a char boundary).
    fn longest_pending_prefix(&self) -> usize {
        let held = self.held.as_str();
        (1..=held.len())
            .rev()
            .filter(|n| held.is_char_boundary(held.len() - n))
            .find(|n| {
                let tail = &held[held.len() - n..];
                self.stops
                    .iter()
                    .any(|s| s.len() > *n && s.starts_with(tail))
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(stops: &[&str], pieces: &[&str]) -> (String, Option<String>) {
        let mut matcher = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut sent = String::new();
        for piece in pieces {
            match matcher.push(piece) {
                Matched::Text(t) => sent.push_str(&t),
                Matched::Stop { before, sequence } => {
                    sent.push_str(&before);
                    return (sent, Some(sequence));
                }
            }
        }
        sent.push_str(&matcher.finish());
        (sent, None)
    }

    #[test]
    fn a_stop_split_across_pieces_is_found_and_never_sent() {
        assert_eq!(
            feed(&["END"], &["one E", "N", "D two"]),
            ("one ".into(), Some("END".into()))
        );
    }

    #[test]
    fn a_false_start_is_released_once_it_cannot_match() {
        assert_eq!(
            feed(&["END"], &["one EN", "X two"]),
            ("one ENX two".into(), None)
        );
        assert_eq!(feed(&["END"], &["tail E"]), ("tail E".into(), None));
    }

    #[test]
    fn the_earliest_stop_wins_and_multibyte_text_is_kept_whole() {
        assert_eq!(
            feed(&["b", "ab"], &["xab"]),
            ("x".into(), Some("ab".into()))
        );
        assert_eq!(feed(&["é!"], &["café", " ok"]), ("café ok".into(), None));
        assert_eq!(feed(&[], &["a", "b"]), ("ab".into(), None));
    }
}
