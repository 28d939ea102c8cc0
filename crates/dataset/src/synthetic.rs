//! `synthetic`: an embedded, seeded sentiment task whose label needs two relations between
//! tokens and their order, so the seed experiment's questions have a checkable answer.
//!
//! # Grammar
//!
//! A sentence is one clause (25%) or two clauses joined by a connective (75%):
//!
//! ```text
//! sentence   := clause | clause CONNECTIVE clause
//! clause     := DET NOUN VERB [NEGATOR] [INTENSIFIER] SENTIMENT FILLER*     (plus an optional decoy)
//! CONNECTIVE := contrast (but, yet, though, however) | joiner (and, plus, also, meanwhile)
//! ```
//!
//! - **Negation** (a local relation): a clause's polarity is its sentiment word's, flipped when a
//!   negator stands right before it (an intensifier may sit between: `not very good`).
//! - **Decoys**: 30% of clauses carry a negator somewhere it does not apply (between subject and
//!   verb, or after the sentiment word), so the mere presence of `not` says nothing.
//! - **Clause choice** (a long-range relation, and word order): after a *contrast* the second
//!   clause decides; after a *joiner* the first one does; a single clause decides alone.
//!
//! Both clauses draw their polarity independently, so half of the two-clause sentences hold
//! one positive and one negative clause: a bag of words cannot tell which one decides, and a
//! model without positions cannot tell which clause comes first or which word a negator precedes.
//!
//! Every example records the token positions that decide its label: the deciding clause's
//! sentiment word, its negator when there is one, and the connective.

use rand::{RngExt, SeedableRng, rngs::StdRng, seq::IndexedRandom};

use crate::{TextDataset, TextExample};

const POSITIVE: &[&str] = &[
    "good",
    "great",
    "excellent",
    "wonderful",
    "brilliant",
    "superb",
    "delightful",
    "charming",
    "moving",
    "clever",
    "funny",
    "gripping",
    "beautiful",
    "touching",
    "thrilling",
    "stunning",
    "fresh",
    "smart",
    "lovely",
    "engaging",
    "powerful",
    "memorable",
    "witty",
    "elegant",
    "inventive",
    "joyful",
    "solid",
    "warm",
    "vivid",
    "tender",
    "splendid",
    "captivating",
    "sharp",
    "rich",
    "refreshing",
    "satisfying",
    "compelling",
    "graceful",
    "uplifting",
    "enjoyable",
];
const NEGATIVE: &[&str] = &[
    "bad",
    "awful",
    "terrible",
    "boring",
    "dull",
    "tedious",
    "clumsy",
    "bland",
    "weak",
    "messy",
    "stale",
    "lifeless",
    "tiresome",
    "shallow",
    "silly",
    "sloppy",
    "flat",
    "predictable",
    "forgettable",
    "pointless",
    "awkward",
    "dreary",
    "grating",
    "hollow",
    "lazy",
    "muddled",
    "painful",
    "limp",
    "tired",
    "cheap",
    "crude",
    "empty",
    "annoying",
    "confusing",
    "overlong",
    "plodding",
    "sluggish",
    "unfunny",
    "joyless",
    "bloated",
];
const NEGATORS: &[&str] = &["not", "never", "hardly", "barely"];
const INTENSIFIERS: &[&str] = &[
    "very", "really", "quite", "truly", "rather", "fairly", "deeply", "utterly",
];
const CONTRASTS: &[&str] = &["but", "yet", "though", "however"];
const JOINERS: &[&str] = &["and", "plus", "also", "meanwhile"];
const DETERMINERS: &[&str] = &["the", "this", "its", "that", "our", "every"];
const NOUNS: &[&str] = &[
    "movie",
    "film",
    "plot",
    "story",
    "script",
    "cast",
    "acting",
    "ending",
    "soundtrack",
    "dialogue",
    "director",
    "pacing",
    "score",
    "lead",
    "villain",
    "humor",
    "premise",
    "finale",
    "editing",
    "visuals",
    "setting",
    "characters",
    "sequel",
    "remake",
    "opening",
    "photography",
    "performance",
    "production",
    "writing",
    "music",
];
const VERBS: &[&str] = &[
    "was", "is", "seemed", "felt", "looked", "became", "remained", "proved", "appeared", "sounded",
];
const FILLERS: &[&[&str]] = &[
    &["at", "times"],
    &["for", "me"],
    &["in", "the", "end"],
    &["overall"],
    &["in", "places"],
    &["to", "be", "honest"],
    &["from", "start", "to", "finish"],
    &["for", "the", "most", "part"],
    &["on", "the", "whole"],
    &["by", "the", "end"],
    &["in", "every", "scene"],
    &["all", "along"],
    &["as", "expected"],
    &["on", "screen"],
    &["this", "time"],
    &["after", "all"],
    &["in", "my", "view"],
    &["throughout"],
];

