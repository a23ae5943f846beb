//! How long an idle model stays loaded, written like Ollama's `keep_alive`: a number of seconds
//! or a duration string (`"30s"`, `"5m"`, `"1h"`, `"500ms"`), where any negative value means
//! forever and zero means unload as soon as the last request finishes.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An idle model's time to live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAlive {
    /// Never unloaded for being idle (only to make room, or on request).
    Forever,
    /// Unloaded after this long without requests.
    For(Duration),
}

impl Default for KeepAlive {
    /// Five minutes, as in Ollama.
    fn default() -> Self {
        KeepAlive::For(Duration::from_secs(300))
    }
}

impl KeepAlive {
    /// Reads `"5m"`, `"30s"`, `"-1"`, `"0"`, `"1.5h"`...
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let value: f64 = number.trim().parse().map_err(|_| {
            format!("keep_alive `{text}` is not a duration; use seconds or a value like 30s, 5m, 1h, -1")
        })?;
        let seconds = match unit {
            "" | "s" => value,
            "ms" => value / 1e3,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!(
                    "keep_alive `{text}`: the unit must be ms, s, m or h"
                ))
            }
        };
        Ok(Self::from_seconds(seconds))
    }

    /// Negative means forever.
    pub fn from_seconds(seconds: f64) -> Self {
        if seconds < 0.0 || !seconds.is_finite() {
            KeepAlive::Forever
        } else {
            KeepAlive::For(Duration::from_secs_f64(seconds.min(1e9)))
        }
    }

    /// The time to live, `None` for forever.
    pub fn duration(self) -> Option<Duration> {
        match self {
            KeepAlive::Forever => None,
            KeepAlive::For(d) => Some(d),
        }
    }
}

impl fmt::Display for KeepAlive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepAlive::Forever => write!(f, "-1"),
            KeepAlive::For(d) if d.subsec_millis() == 0 => write!(f, "{}s", d.as_secs()),
            KeepAlive::For(d) => write!(f, "{}ms", d.as_millis()),
        }
    }
}

impl Serialize for KeepAlive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KeepAlive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = KeepAlive;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("seconds, or a duration like \"5m\" (negative: forever)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_seconds(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_seconds(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<KeepAlive, E> {
                Ok(KeepAlive::from_seconds(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<KeepAlive, E> {
                KeepAlive::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ollama_style_values() {
        let secs = |s| KeepAlive::For(Duration::from_secs(s));
        assert_eq!(KeepAlive::parse("5m").unwrap(), secs(300));
        assert_eq!(KeepAlive::parse("30s").unwrap(), secs(30));
        assert_eq!(KeepAlive::parse("1h").unwrap(), secs(3600));
        assert_eq!(KeepAlive::parse("0").unwrap(), secs(0));
        assert_eq!(KeepAlive::parse("-1").unwrap(), KeepAlive::Forever);
        assert_eq!(KeepAlive::parse("-1m").unwrap(), KeepAlive::Forever);
        assert_eq!(
            KeepAlive::parse("250ms").unwrap(),
            KeepAlive::For(Duration::from_millis(250))
        );
        assert!(KeepAlive::parse("soon").is_err());
        assert!(KeepAlive::parse("5d").is_err());
    }

    #[test]
    fn json_takes_numbers_and_strings() {
        let read = |j: &str| serde_json::from_str::<KeepAlive>(j).unwrap();
        assert_eq!(read("-1"), KeepAlive::Forever);
        assert_eq!(read("10"), KeepAlive::For(Duration::from_secs(10)));
        assert_eq!(read("0.5"), KeepAlive::For(Duration::from_millis(500)));
        assert_eq!(read("\"2m\""), KeepAlive::For(Duration::from_secs(120)));
        assert!(serde_json::from_str::<KeepAlive>("true").is_err());
        assert_eq!(serde_json::to_string(&read("\"2m\"")).unwrap(), "\"120s\"");
    }
}
