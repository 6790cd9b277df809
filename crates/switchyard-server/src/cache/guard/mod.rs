//! The lexical guard of semantic hits: two prompts whose embeddings are close can still need different
//! answers ("capital of France" and "capital of Germany", "30 °C to °F" and "30 °F to °C", "the largest planet"
//! and "the smallest"). Sentence embeddings score such near misses as close as rewordings, so a semantic hit
//! also needs the two prompts to agree on their words:
//!
//! - **the same salient tokens:** numbers (digits and number words), ordinals, operators ("+", "!="),
//!   negations, and names (capitalised words not at a sentence's start) of either prompt must occur in the other;
//! - **the same negations**, counted: "with" and "without", "does" and "does not" differ;
//! - **no word replaced, none slipped in:** after dropping function and politeness words, the content words only
//!   one prompt has must all be on one side (never "adult" in one and "infant" in the other), and there they
//!   must come before or after all the shared ones (a greeting, a closing request), never among them ("eat
//!   chicken", "eat raw chicken"). Spelling slips (one edit or two letters swapped, in words of five letters or
//!   more) and inflections ("making", "make") count as the same word. Question words ("when", "why") and
//!   direction words ("from", "over", "under") are content words;
//! - **no swap:** two shared words close together (four tokens or fewer apart) must not trade places
//!   ("a tenant to a landlord", "a landlord to a tenant"; "45 minus 18", "18 minus 45").
//!
//! Words are runs of letters in any script, so a prompt in another language is held to the same rules (its
//! negations and number words are not known, so a slipped-in "не" is refused as a slipped-in word). The rules
//! cost rewordings that replace a word by a synonym ("causes", "drivers"), insert one, or move a short phrase
//! across a neighbour; a missed hit costs one upstream call, a wrong hit serves a wrong answer. Measured on the
//! paraphrase sets under `tests/data` (see the README's cache section).

use std::collections::HashSet;

mod words;

