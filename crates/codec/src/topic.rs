//! Topic name and topic filter rules shared by the broker, ACLs and the application.

/// Why a topic name or filter is invalid.
pub type TopicError = &'static str;

/// Levels a topic name or filter may have unless the caller says otherwise. MQTT sets no limit
/// (a 65,535-byte topic can have 65,535 levels); every level costs a node in the broker's
/// tries and a step in its matching, so an unbounded depth is a memory and stack hazard.
/// Mosquitto refuses more than 200 levels, EMQX more than 128 by default.
pub const DEFAULT_MAX_TOPIC_LEVELS: usize = 128;

/// Number of levels in a topic name or filter (`a//b` has three).
pub fn topic_levels(topic: &str) -> usize {
    topic.bytes().filter(|&b| b == b'/').count() + 1
}

fn check_levels(topic: &str, max_levels: usize) -> Result<(), TopicError> {
    if topic_levels(topic) > max_levels {
        return Err("topic has more levels than the server allows");
    }
    Ok(())
}

/// Checks a PUBLISH topic name: non-empty, at most 65,535 bytes and
/// [`DEFAULT_MAX_TOPIC_LEVELS`] levels, no `+` or `#`, no U+0000.
/// Empty levels (`a//b`, `/a`) are valid.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
    validate_topic_name_within(topic, DEFAULT_MAX_TOPIC_LEVELS)
}

/// [`validate_topic_name`] with at most `max_levels` levels.
pub fn validate_topic_name_within(topic: &str, max_levels: usize) -> Result<(), TopicError> {
    if topic.is_empty() {
        return Err("topic name is empty");
    }
    if topic.len() > 65_535 {
        return Err("topic name is longer than 65535 bytes");
    }
    for byte in topic.bytes() {
        match byte {
            b'+' | b'#' => return Err("topic name contains a wildcard"),
            0 => return Err("topic name contains U+0000"),
            _ => {}
        }
    }
    check_levels(topic, max_levels)
}

/// Checks a subscription filter: non-empty, `+` alone in its level, `#` alone and last, no
/// U+0000, at most [`DEFAULT_MAX_TOPIC_LEVELS`] levels. Shared subscriptions
/// (`$share/group/filter`) are checked with [`parse_shared`] first.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    validate_topic_filter_within(filter, DEFAULT_MAX_TOPIC_LEVELS)
}

/// [`validate_topic_filter`] with at most `max_levels` levels (a `$share/<group>/` prefix
/// counts too: it is part of what the client sent).
pub fn validate_topic_filter_within(filter: &str, max_levels: usize) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err("topic filter is empty");
    }
    if filter.len() > 65_535 {
        return Err("topic filter is longer than 65535 bytes");
    }
    if filter.contains('\0') {
        return Err("topic filter contains U+0000");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err("'#' must be alone and the last level of a filter");
        }
        if level.contains('+') && level != "+" {
            return Err("'+' must occupy a whole level");
        }
    }
    check_levels(filter, max_levels)
}

/// Splits `$share/<group>/<filter>` into `(group, filter)`; `Ok(None)` for ordinary filters.
pub fn parse_shared(filter: &str) -> Result<Option<(&str, &str)>, TopicError> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        return Ok(None);
    };
    let Some((group, inner)) = rest.split_once('/') else {
        return Err("shared subscription needs $share/<group>/<filter>");
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Err("shared subscription group name is empty or has wildcards");
    }
    // Levels are the caller's limit, checked on the whole filter.
    validate_topic_filter_within(inner, usize::MAX)?;
    Ok(Some((group, inner)))
}

/// True when `filter` matches `topic` under MQTT rules, including the rule that filters
/// starting with a wildcard do not match topics starting with `$`.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(f), Some(t)) if f == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_rules() {
        assert!(matches("a/#", "a"));
        assert!(matches("a/#", "a/b/c"));
        assert!(matches("#", "a/b"));
        assert!(!matches("#", "$SYS/x"));
        assert!(!matches("+/x", "$SYS/x"));
        assert!(matches("$SYS/#", "$SYS/x"));
        assert!(matches("+/+", "/a"));
        assert!(matches("a//b", "a//b"));
        assert!(matches("a/+/b", "a//b"));
        assert!(!matches("a/+", "a/b/c"));
        assert!(!matches("a/b", "a"));
        assert!(validate_topic_filter("a/#/b").is_err());
        assert!(validate_topic_filter("a/b#").is_err());
        assert!(validate_topic_filter("a+/b").is_err());
        assert!(validate_topic_filter("+/+/#").is_ok());
        assert!(validate_topic_name("a/+").is_err());
        assert!(validate_topic_name("a//b").is_ok());
        assert_eq!(parse_shared("$share/g/a/#"), Ok(Some(("g", "a/#"))));
        assert!(parse_shared("$share/g").is_err());
        assert!(parse_shared("$share//a").is_err());
    }
}
