use super::*;

#[test]
fn rewordings_pass() {
    for (a, b) in [
        ("What year did the Titanic sink?", "Hi there! I was wondering, what year did the Titanic sink?"),
        ("Why doesn't my sourdough rise?", "Why does my sourdough not rise?"),
        ("I can't log in to my account", "I cannot log in to my account"),
        ("recipie for banana bread without eggs", "Recipe for banana bread without eggs"),
        ("How many calroies in a medium banana", "How many calories are in a medium banana?"),
        ("Can you please tell me how to reset my router?", "How do I reset my router?"),
        ("What's 12 times 14?", "What is 12 times 14?"),
        ("Summarize the causes of the Great Depression.", "Summarize the causes of the Great Depression, please."),
        ("Convert 1,000 meters to feet", "convert 1000 meters to feet"),
    ] {
        assert!(compatible(a, b), "{a:?} / {b:?}");
        assert!(compatible(b, a), "{b:?} / {a:?}");
    }
}

#[test]
fn near_misses_are_refused() {
    for (a, b) in [
        ("What is the capital of France?", "What is the capital of Germany?"),
        ("Convert 30 degrees Celsius to Fahrenheit.", "Convert 30 degrees Fahrenheit to Celsius."),
        ("What is 45 minus 18?", "What is 18 minus 45?"),
        ("Write a letter from a tenant to a landlord.", "Write a letter from a landlord to a tenant."),
        ("Give me three tips for better sleep.", "Give me ten tips for better sleep."),
        ("Explain what a REST API is, with a code example.", "Explain what a REST API is, without any code."),
        ("How much vitamin D does an adult need per day?", "How much vitamin D does an infant need per day?"),
        ("What is the largest planet?", "What is the smallest planet?"),
        ("Find the maximum value in this list", "Find the minimum value in this list"),
        ("What's the most spoken language in India?", "What's the second most spoken language in India?"),
        ("Why does my build fail?", "Why does my build not fail?"),
        ("Can I return an item if I have the receipt?", "can i return an item if i dont have the reciept"),
        ("How do I reverse a list in python", "How do I reverse a list in rust"),
    ] {
        assert!(!compatible(a, b), "{a:?} / {b:?}");
        assert!(!compatible(b, a), "{b:?} / {a:?}");
    }
}

#[test]
fn words_are_normalised() {
    let norms = |s: &str| tokens(s).into_iter().map(|t| (t.norm, t.name)).collect::<Vec<_>>();
    assert_eq!(
        norms("Paris has 1,000 cats. Isn't it five?"),
        [
            ("pari".to_string(), false),
            ("has".into(), false),
            ("1000".into(), false),
            ("cat".into(), false),
            ("is".into(), false),
            ("not".into(), false),
            ("it".into(), false),
            ("5".into(), false)
        ]
    );
    assert_eq!(norms("Go to Rome")[2], ("rome".to_string(), true));
    assert!(same_word("recipie", "recipe") && same_word("making", "make") && !same_word("buyer", "seller"));
    assert!(transposed("calroies", "calories") && !transposed("maximum", "minimum"));
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn any_script_is_read_without_panicking() {
    for (a, b) in [
        ("İstanbul'un nüfusu nedir?", "İSTANBUL'UN NÜFUSU NEDİR?"),
        ("How hot is 300 \u{212a}?", "how hot is 300 \u{212a}"),
        ("東京の人口は？", "東京の人口は?"),
        ("", "'"),
        ("n't", "cannot"),
        ("'s 're", "!= !"),
    ] {
        let _ = compatible(a, b);
        let _ = compatible(b, a);
    }
    assert!(compatible("İstanbul'un nüfusu nedir?", "İstanbul'un nüfusu nedir"));
    assert!(!compatible("İstanbul'un nüfusu nedir?", "Ankara'nın nüfusu nedir?"));
}
