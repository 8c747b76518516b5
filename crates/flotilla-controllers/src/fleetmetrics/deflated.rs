//! Text kept deflated between scrape rounds. The members' series are held for a whole round
//! interval and read only when `/metrics/clusters` is served or a round sums them up; as
//! text they were ~1 KB per placement (one line per workload per family, each with its
//! labels), and lines that repeat their family, cluster and namespace compress well.

use zlib_rs::{DeflateConfig, InflateConfig, ReturnCode};

/// Fast over small: a round deflates every member's series once.
const LEVEL: i32 = 1;

/// Text, deflated (zlib) when that makes it smaller.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Deflated {
    /// The text's length in bytes.
    len: usize,
    /// The zlib stream, or the text itself when `raw`.
    stored: Box<[u8]>,
    raw: bool,
}

impl Deflated {
    /// `text`, deflated.
    pub(crate) fn of(text: &str) -> Self {
        let mut buffer = vec![0; zlib_rs::compress_bound(text.len())];
        let (deflated, code) =
            zlib_rs::compress_slice(&mut buffer, text.as_bytes(), DeflateConfig::new(LEVEL));
        if code != ReturnCode::Ok || deflated.len() >= text.len() {
            return Deflated {
                len: text.len(),
                stored: text.as_bytes().into(),
                raw: true,
            };
        }
        Deflated {
            len: text.len(),
            stored: deflated.into(),
            raw: false,
        }
    }

    /// The text's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the text is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The text (empty if the stream cannot be inflated, which `of` never makes).
    pub(crate) fn text(&self) -> String {
        if self.raw {
            return String::from_utf8_lossy(&self.stored).into_owned();
        }
        let mut buffer = vec![0; self.len];
        let (inflated, code) =
            zlib_rs::decompress_slice(&mut buffer, &self.stored, InflateConfig::default());
        let inflated = inflated.len();
        if code != ReturnCode::Ok || inflated != self.len {
            return String::new();
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// Bytes held (for tests).
    #[cfg(test)]
    fn stored_len(&self) -> usize {
        self.stored.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_the_text_and_holds_less_of_repetitive_lines() {
        let text: String = (0..500)
            .map(|i| {
                format!(
                    "kube_deployment_status_replicas_ready{{cluster=\"member-7\",namespace=\"default\",deployment=\"app-{i}\"}} 1\n"
                )
            })
            .collect();
        let deflated = Deflated::of(&text);
        assert_eq!(deflated.text(), text);
        assert_eq!(deflated.len(), text.len());
        assert!(
            deflated.stored_len() * 5 < text.len(),
            "{} of {}",
            deflated.stored_len(),
            text.len()
        );
        // Too short to gain anything: kept as it is.
        for short in ["", "a", "kube_up 1\n"] {
            let kept = Deflated::of(short);
            assert_eq!(kept.text(), short);
            assert!(kept.stored_len() <= short.len());
        }
    }
}
