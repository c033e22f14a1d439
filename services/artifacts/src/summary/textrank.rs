//! TextRank (Mihalcea & Tarau, 2004) for key sentences: a graph of the
//! transcript's sentences, edges weighted by word overlap normalised by
//! sentence length, ranked by PageRank; the top sentences, in the order
//! they were said, are the summary.

use std::collections::HashSet;

/// Damping factor from the paper (and PageRank's).
const DAMPING: f64 = 0.85;
const MAX_ITERATIONS: usize = 100;
const CONVERGED: f64 = 1e-6;
/// The graph is quadratic in sentences: a longer transcript is ranked on
/// its first this many.
pub const MAX_SENTENCES: usize = 1500;

const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "do", "for", "from", "had", "has",
    "have", "he", "her", "his", "i", "if", "in", "is", "it", "its", "me", "my", "no", "not", "of",
    "on", "or", "our", "she", "so", "that", "the", "their", "them", "there", "they", "this", "to",
    "was", "we", "were", "what", "when", "which", "who", "will", "with", "you", "your", "can",
    "just", "yes", "ok", "okay", "um", "uh", "would", "could", "should", "did", "does", "am",
];

/// Sentences of `text`: split after `.`, `!` or `?` followed by whitespace.
pub fn sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        let boundary =
            matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace());
        if boundary {
            push_sentence(&mut out, &mut current);
        }
    }
    push_sentence(&mut out, &mut current);
    out
}

fn push_sentence(out: &mut Vec<String>, current: &mut String) {
    let s = current.trim();
    if s.chars().any(char::is_alphanumeric) {
        out.push(s.to_owned());
    }
    current.clear();
}

fn words(sentence: &str) -> HashSet<String> {
    sentence
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .map(str::to_lowercase)
        .filter(|w| !w.is_empty() && !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// The paper's similarity: shared words over the logs of the lengths.
fn similarity(a: &HashSet<String>, b: &HashSet<String>) -> f64 {
    if a.len() < 2 || b.len() < 2 {
        // ln(1) = 0: a one-word sentence would divide by zero.
        return if a.is_empty() || b.is_empty() {
            0.0
        } else {
            a.intersection(b).count() as f64
        };
    }
    a.intersection(b).count() as f64 / ((a.len() as f64).ln() + (b.len() as f64).ln())
}

/// PageRank scores of `sentences`.
pub fn rank(sentences: &[String]) -> Vec<f64> {
    let n = sentences.len();
    let bags: Vec<HashSet<String>> = sentences.iter().map(|s| words(s)).collect();
    let mut weights = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in (i + 1)..n {
            let w = similarity(&bags[i], &bags[j]);
            weights[i][j] = w;
            weights[j][i] = w;
        }
    }
    let out_sum: Vec<f64> = weights.iter().map(|row| row.iter().sum()).collect();
    let mut scores = vec![1.0; n];
    for _ in 0..MAX_ITERATIONS {
        let next: Vec<f64> = (0..n)
            .map(|i| {
                let inflow: f64 = (0..n)
                    .filter(|&j| out_sum[j] > 0.0)
                    .map(|j| weights[j][i] / out_sum[j] * scores[j])
                    .sum();
                (1.0 - DAMPING) + DAMPING * inflow
            })
            .collect();
        let delta: f64 = next.iter().zip(&scores).map(|(a, b)| (a - b).abs()).sum();
        scores = next;
        if delta < CONVERGED {
            break;
        }
    }
    scores
}

/// The indexes of the `k` best sentences, in their original order.
pub fn key_sentences(sentences: &[String], k: usize) -> Vec<usize> {
    let sentences = &sentences[..sentences.len().min(MAX_SENTENCES)];
    let scores = rank(sentences);
    let mut order: Vec<usize> = (0..sentences.len()).collect();
    // Highest score first; ties go to the earlier sentence.
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let mut best: Vec<usize> = order.into_iter().take(k).collect();
    best.sort_unstable();
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sentences_at_terminal_punctuation() {
        assert_eq!(
            sentences("Hello there. Is 3.5 enough? Yes!  "),
            vec!["Hello there.", "Is 3.5 enough?", "Yes!"]
        );
        assert!(sentences(" ... ").is_empty());
    }

    #[test]
    fn the_sentences_sharing_the_topic_rank_first() {
        let text = [
            "The refund for order 1234 was approved yesterday.",
            "Nice weather today.",
            "The refund for order 1234 will reach the card in five days.",
            "Thanks, bye.",
            "Order 1234 refund approved and card credited within five days.",
        ];
        let s: Vec<String> = text.iter().map(|t| t.to_string()).collect();
        let best = key_sentences(&s, 2);
        assert_eq!(best.len(), 2);
        assert!(best.iter().all(|i| [0, 2, 4].contains(i)), "{best:?}");
        let scores = rank(&s);
        assert!(scores[1] < scores[0] && scores[3] < scores[4]);
    }
}
