//! Topic name and topic filter rules shared by the broker, ACLs and the application.

/// Why a topic name or filter is invalid.
pub type TopicError = &'static str;

/// Checks a PUBLISH topic name: non-empty, at most 65,535 bytes, no `+` or `#`, no U+0000.
/// Empty levels (`a//b`, `/a`) are valid.
pub fn validate_topic_name(topic: &str) -> Result<(), TopicError> {
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
    Ok(())
}

/// Checks a subscription filter: non-empty, `+` alone in its level, `#` alone and last, no U+0000.
/// Shared subscriptions (`$share/group/filter`) are checked with [`parse_shared`] first.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
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
    Ok(())
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
    validate_topic_filter(inner)?;
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
