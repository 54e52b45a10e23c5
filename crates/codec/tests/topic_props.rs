//! Property tests for topic matching and validation.

use mytracks_codec::topic::{matches, parse_shared, validate_topic_filter, validate_topic_name};
use proptest::collection::vec;
use proptest::prelude::*;

/// Topic levels without wildcards, sometimes empty, sometimes `$`-prefixed.
fn levels() -> impl Strategy<Value = Vec<String>> {
    vec(
        prop_oneof!["[a-z]{0,3}", "[^+#/\u{0}]{0,4}", "\\$[A-Z]{1,3}"],
        1..6,
    )
}

fn topic() -> impl Strategy<Value = String> {
    levels()
        .prop_map(|l| l.join("/"))
        .prop_filter("non-empty", |t| !t.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn generated_topics_are_valid_names_and_filters(t in topic()) {
        prop_assert!(validate_topic_name(&t).is_ok());
        prop_assert!(validate_topic_filter(&t).is_ok());
    }

    #[test]
    fn a_topic_matches_itself(t in topic()) {
        prop_assert!(matches(&t, &t));
    }

    #[test]
    fn hash_matches_every_non_dollar_topic(t in topic()) {
        prop_assert_eq!(matches("#", &t), !t.starts_with('$'));
    }

    #[test]
    fn replacing_a_level_by_plus_still_matches(l in levels(), i in any::<prop::sample::Index>()) {
        let t = l.join("/");
        prop_assume!(!t.is_empty());
        let i = i.index(l.len());
        let mut f = l.clone();
        f[i] = "+".into();
        let filter = f.join("/");
        prop_assert!(validate_topic_filter(&filter).is_ok());
        // A leading wildcard never matches a `$` topic; anything else must match.
        prop_assert_eq!(matches(&filter, &t), !(i == 0 && t.starts_with('$')));
    }

    #[test]
    fn replacing_a_tail_by_hash_still_matches(l in levels(), i in any::<prop::sample::Index>()) {
        let t = l.join("/");
        prop_assume!(!t.is_empty());
        let keep = i.index(l.len() + 1);
        let mut f: Vec<String> = l[..keep].to_vec();
        f.push("#".into());
        let filter = f.join("/");
        prop_assert!(validate_topic_filter(&filter).is_ok());
        prop_assert_eq!(matches(&filter, &t), !(keep == 0 && t.starts_with('$')));
    }

    #[test]
    fn dollar_topics_never_match_leading_wildcards(
        t in topic().prop_map(|t| format!("$SYS/{t}")),
        rest in "[a-z+/#]{0,8}",
        hash in any::<bool>(),
    ) {
        let filter = format!("{}{rest}", if hash { "#" } else { "+" });
        prop_assert!(!matches(&filter, &t));
    }

    #[test]
    fn a_different_literal_level_does_not_match(l in levels(), i in any::<prop::sample::Index>()) {
        let t = l.join("/");
        prop_assume!(!t.is_empty());
        let i = i.index(l.len());
        let mut f = l.clone();
        f[i] = format!("{}x", f[i]);
        prop_assert!(!matches(&f.join("/"), &t));
    }

    #[test]
    fn wildcards_make_invalid_names(l in levels(), i in any::<prop::sample::Index>(), w in "[+#]") {
        let mut l = l;
        let i = i.index(l.len());
        l[i].push_str(&w);
        prop_assert!(validate_topic_name(&l.join("/")).is_err());
    }

    #[test]
    fn shared_filters_split(group in "[a-z]{1,5}", t in topic()) {
        let shared = format!("$share/{group}/{t}");
        prop_assert_eq!(parse_shared(&shared), Ok(Some((group.as_str(), t.as_str()))));
    }

    #[test]
    fn matching_arbitrary_strings_never_panics(f in "\\PC{0,12}", t in "\\PC{0,12}") {
        let _ = matches(&f, &t);
        let _ = validate_topic_filter(&f);
        let _ = validate_topic_name(&t);
        let _ = parse_shared(&f);
    }
}
