//! Stop strings, matched across chunk boundaries: text that could be the start of a
//! stop string is held back until it is known not to be one, and the stop string
//! itself is never emitted.

pub struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet emitted (a possible stop-string prefix at its end).
    held: String,
    stopped: bool,
}

impl StopMatcher {
    pub fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
            stopped: false,
        }
    }

    /// Whether a stop string was found (generation should end).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// Adds generated text; returns what can be emitted now (possibly empty).
    pub fn push(&mut self, text: &str) -> String {
        if self.stopped {
            return String::new();
        }
        self.held.push_str(text);
        // The earliest complete match wins.
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            self.stopped = true;
            self.held.truncate(at);
            return std::mem::take(&mut self.held);
        }
        let keep = self.partial_suffix_len();
        let emit_to = self.held.len() - keep;
        let rest = self.held.split_off(emit_to);
        std::mem::replace(&mut self.held, rest)
    }

    /// At the end of generation: what was held back (it never became a stop string).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest suffix of `held` that is a proper prefix of a stop
    /// string (on a char boundary).
    fn partial_suffix_len(&self) -> usize {
        let h = &self.held;
        self.stops
            .iter()
            .flat_map(|s| {
                (1..s.len().min(h.len() + 1))
                    .rev()
                    .filter(move |&n| s.is_char_boundary(n) && h.ends_with(&s[..n]))
                    .take(1)
            })
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], chunks: &[&str]) -> (Vec<String>, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        for c in chunks {
            out.push(m.push(c));
            if m.stopped() {
                break;
            }
        }
        out.push(m.finish());
        (out, m.stopped())
    }

    #[test]
    fn no_stops_passes_through() {
        assert_eq!(run(&[], &["a", "b"]).0, ["a", "b", ""]);
    }

    #[test]
    fn match_inside_one_chunk() {
        let (out, stopped) = run(&["END"], &["abcENDxyz", "more"]);
        assert_eq!(out, ["abc", ""]);
        assert!(stopped);
    }

    #[test]
    fn match_across_chunks_is_held_back() {
        let (out, stopped) = run(&["\n\n"], &["Hello", "\n", "\n", "World"]);
        assert_eq!(out, ["Hello", "", "", ""]);
        assert!(stopped);
        let (out, stopped) = run(&["<|im_end|>"], &["ok<|im", "_e", "nd|>tail"]);
        assert_eq!(out.concat(), "ok");
        assert!(stopped);
    }

    #[test]
    fn partial_match_released_when_it_diverges() {
        let (out, stopped) = run(&["STOP"], &["a ST", "OX b", "ST"]);
        assert_eq!(out, ["a ", "STOX b", "", "ST"]);
        assert!(!stopped);
    }

    #[test]
    fn earliest_of_several_stops() {
        let (out, _) = run(&["yz", "b"], &["xyzab"]);
        assert_eq!(out.concat(), "x");
    }

    #[test]
    fn multibyte_stop() {
        let (out, stopped) = run(&["é!"], &["caf", "é", "!"]);
        assert_eq!(out.concat(), "caf");
        assert!(stopped);
    }
}