/// Sizes and seed of the generated splits.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticConfig {
    /// Long texts: each example is stretched with neutral filler phrases to a length drawn
    /// uniformly from this range (in tokens), the first clause near the start and the
    /// connective with the second clause near the end, so the deciding tokens stand hundreds of
    /// tokens apart. `None` (default): the short sentences alone.
    pub long: Option<std::ops::RangeInclusive<usize>>,
    /// Training examples. Default: 20,000.
    pub train: usize,
    /// Validation examples. Default: 2,000.
    pub validation: usize,
    /// Test examples. Default: 2,000.
    pub test: usize,
    /// Generator seed; the same seed gives the same examples. Default: 2017.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            long: None,
            train: 20_000,
            validation: 2_000,
            test: 2_000,
            seed: 2017,
        }
    }
}

impl SyntheticConfig {
    /// `synthetic-long`: 256 to 1,024 tokens an example; 5,000 / 500 / 500 examples (the cost of
    /// attention grows with the square of the length).
    pub fn long() -> Self {
        Self {
            long: Some(256..=1024),
            train: 5_000,
            validation: 500,
            test: 500,
            ..Self::default()
        }
    }

    /// `synthetic` or `synthetic-long`.
    pub fn name(&self) -> &'static str {
        if self.long.is_some() {
            "synthetic-long"
        } else {
            "synthetic"
        }
    }
}

/// Class names: 0 = negative, 1 = positive.
pub const LABELS: [&str; 2] = ["negative", "positive"];

/// Generates the three splits (`validation` and `test` follow `train` from the same stream).
pub fn generate(config: &SyntheticConfig) -> TextDataset {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut take = |n: usize| {
        (0..n)
            .map(|_| match &config.long {
                None => example(&mut rng),
                Some(lengths) => long_example(&mut rng, lengths.clone()),
            })
            .collect::<Vec<_>>()
    };
    let train = take(config.train);
    let validation = take(config.validation);
    let test = take(config.test);
    TextDataset {
        name: config.name().into(),
        labels: LABELS.iter().map(|s| s.to_string()).collect(),
        train,
        validation,
        test: Some(test),
    }
}

/// One clause's words, its polarity (+1/-1) and its decisive positions (relative to the clause).
struct Clause {
    words: Vec<&'static str>,
    polarity: i8,
    decisive: Vec<usize>,
}

fn clause(rng: &mut StdRng) -> Clause {
    let mut words = vec![
        *DETERMINERS.choose(rng).unwrap(),
        *NOUNS.choose(rng).unwrap(),
        *VERBS.choose(rng).unwrap(),
    ];
    let mut decisive = Vec::new();
    let negated = rng.random_bool(0.35);
    if negated {
        decisive.push(words.len());
        words.push(NEGATORS.choose(rng).unwrap());
    }
    if rng.random_bool(0.4) {
        words.push(INTENSIFIERS.choose(rng).unwrap());
    }
    let positive = rng.random_bool(0.5);
    decisive.push(words.len());
    words.push(
        if positive { POSITIVE } else { NEGATIVE }
            .choose(rng)
            .unwrap(),
    );
    let sentiment_at = words.len() - 1;
    for _ in 0..rng.random_range(0..=2) {
        words.extend_from_slice(FILLERS.choose(rng).unwrap());
    }
    if rng.random_bool(0.3) {
        // A decoy negator where it cannot apply: between subject and verb, or after the
        // sentiment word (never right before it, nor before an intensifier).
        let decoy = *NEGATORS.choose(rng).unwrap();
        let at = if rng.random_bool(0.5) {
            2
        } else {
            rng.random_range(sentiment_at + 1..=words.len())
        };
        words.insert(at, decoy);
        for d in &mut decisive {
            if *d >= at {
                *d += 1;
            }
        }
    }
    let polarity = if positive != negated { 1 } else { -1 };
    Clause {
        words,
        polarity,
        decisive,
    }
}

/// One example from `rng`.
pub fn example(rng: &mut StdRng) -> TextExample {
    let first = clause(rng);
    let (words, polarity, decisive) = if rng.random_bool(0.25) {
        (first.words, first.polarity, first.decisive)
    } else {
        let contrast = rng.random_bool(0.5);
        let connective = *if contrast { CONTRASTS } else { JOINERS }
            .choose(rng)
            .unwrap();
        let second = clause(rng);
        let at = first.words.len();
        let (polarity, mut decisive) = if contrast {
            (
                second.polarity,
                second.decisive.iter().map(|d| d + at + 1).collect(),
            )
        } else {
            (first.polarity, first.decisive)
        };
        decisive.push(at);
        decisive.sort_unstable();
        let words = [first.words, vec![connective], second.words].concat();
        (words, polarity, decisive)
    };
    TextExample {
        label: usize::from(polarity > 0),
        text: words.join(" "),
        decisive,
    }
}

