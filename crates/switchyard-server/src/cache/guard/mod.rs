//! The lexical guard of semantic hits: two prompts whose embeddings are close can still need different
//! answers ("capital of France" and "capital of Germany", "30 °C to °F" and "30 °F to °C", "the largest planet"
//! and "the smallest"). Sentence embeddings score such near misses as close as rewordings, so a semantic hit
//! also needs the two prompts to agree on their words:
//!
//! - **the same salient tokens:** numbers (digits and number words), ordinals, negations, and names (capitalised
//!   words not at a sentence's start) of either prompt must occur in the other;
//! - **the same negations**, counted: "with" and "without", "does" and "does not" differ;
//! - **no substitution:** after dropping function and politeness words, the content words only one prompt has
//!   must all be on one side (words added, as in "Hi there! What year did the Titanic sink?", or dropped), never
//!   some on each (a word replaced: "adult" and "infant", "buyer" and "seller"). Spelling slips (one edit, or
//!   two letters swapped) and inflections ("making", "make") count as the same word;
//! - **no swap:** two shared words close together (four tokens or fewer apart) must not trade places
//!   ("a tenant to a landlord", "a landlord to a tenant"; "45 minus 18", "18 minus 45").
//!
//! The rules cost rewordings that replace a word by a synonym ("causes", "drivers") or move a short phrase
//! across a neighbour; a missed hit costs one upstream call, a wrong hit serves a wrong answer. Measured on
//! the paraphrase sets under `tests/data` (see the README's cache section).

use std::collections::HashSet;

/// Function, question and politeness words: they carry the request's tone, not what it asks.
const STYLE: &[&str] = &[
    "a",
    "an",
    "the",
    "and",
    "or",
    "but",
    "so",
    "of",
    "to",
    "in",
    "on",
    "at",
    "for",
    "from",
    "with",
    "by",
    "about",
    "as",
    "into",
    "onto",
    "over",
    "under",
    "than",
    "then",
    "that",
    "this",
    "these",
    "those",
    "there",
    "here",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "am",
    "do",
    "does",
    "did",
    "doing",
    "done",
    "have",
    "has",
    "had",
    "having",
    "can",
    "could",
    "would",
    "should",
    "will",
    "shall",
    "may",
    "might",
    "must",
    "i",
    "me",
    "my",
    "mine",
    "we",
    "us",
    "our",
    "you",
    "your",
    "yours",
    "he",
    "him",
    "his",
    "she",
    "her",
    "it",
    "its",
    "they",
    "them",
    "their",
    "what",
    "whats",
    "which",
    "who",
    "whom",
    "whose",
    "when",
    "where",
    "why",
    "how",
    "please",
    "kindly",
    "thanks",
    "thank",
    "hi",
    "hello",
    "hey",
    "just",
    "quick",
    "quickly",
    "briefly",
    "simply",
    "really",
    "very",
    "actually",
    "basically",
    "maybe",
    "some",
    "any",
    "tell",
    "give",
    "let",
    "know",
    "want",
    "need",
    "like",
    "wondering",
    "wonder",
    "wondered",
    "curious",
    "help",
    "mind",
    "trouble",
    "if",
    "also",
    "too",
    "again",
    "honestly",
    "alright",
    "okay",
    "ok",
    "hmm",
    "well",
    "good",
    "morning",
    "afternoon",
    "evening",
    "question",
    "questions",
    "anyway",
    "one",
    "explain",
    "describe",
];

/// Words that negate or exclude.
const NEGATIONS: &[&str] = &["not", "no", "never", "without", "none", "nothing", "nobody", "neither", "nor", "except"];

/// Negated auxiliaries typed without their apostrophe, read as the auxiliary and "not".
const BARE_NEGATIONS: &[(&str, &str)] = &[
    ("dont", "do"),
    ("doesnt", "does"),
    ("didnt", "did"),
    ("cant", "can"),
    ("wont", "will"),
    ("isnt", "is"),
    ("arent", "are"),
    ("wasnt", "was"),
    ("werent", "were"),
    ("shouldnt", "should"),
    ("wouldnt", "would"),
    ("couldnt", "could"),
    ("havent", "have"),
    ("hasnt", "has"),
    ("hadnt", "had"),
];

