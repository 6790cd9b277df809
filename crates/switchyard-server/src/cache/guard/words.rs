//! The guard's word lists.

/// Function and politeness words: they carry the request's tone, not what it asks. Question words
/// (who, when, where, why, how), direction words (from, over, under) and quantifiers (some, any, and, or) are
/// not among them: "when" and "why" ask different things. "to" is ("how to" and "how do I" ask the same).
#[rustfmt::skip]
pub(super) const STYLE: &[&str] = &[
    "a", "an", "the", "but", "so", "of", "to", "in", "on", "at", "for", "with", "by", "about", "as", "into", "onto",
    "then", "that", "this", "these", "those", "there", "here", "is", "are", "was", "were", "be", "been", "being",
    "am", "do", "does", "did", "doing", "done", "have", "has", "had", "having", "can", "could", "would", "should",
    "will", "shall", "may", "might", "must", "i", "me", "my", "mine", "we", "us", "our", "you", "your", "yours",
    "he", "him", "his", "she", "her", "it", "its", "they", "them", "their", "what", "whats", "which", "whom",
    "whose", "please", "kindly", "thanks", "thank", "hi", "hello", "hey", "just", "quick", "quickly", "briefly",
    "simply", "really", "very", "actually", "basically", "maybe", "tell", "give", "let", "know", "want", "need",
    "like", "wondering", "wonder", "wondered", "curious", "help", "mind", "trouble", "if", "also", "too", "again",
    "honestly", "alright", "okay", "ok", "hmm", "well", "good", "morning", "afternoon", "evening", "question",
    "questions", "anyway", "one", "explain", "describe",
];

/// Words that negate or exclude.
pub(super) const NEGATIONS: &[&str] =
    &["not", "no", "never", "without", "none", "nothing", "nobody", "neither", "nor", "except"];

/// Negated auxiliaries typed without their apostrophe, read as the auxiliary and "not".
#[rustfmt::skip]
pub(super) const BARE_NEGATIONS: &[(&str, &str)] = &[
    ("dont", "do"), ("doesnt", "does"), ("didnt", "did"), ("cant", "can"), ("wont", "will"), ("isnt", "is"),
    ("arent", "are"), ("wasnt", "was"), ("werent", "were"), ("shouldnt", "should"), ("wouldnt", "would"),
    ("couldnt", "could"), ("havent", "have"), ("hasnt", "has"), ("hadnt", "had"),
];

/// Number words, as digits.
#[rustfmt::skip]
pub(super) const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"), ("two", "2"), ("three", "3"), ("four", "4"), ("five", "5"), ("six", "6"), ("seven", "7"),
    ("eight", "8"), ("nine", "9"), ("ten", "10"), ("eleven", "11"), ("twelve", "12"), ("twenty", "20"),
    ("hundred", "100"), ("thousand", "1000"), ("million", "1000000"), ("billion", "1000000000"), ("dozen", "12"),
];

/// Ordinals, as `#n` (`#-1`: the last).
#[rustfmt::skip]
pub(super) const ORDINALS: &[(&str, &str)] =
    &[("first", "#1"), ("second", "#2"), ("third", "#3"), ("fourth", "#4"), ("fifth", "#5"), ("last", "#-1")];

/// Characters that make operator tokens ("+", "-", "==", "!=", "<=", ...).
pub(super) const OPERATORS: &str = "+-*/^=<>%";
