//! ALB's health-check matcher: the status codes that pass (`200`, `200,202`, `200-299`).

/// A set of passing status codes, as inclusive ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Matcher(Vec<(u16, u16)>);

impl Default for Matcher {
    /// ALB's default: `200`.
    fn default() -> Self {
        Self(vec![(200, 200)])
    }
}

impl Matcher {
    /// Parses a comma-separated list of codes and `low-high` ranges, each within 200-599 as
    /// on ALB.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let code = |s: &str| match s.trim().parse::<u16>() {
            Ok(c) if (200..=599).contains(&c) => Ok(c),
            _ => Err(format!(
                "{s:?} in {text:?} is not a status code from 200 to 599"
            )),
        };
        let ranges = text
            .split(',')
            .map(|part| match part.split_once('-') {
                Some((low, high)) => {
                    let (low, high) = (code(low)?, code(high)?);
                    if low <= high {
                        Ok((low, high))
                    } else {
                        Err(format!("{part:?} in {text:?} is an empty range"))
                    }
                }
                None => code(part).map(|c| (c, c)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self(ranges))
    }

    pub(crate) fn passes(&self, status: u16) -> bool {
        self.0
            .iter()
            .any(|&(low, high)| (low..=high).contains(&status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_codes_lists_and_ranges_are_understood() {
        let m = Matcher::parse("200,202, 300-399").unwrap();
        assert!(m.passes(200) && m.passes(202) && m.passes(350));
        assert!(!m.passes(201) && !m.passes(404));
    }

    #[test]
    fn the_default_is_200_only() {
        assert!(Matcher::default().passes(200));
        assert!(!Matcher::default().passes(204));
    }

    #[test]
    fn codes_outside_alb_range_or_reversed_ranges_are_refused() {
        for bad in ["2xx", "100", "600", "299-200", "", "200,"] {
            assert!(Matcher::parse(bad).is_err(), "{bad}");
        }
    }
}