/// Number words, as digits.
const NUMBER_WORDS: &[(&str, &str)] = &[
    ("zero", "0"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
    ("eleven", "11"),
    ("twelve", "12"),
    ("twenty", "20"),
    ("hundred", "100"),
    ("thousand", "1000"),
    ("million", "1000000"),
    ("billion", "1000000000"),
    ("dozen", "12"),
];

/// Ordinals, as `#n` (`#-1`: the last).
const ORDINALS: &[(&str, &str)] =
    &[("first", "#1"), ("second", "#2"), ("third", "#3"), ("fourth", "#4"), ("fifth", "#5"), ("last", "#-1")];

/// Shared words this close (in tokens) that trade places make a swap.
const SWAP_WINDOW: usize = 4;

/// One word of a prompt.
#[derive(Debug, Clone, PartialEq)]
struct Token {
    /// Lower-cased and normalised (number words as digits, a plural's `s` dropped).
    norm: String,
    /// A name: capitalised, not a style word, and not the first word of a sentence.
    name: bool,
}

impl Token {
    fn is_style(&self) -> bool {
        STYLE.contains(&self.norm.as_str())
    }

    fn is_negation(&self) -> bool {
        NEGATIONS.contains(&self.norm.as_str())
    }

    fn is_number(&self) -> bool {
        self.norm.starts_with(|c: char| c.is_ascii_digit() || c == '#')
    }

    /// Numbers, ordinals, negations and names.
    fn is_salient(&self) -> bool {
        self.is_number() || self.is_negation() || self.name
    }

    /// A word that says what is asked (not a style word or a negation).
    fn is_content(&self) -> bool {
        !self.is_style() && !self.is_negation()
    }
}

/// Whether a semantic hit between `cached` and `asked` (already close in embedding) keeps their words: see the
/// module docs.
pub fn compatible(cached: &str, asked: &str) -> bool {
    let (a, b) = (tokens(cached), tokens(asked));
    salient_agree(&a, &b) && negations(&a) == negations(&b) && !substituted(&a, &b) && !swapped(&a, &b)
}

/// Every salient token of each prompt occurs in the other.
fn salient_agree(a: &[Token], b: &[Token]) -> bool {
    let in_all = |tokens: &[Token]| tokens.iter().map(|t| t.norm.clone()).collect::<HashSet<_>>();
    let (all_a, all_b) = (in_all(a), in_all(b));
    a.iter().filter(|t| t.is_salient()).all(|t| all_b.contains(&t.norm))
        && b.iter().filter(|t| t.is_salient()).all(|t| all_a.contains(&t.norm))
}

fn negations(tokens: &[Token]) -> Vec<&str> {
    let mut out: Vec<&str> = tokens.iter().filter(|t| t.is_negation()).map(|t| t.norm.as_str()).collect();
    out.sort_unstable();
    out
}

/// Content words only one prompt has, on both sides (a word replaced by another).
fn substituted(a: &[Token], b: &[Token]) -> bool {
    let content = |tokens: &[Token]| -> HashSet<String> {
        tokens.iter().filter(|t| t.is_content()).map(|t| t.norm.clone()).collect()
    };
    let (ca, cb) = (content(a), content(b));
    let only_a: Vec<&String> = ca.difference(&cb).collect();
    let only_b: Vec<&String> = cb.difference(&ca).collect();
    let unmatched_a = only_a.iter().any(|x| !only_b.iter().any(|y| same_word(x, y)));
    let unmatched_b = only_b.iter().any(|y| !only_a.iter().any(|x| same_word(x, y)));
    unmatched_a && unmatched_b
}

/// Two shared content words close together in both prompts, in the opposite order.
fn swapped(a: &[Token], b: &[Token]) -> bool {
    let first_positions = |tokens: &[Token]| -> Vec<(String, usize)> {
        let mut seen = HashSet::new();
        tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_content() && seen.insert(t.norm.clone()))
            .map(|(i, t)| (t.norm.clone(), i))
            .collect()
    };
    let pa = first_positions(a);
    let pb: std::collections::HashMap<String, usize> = first_positions(b).into_iter().collect();
    let shared: Vec<(usize, usize)> = pa.iter().filter_map(|(w, i)| pb.get(w).map(|j| (*i, *j))).collect();
    shared.iter().enumerate().any(|(k, &(ia, ib))| {
        shared[k + 1..].iter().any(|&(ja, jb)| {
            let (da, db) = (ja as i64 - ia as i64, jb as i64 - ib as i64);
            da * db < 0 && da.unsigned_abs() as usize <= SWAP_WINDOW && db.unsigned_abs() as usize <= SWAP_WINDOW
        })
    })
}

/// The same word: equal stems, or (four letters or more) one edit or two neighbouring letters swapped.
fn same_word(x: &str, y: &str) -> bool {
    if stem(x) == stem(y) {
        return true;
    }
    if x.chars().next() != y.chars().next() || x.chars().count().min(y.chars().count()) < 4 {
        return false;
    }
    edit_distance(x, y) <= 1 || transposed(x, y)
}

/// The word without one common suffix (`ing`, `ed`, `ly`, `es`, `s`, `e`).
fn stem(word: &str) -> &str {
    for suffix in ["ing", "ed", "ly", "es", "s", "e"] {
        if word.len() > suffix.len() + 2 {
            if let Some(stem) = word.strip_suffix(suffix) {
                return stem;
            }
        }
    }
    word
}

