//! ALB's wildcard patterns, as `path-pattern` and `host-header` conditions use them: `*`
//! matches any run of characters (also none), `?` exactly one, against the whole text; at most
//! 128 characters. Case handling is the caller's (paths are case-sensitive, hosts are not).

/// ALB's limit on a pattern's length.
pub(crate) const MAX_PATTERN_LEN: usize = 128;

/// A compiled `*`/`?` wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Vec<u8>);

impl Pattern {
    /// Compiles `pattern`; refuses an empty one or one over [`MAX_PATTERN_LEN`] characters.
    pub(crate) fn new(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("is empty".into());
        }
        if pattern.chars().count() > MAX_PATTERN_LEN {
            return Err(format!(
                "is {} characters, over ALB's 128",
                pattern.chars().count()
            ));
        }
        Ok(Self(pattern.as_bytes().to_vec()))
    }

    /// Whether the whole of `text` matches.
    ///
    /// Greedy with one backtrack point (the last `*`): linear in practice, O(n x m) at worst,
    /// never exponential, whatever a client sends.
    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        let pattern = &self.0;
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match pattern.get(p) {
                Some(b'*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(&c) if c == b'?' || c == text[t] => {
                    // `?` is one character: skip a whole UTF-8 sequence, not one byte.
                    t += if c == b'?' { utf8_len(text[t]) } else { 1 };
                    p += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
    }
}

/// Length of the UTF-8 sequence that starts with byte `b` (1 for anything unexpected).
fn utf8_len(b: u8) -> usize {
    match b {
        0xf0.. => 4,
        0xe0.. => 3,
        0xc0.. => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(text.as_bytes())
    }

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(matches("/cluster1*", "/cluster1"));
        assert!(matches("/cluster1*", "/cluster1/a/b"));
        assert!(matches("*", ""));
        assert!(matches("/a*b*c", "/axxbyyc"));
        assert!(!matches("/a*b*c", "/axxbyy"));
    }

    #[test]
    fn question_mark_matches_exactly_one_character() {
        assert!(matches("/v?/x", "/v1/x"));
        assert!(!matches("/v?/x", "/v/x"));
        assert!(!matches("/v?/x", "/v12/x"));
        assert!(matches("/?", "/é"));
    }

    #[test]
    fn paths_are_case_sensitive() {
        assert!(!matches("/cluster1*", "/CLUSTER1"));
        assert!(!matches("/Cluster1", "/cluster1"));
    }

    #[test]
    fn a_pattern_matches_the_whole_path_not_a_prefix() {
        assert!(!matches("/cluster1", "/cluster1/x"));
        assert!(!matches("/x", "/a/x"));
    }

    #[test]
    fn many_stars_do_not_blow_up() {
        let pattern = format!("/{}b", "*a".repeat(40));
        let text = format!("/{}", "a".repeat(4000));
        assert!(!matches(&pattern, &text));
    }

    #[test]
    fn patterns_longer_than_128_characters_are_refused() {
        assert!(Pattern::new(&"a".repeat(128)).is_ok());
        assert!(Pattern::new(&"a".repeat(129)).is_err());
        assert!(Pattern::new("").is_err());
    }
}
