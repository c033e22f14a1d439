//! Reading a stored `conversation.json` into turns, and the facts a summary
//! states about it (duration, turns and words per speaker, questions asked).
//!
//! Workers write transcripts in the shape the SDKs produce
//! (`{"messages": [{"role", "content", "timestamp_ms"}]}`), but a
//! transcript is the customer's JSON, so common variants are read too: a
//! bare array, `transcript`/`conversation`/`turns` for the list, and
//! `speaker`/`text`/`message`/`time` for the fields.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub speaker: String,
    pub text: String,
    /// Milliseconds, when the transcript says.
    pub at_ms: Option<i64>,
}

/// The turns of a transcript; `None` when it holds no list of turns.
pub fn turns(doc: &Value) -> Option<Vec<Turn>> {
    let list = match doc {
        Value::Array(items) => items,
        Value::Object(map) => ["messages", "transcript", "conversation", "turns"]
            .iter()
            .find_map(|k| map.get(*k).and_then(Value::as_array))?,
        _ => return None,
    };
    let field = |item: &Value, names: &[&str]| {
        names
            .iter()
            .find_map(|n| item.get(*n).and_then(Value::as_str))
            .map(str::to_owned)
    };
    Some(
        list.iter()
            .filter_map(|item| {
                let text = field(item, &["content", "text", "message"])?;
                let speaker = field(item, &["role", "speaker", "participant", "name"])
                    .unwrap_or_else(|| "unknown".to_owned());
                let at_ms = ["timestamp_ms", "timestamp", "time", "start_ms", "start"]
                    .iter()
                    .find_map(|n| item.get(*n))
                    .and_then(time_ms);
                Some(Turn {
                    speaker,
                    text,
                    at_ms,
                })
            })
            .collect(),
    )
}

/// Milliseconds from a number (seconds below 10^11, else milliseconds) or
/// an RFC 3339 string.
fn time_ms(v: &Value) -> Option<i64> {
    if let Some(n) = v.as_f64() {
        return Some(if n.abs() < 1e11 {
            (n * 1000.0) as i64
        } else {
            n as i64
        });
    }
    chrono::DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|d| d.timestamp_millis())
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerFacts {
    pub turns: u32,
    pub words: u32,
    pub questions: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Question {
    pub speaker: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Facts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<u64>,
    pub turns: u32,
    pub words: u32,
    pub speakers: BTreeMap<String, SpeakerFacts>,
    pub questions: Vec<Question>,
}

/// The facts of `turns`. The duration is the span of the turns' times, or
/// the session's own when the transcript has none.
pub fn facts(turns: &[Turn], session_duration_seconds: Option<u64>) -> Facts {
    let mut speakers: BTreeMap<String, SpeakerFacts> = BTreeMap::new();
    let mut questions = Vec::new();
    for turn in turns {
        let s = speakers.entry(turn.speaker.clone()).or_default();
        s.turns += 1;
        s.words += turn.text.split_whitespace().count() as u32;
        for sentence in crate::summary::textrank::sentences(&turn.text) {
            if sentence.ends_with('?') {
                s.questions += 1;
                questions.push(Question {
                    speaker: turn.speaker.clone(),
                    text: sentence,
                });
            }
        }
    }
    let times: Vec<i64> = turns.iter().filter_map(|t| t.at_ms).collect();
    let span = match (times.iter().min(), times.iter().max()) {
        (Some(a), Some(b)) if b > a => Some(((b - a) as u64).div_ceil(1000)),
        _ => None,
    };
    Facts {
        duration_seconds: session_duration_seconds.filter(|d| *d > 0).or(span),
        turns: turns.len() as u32,
        words: speakers.values().map(|s| s.words).sum(),
        speakers,
        questions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_sdk_shape_and_common_variants() {
        let sdk = json!({"messages": [
            {"role": "user", "content": "Hi there. Can you help?", "timestamp_ms": 1_700_000_000_000i64},
            {"role": "assistant", "content": "Of course.", "timestamp_ms": 1_700_000_030_500i64}
        ]});
        let t = turns(&sdk).unwrap();
        assert_eq!(t.len(), 2);
        let f = facts(&t, None);
        assert_eq!(f.duration_seconds, Some(31));
        assert_eq!(f.turns, 2);
        assert_eq!(
            f.speakers["user"],
            SpeakerFacts {
                turns: 1,
                words: 5,
                questions: 1
            }
        );
        assert_eq!(f.questions[0].text, "Can you help?");
        // The session's own duration wins over the turns' span.
        assert_eq!(facts(&t, Some(90)).duration_seconds, Some(90));

        let bare = json!([{"speaker": "agent", "text": "Hello", "time": 1.5}]);
        assert_eq!(turns(&bare).unwrap()[0].at_ms, Some(1500));
        assert!(turns(&json!({"nothing": 1})).is_none());
    }
}