/// Levenshtein distance, by characters.
fn edit_distance(x: &str, y: &str) -> usize {
    let y: Vec<char> = y.chars().collect();
    let mut row: Vec<usize> = (0..=y.len()).collect();
    for (i, cx) in x.chars().enumerate() {
        let mut previous = row.clone();
        std::mem::swap(&mut previous, &mut row);
        row[0] = i + 1;
        for (j, cy) in y.iter().enumerate() {
            row[j + 1] = (previous[j + 1] + 1).min(row[j] + 1).min(previous[j] + usize::from(cx != *cy));
        }
    }
    row[y.len()]
}

/// Two neighbouring letters swapped ("calroies", "calories").
fn transposed(x: &str, y: &str) -> bool {
    let (x, y): (Vec<char>, Vec<char>) = (x.chars().collect(), y.chars().collect());
    if x.len() != y.len() {
        return false;
    }
    let diff: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
    diff.len() == 2 && diff[1] == diff[0] + 1 && x[diff[0]] == y[diff[1]] && x[diff[1]] == y[diff[0]]
}

/// The prompt's words: contractions opened ("can't" → "can not"), possessive and other clitics dropped, each
/// word normalised, and marked as a name when it is capitalised mid-sentence.
fn tokens(text: &str) -> Vec<Token> {
    let text = expand_contractions(text);
    let mut out = Vec::new();
    let mut sentence_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_ascii_alphabetic() || c.is_ascii_digit() {
            let numeric = c.is_ascii_digit();
            let mut end = start;
            while let Some(&(i, d)) = chars.peek() {
                let keep = if numeric {
                    d.is_ascii_digit() || (matches!(d, '.' | ',' | ':') && next_is_digit(&text, i))
                } else {
                    d.is_ascii_alphanumeric() || matches!(d, '+' | '#')
                };
                if !keep {
                    break;
                }
                end = i + d.len_utf8();
                chars.next();
            }
            let word = &text[start..end];
            match BARE_NEGATIONS.iter().find(|(bare, _)| word.eq_ignore_ascii_case(bare)) {
                Some((_, auxiliary)) => {
                    out.push(token(auxiliary, sentence_start));
                    out.push(token("not", false));
                }
                None => out.push(token(word, sentence_start)),
            }
            sentence_start = false;
        } else {
            if matches!(c, '.' | '!' | '?' | ':' | ';' | '\n') {
                sentence_start = true;
            }
            chars.next();
        }
    }
    out
}

fn next_is_digit(text: &str, i: usize) -> bool {
    text[i + 1..].chars().next().is_some_and(|c| c.is_ascii_digit())
}

fn token(word: &str, sentence_start: bool) -> Token {
    let lower = word.to_lowercase();
    let capitalised = word.chars().next().is_some_and(char::is_uppercase);
    // A style word keeps its spelling, so that "does" is not read as the content word "doe".
    let norm = if STYLE.contains(&lower.as_str()) { lower } else { normalise(&lower) };
    let name = capitalised && !sentence_start && !STYLE.contains(&norm.as_str());
    Token { norm, name }
}

fn normalise(lower: &str) -> String {
    if let Some((_, digits)) = NUMBER_WORDS.iter().find(|(w, _)| *w == lower) {
        return (*digits).to_string();
    }
    if let Some((_, ordinal)) = ORDINALS.iter().find(|(w, _)| *w == lower) {
        return (*ordinal).to_string();
    }
    if lower.starts_with(|c: char| c.is_ascii_digit()) {
        return lower.replace(',', "");
    }
    match lower {
        "wo" => return "will".into(),
        "ca" => return "can".into(),
        _ => {}
    }
    if lower.len() > 3 && lower.ends_with('s') && !lower.ends_with("ss") {
        return lower[..lower.len() - 1].to_string();
    }
    lower.to_string()
}

/// "n't" as " not", "cannot" as "can not", and clitics ('s, 're, 've, 'll, 'd, 'm) dropped.
fn expand_contractions(text: &str) -> String {
    let text = text.replace('\u{2019}', "'");
    let mut out = String::with_capacity(text.len() + 8);
    let lower = text.to_lowercase();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let rest = &lower[i..];
        if rest.starts_with("n't") && i > 0 && bytes[i - 1].is_ascii_alphabetic() {
            out.push_str(" not");
            i += 3;
            continue;
        }
        if rest.starts_with("cannot") && (i == 0 || !bytes[i - 1].is_ascii_alphabetic()) {
            out.push_str(&text[i..i + 3]);
            out.push_str(" not");
            i += 6;
            continue;
        }
        if rest.starts_with('\'') {
            let clitic = ["s", "re", "ve", "ll", "d", "m"].iter().find(|c| {
                rest[1..].starts_with(**c) && !rest[1 + c.len()..].starts_with(|ch: char| ch.is_ascii_alphabetic())
            });
            if let Some(c) = clitic {
                i += 1 + c.len();
                continue;
            }
        }
        let ch = text[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests;