/// One example stretched to a length drawn from `lengths` (see [`SyntheticConfig::long`]): the
/// words of [`example`] with neutral filler between and around its clauses. The label rule is
/// unchanged, so [`label_of`] holds for long examples too.
pub fn long_example(rng: &mut StdRng, lengths: std::ops::RangeInclusive<usize>) -> TextExample {
    let short = example(rng);
    let words: Vec<&str> = short.text.split(' ').collect();
    let target = rng.random_range(lengths).max(words.len());
    let free = target - words.len();
    // Split point: after the first clause (at the connective), else anywhere.
    let connective = words
        .iter()
        .position(|w| CONTRASTS.contains(w) || JOINERS.contains(w));
    // Most filler goes between the clauses; a little before and after.
    let (before, after) = (
        rng.random_range(0..=free / 16),
        rng.random_range(0..=free / 16),
    );
    let middle = free - before - after;
    let cut = connective.unwrap_or_else(|| rng.random_range(0..=words.len()));
    let mut out: Vec<&str> = Vec::with_capacity(target);
    let mut decisive = Vec::new();
    let mut push_words = |out: &mut Vec<_>, range: std::ops::Range<usize>| {
        for i in range {
            if short.decisive.contains(&i) {
                decisive.push(out.len());
            }
            out.push(words[i]);
        }
    };
    filler(rng, &mut out, before);
    if connective.is_some() {
        push_words(&mut out, 0..cut);
        filler(rng, &mut out, middle);
    } else {
        filler(rng, &mut out, middle);
        push_words(&mut out, 0..cut);
    }
    push_words(&mut out, cut..words.len());
    filler(rng, &mut out, after);
    TextExample {
        label: short.label,
        text: out.join(" "),
        decisive,
    }
}

/// Appends exactly `n` filler tokens: whole phrases while they fit, then one-word ones.
fn filler(rng: &mut StdRng, out: &mut Vec<&str>, n: usize) {
    let end = out.len() + n;
    while out.len() < end {
        let phrase = FILLERS.choose(rng).unwrap();
        if out.len() + phrase.len() <= end {
            out.extend_from_slice(phrase);
        } else {
            out.push(if rng.random_bool(0.5) {
                "overall"
            } else {
                "throughout"
            });
        }
    }
}

/// The label the grammar assigns to `text`, recomputed from the words alone (the rule the
/// generator follows, written independently of it, for tests and for checking a dataset).
pub fn label_of(text: &str) -> Option<usize> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let connective = words
        .iter()
        .position(|w| CONTRASTS.contains(w) || JOINERS.contains(w));
    let deciding: &[&str] = match connective {
        Some(i) if CONTRASTS.contains(&words[i]) => &words[i + 1..],
        Some(i) => &words[..i],
        None => &words,
    };
    let at = deciding
        .iter()
        .position(|w| POSITIVE.contains(w) || NEGATIVE.contains(w))?;
    let mut polarity = POSITIVE.contains(&deciding[at]);
    let mut before = at.checked_sub(1).map(|i| deciding[i]);
    if before.is_some_and(|w| INTENSIFIERS.contains(&w)) {
        before = at.checked_sub(2).map(|i| deciding[i]);
    }
    if before.is_some_and(|w| NEGATORS.contains(&w)) {
        polarity = !polarity;
    }
    Some(usize::from(polarity))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_examples_keep_the_label_rule_and_their_length() {
        let data = generate(&SyntheticConfig {
            train: 300,
            validation: 10,
            test: 10,
            ..SyntheticConfig::long()
        });
        assert_eq!(data.name, "synthetic-long");
        let mut far = 0;
        for e in &data.train {
            let words: Vec<&str> = e.text.split(' ').collect();
            assert!(
                (256..=1024).contains(&words.len()),
                "{} tokens",
                words.len()
            );
            assert_eq!(label_of(&e.text), Some(e.label), "{}", e.text);
            // Decisive positions point at the grammar's words, not at filler.
            for &d in &e.decisive {
                let w = words[d];
                assert!(
                    [POSITIVE, NEGATIVE, NEGATORS, CONTRASTS, JOINERS]
                        .iter()
                        .any(|l| l.contains(&w)),
                    "`{w}` at {d} is not decisive"
                );
            }
            let span = e.decisive.last().unwrap() - e.decisive.first().unwrap();
            far += usize::from(span >= 100);
        }
        // Two-clause examples that the first clause decides put the connective far away.
        assert!(
            far > 50,
            "only {far} of 300 with deciding tokens >= 100 apart"
        );
    }

    #[test]
    fn word_lists_do_not_overlap() {
        let lists: [&[&str]; 9] = [
            POSITIVE,
            NEGATIVE,
            NEGATORS,
            INTENSIFIERS,
            CONTRASTS,
            JOINERS,
            DETERMINERS,
            NOUNS,
            VERBS,
        ];
        let mut all: Vec<&str> = lists.iter().flat_map(|l| l.iter().copied()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a word is in two lists");
        // Filler words may repeat each other but must not collide with the grammar's roles.
        for filler in FILLERS.iter().flat_map(|f| f.iter()) {
            let roles: [&[&str]; 6] = [
                POSITIVE,
                NEGATIVE,
                NEGATORS,
                INTENSIFIERS,
                CONTRASTS,
                JOINERS,
            ];
            assert!(
                !roles.iter().any(|l| l.contains(filler)),
                "filler `{filler}` has a role"
            );
        }
    }
}