use words::{BARE_NEGATIONS, NEGATIONS, NUMBER_WORDS, OPERATORS, ORDINALS, STYLE};

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

    fn is_operator(&self) -> bool {
        self.norm.starts_with(|c: char| OPERATORS.contains(c) || c == '!')
    }

    /// Numbers, ordinals, operators, negations and names.
    fn is_salient(&self) -> bool {
        self.is_number() || self.is_operator() || self.is_negation() || self.name
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
    salient_agree(&a, &b) && negations(&a) == negations(&b) && words_kept(&a, &b) && !swapped(&a, &b)
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

/// The content words agree: those only one prompt has (up to spelling slips and inflections) are on one side
/// only (none replaced by another), and there they lie before or after every shared content word (a greeting,
/// a closing "please"), never among them ("eat chicken", "eat raw chicken").
fn words_kept(a: &[Token], b: &[Token]) -> bool {
    let content = |tokens: &[Token]| -> HashSet<String> {
        tokens.iter().filter(|t| t.is_content()).map(|t| t.norm.clone()).collect()
    };
    let (ca, cb) = (content(a), content(b));
    let only_a: Vec<&String> = ca.difference(&cb).collect();
    let only_b: Vec<&String> = cb.difference(&ca).collect();
    let unmatched_a: HashSet<&str> =
        only_a.iter().filter(|x| !only_b.iter().any(|y| same_word(x, y))).map(|x| x.as_str()).collect();
    let unmatched_b: HashSet<&str> =
        only_b.iter().filter(|y| !only_a.iter().any(|x| same_word(x, y))).map(|y| y.as_str()).collect();
    if !unmatched_a.is_empty() && !unmatched_b.is_empty() {
        return false;
    }
    at_edges(a, &unmatched_a) && at_edges(b, &unmatched_b)
}

/// Every content token of `tokens` in `added` lies before the first or after the last of the others.
fn at_edges(tokens: &[Token], added: &HashSet<&str>) -> bool {
    if added.is_empty() {
        return true;
    }
    let content: Vec<(usize, bool)> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_content())
        .map(|(i, t)| (i, added.contains(t.norm.as_str())))
        .collect();
    let shared = content.iter().filter(|(_, added)| !added).map(|(i, _)| *i);
    let (Some(first), Some(last)) = (shared.clone().min(), shared.max()) else { return false };
    content.iter().filter(|(_, added)| *added).all(|(i, _)| *i < first || *i > last)
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

/// The same word: equal stems, or (five letters or more, the same first letter) one edit or two neighbouring
/// letters swapped.
fn same_word(x: &str, y: &str) -> bool {
    if stem(x) == stem(y) {
        return true;
    }
    if x.chars().next() != y.chars().next() || x.chars().count().min(y.chars().count()) < 5 {
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
/// word normalised, and marked as a name when it is capitalised mid-sentence. Words are runs of letters and
/// digits in any script; numbers keep their decimal point, time colon and thousands separators; runs of
/// operator characters are tokens of their own.
fn tokens(text: &str) -> Vec<Token> {
    let text = expand_contractions(text);
    let mut out = Vec::new();
    let mut sentence_start = true;
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        let kind = if c.is_ascii_digit() {
            Run::Number
        } else if c.is_alphanumeric() {
            Run::Word
        } else if OPERATORS.contains(c) || (c == '!' && text[start + 1..].starts_with('=')) {
            Run::Operator
        } else {
            if matches!(c, '.' | '!' | '?' | ':' | ';' | '\n') {
                sentence_start = true;
            }
            chars.next();
            continue;
        };
        let mut end = start;
        while let Some(&(i, d)) = chars.peek() {
            let keep = match kind {
                Run::Number => d.is_ascii_digit() || number_separator(&text, i, d),
                Run::Word => d.is_alphanumeric() || matches!(d, '+' | '#'),
                Run::Operator => OPERATORS.contains(d) || (i == start && d == '!'),
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
    }
    out
}

/// What a run of characters makes.
#[derive(Clone, Copy)]
enum Run {
    Number,
    Word,
    Operator,
}

/// A separator inside a number: "." or ":" before a digit, "," before exactly three digits (a decimal comma,
/// "3,5", ends the number).
fn number_separator(text: &str, i: usize, c: char) -> bool {
    let rest = &text[i + c.len_utf8()..];
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    match c {
        '.' | ':' => digits > 0,
        ',' => digits == 3,
        _ => false,
    }
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
    match lower.strip_suffix('s') {
        Some(singular) if singular.chars().count() >= 3 && !singular.ends_with('s') => singular.to_string(),
        _ => lower.to_string(),
    }
}

/// Whether `text` starts with the ASCII `prefix`, ignoring ASCII case.
fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len()).is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Whether the character at byte `at` of `text` is a letter.
fn letter_at(text: &str, at: usize) -> bool {
    text.get(at..).and_then(|r| r.chars().next()).is_some_and(char::is_alphabetic)
}

/// "n't" as " not", "cannot" as "can not", and clitics ('s, 're, 've, 'll, 'd, 'm) dropped. Works on the text as
/// it is (any script): only ASCII letters are compared, ignoring their case.
fn expand_contractions(text: &str) -> String {
    let text = text.replace('\u{2019}', "'");
    let mut out = String::with_capacity(text.len() + 8);
    let mut after_letter = false;
    let mut i = 0;
    while let Some(ch) = text[i..].chars().next() {
        let rest = &text[i..];
        if after_letter && starts_with_ignore_case(rest, "n't") {
            out.push_str(" not");
            (i, after_letter) = (i + 3, false);
            continue;
        }
        if !after_letter && starts_with_ignore_case(rest, "cannot") && !letter_at(rest, 6) {
            out.push_str(&rest[..3]);
            out.push_str(" not");
            (i, after_letter) = (i + 6, false);
            continue;
        }
        if ch == '\'' {
            let clitic = ["s", "re", "ve", "ll", "d", "m"]
                .iter()
                .find(|c| after_letter && starts_with_ignore_case(&rest[1..], c) && !letter_at(&rest[1..], c.len()));
            if let Some(c) = clitic {
                (i, after_letter) = (i + 1 + c.len(), false);
                continue;
            }
        }
        out.push(ch);
        after_letter = ch.is_alphabetic();
        i += ch.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests;
