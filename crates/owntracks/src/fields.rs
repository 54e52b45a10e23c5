//! Lenient readers for the fields of a JSON object, as tolerant as the apps themselves.
//!
//! Years of app versions (and third-party publishers such as Greenwich/Queclink gateways,
//! Home Assistant, scripts using `mosquitto_pub`) disagree on types: numbers arrive as JSON
//! strings (`"52.1"`, `"1700000000"`), integers as floats (`1.7e9`), booleans as `0`/`1` or
//! `"1"`. The apps accept all of these, so a server that is stricter than they are would drop
//! data that every phone displays.
//!
//! Required fields that are missing or unusable are errors naming the field. Optional fields
//! that are unusable are treated as absent: losing a whole location because its battery level
//! is garbage would be worse than losing the battery level.

use crate::error::ParseError;
use serde_json::{Map, Value};

/// 2^63 as a float: the first value past `i64::MAX`.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// A JSON object being read, field by field.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'a>(pub(crate) &'a Map<String, Value>);

impl<'a> Fields<'a> {
    /// The value of `field`, `None` when absent or `null` (the apps treat both alike).
    pub(crate) fn get(self, field: &str) -> Option<&'a Value> {
        self.0.get(field).filter(|value| !value.is_null())
    }

    pub(crate) fn f64_required(self, field: &'static str) -> Result<f64, ParseError> {
        let value = self.get(field).ok_or(ParseError::MissingField(field))?;
        to_f64(value).ok_or_else(|| ParseError::invalid(field, not_a("number", value)))
    }

    pub(crate) fn f64(self, field: &str) -> Option<f64> {
        self.get(field).and_then(to_f64)
    }

    pub(crate) fn i64_required(self, field: &'static str) -> Result<i64, ParseError> {
        let value = self.get(field).ok_or(ParseError::MissingField(field))?;
        to_i64(value).ok_or_else(|| ParseError::invalid(field, not_a("integer", value)))
    }

    pub(crate) fn i64(self, field: &str) -> Option<i64> {
        self.get(field).and_then(to_i64)
    }

    pub(crate) fn bool(self, field: &str) -> Option<bool> {
        self.get(field).and_then(to_bool)
    }

    pub(crate) fn string_required(self, field: &'static str) -> Result<String, ParseError> {
        let value = self.get(field).ok_or(ParseError::MissingField(field))?;
        to_string(value).ok_or_else(|| ParseError::invalid(field, not_a("string", value)))
    }

    pub(crate) fn string(self, field: &str) -> Option<String> {
        self.get(field).and_then(to_string)
    }

    /// A list of strings (`inregions`, `inrids`). Elements that are not strings are skipped; a
    /// lone string counts as a list of one; anything else is an empty list.
    pub(crate) fn strings(self, field: &str) -> Vec<String> {
        match self.get(field) {
            Some(Value::Array(items)) => items.iter().filter_map(to_string).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }
}

/// A finite number, from a JSON number or a numeric string. Booleans are not numbers.
pub(crate) fn to_f64(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(number) => number.as_f64()?,
        Value::String(text) => text.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// An integer, from a JSON integer, a float (truncated toward zero, as the apps' JSON
/// libraries do) or a string holding either.
pub(crate) fn to_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().and_then(float_to_i64)),
        Value::String(text) => {
            let text = text.trim();
            text.parse::<i64>()
                .ok()
                .or_else(|| text.parse::<f64>().ok().and_then(float_to_i64))
        }
        _ => None,
    }
}

fn float_to_i64(number: f64) -> Option<i64> {
    // `as` saturates; refusing out-of-range values keeps 1e300 from becoming i64::MAX.
    (number.is_finite() && (-I64_LIMIT..I64_LIMIT).contains(&number)).then(|| number.trunc() as i64)
}

/// A boolean: `true`/`false`, `1`/`0`, or those as strings (old Android dumps use `"1"`).
pub(crate) fn to_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => match number.as_f64()? {
            0.0 => Some(false),
            1.0 => Some(true),
            _ => None,
        },
        Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A string; a number is taken as its JSON text (a `tid` of `12` is the tracker id "12").
pub(crate) fn to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// `reason` for an unusable value; long values (a whole object, a base64 image) are cut so a
/// log line stays a line.
fn not_a(what: &str, value: &Value) -> String {
    const MAX: usize = 40;
    let text = value.to_string();
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("not a {what}: {}...", &text[..cut]),
        None => format!("not a {what}: {text}"),
    }
}

/// The JSON number for a float, written as an integer when it is one (`12`, not `12.0`), as the
/// apps write accuracies, altitudes and speeds. Exact: only values below 2^53 are converted.
pub(crate) fn number(value: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT {
        Value::from(value as i64)
    } else {
        Value::from(value)
    }
}

/// Builds a JSON object, leaving out absent optional fields (the apps omit them too).
#[derive(Default)]
pub(crate) struct Object(pub(crate) Map<String, Value>);

impl Object {
    /// An object with its `_type`.
    pub(crate) fn typed(kind: &str) -> Object {
        let mut object = Object::default();
        object.0.insert("_type".to_owned(), Value::from(kind));
        object
    }

    pub(crate) fn put(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_owned(), value.into());
    }

    pub(crate) fn opt(&mut self, key: &str, value: Option<impl Into<Value>>) {
        if let Some(value) = value {
            self.put(key, value);
        }
    }

    /// A float field, written with [`number`].
    pub(crate) fn num(&mut self, key: &str, value: Option<f64>) {
        self.opt(key, value.map(number));
    }

    /// A list of strings, left out when empty.
    pub(crate) fn strings(&mut self, key: &str, values: &[String]) {
        if !values.is_empty() {
            self.put(key, values.to_vec());
        }
    }

    pub(crate) fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(value: &Value) -> Fields<'_> {
        Fields(value.as_object().unwrap())
    }

    #[test]
    fn numbers_from_numbers_and_strings() {
        let value = json!({
            "int": 7, "float": 52.5, "str": " 52.1 ", "exp": "1.7e9",
            "nan": "NaN", "inf": "inf", "word": "abc", "bool": true, "null": null, "obj": {}
        });
        let f = fields(&value);
        assert_eq!(f.f64("int"), Some(7.0));
        assert_eq!(f.f64("float"), Some(52.5));
        assert_eq!(f.f64("str"), Some(52.1));
        assert_eq!(f.f64("exp"), Some(1.7e9));
        for field in ["nan", "inf", "word", "bool", "null", "obj", "absent"] {
            assert_eq!(f.f64(field), None, "{field}");
        }
    }

    #[test]
    fn integers_accept_floats_and_strings() {
        let value = json!({
            "int": 1_700_000_000, "float": 1.7e9, "frac": 12.9, "neg": -3.5, "str": "1700000000",
            "strfloat": "1.7e9", "huge": 1e300, "big": u64::MAX, "word": "x", "bool": false
        });
        let f = fields(&value);
        assert_eq!(f.i64("int"), Some(1_700_000_000));
        assert_eq!(f.i64("float"), Some(1_700_000_000));
        assert_eq!(f.i64("frac"), Some(12));
        assert_eq!(f.i64("neg"), Some(-3));
        assert_eq!(f.i64("str"), Some(1_700_000_000));
        assert_eq!(f.i64("strfloat"), Some(1_700_000_000));
        for field in ["huge", "big", "word", "bool", "absent"] {
            assert_eq!(f.i64(field), None, "{field}");
        }
    }

    #[test]
    fn booleans_accept_zero_and_one() {
        let value = json!({
            "t": true, "f": false, "one": 1, "zero": 0, "s1": "1", "s0": "0", "strue": "True",
            "two": 2, "word": "yes"
        });
        let f = fields(&value);
        for (field, expected) in [
            ("t", Some(true)),
            ("f", Some(false)),
            ("one", Some(true)),
            ("zero", Some(false)),
            ("s1", Some(true)),
            ("s0", Some(false)),
            ("strue", Some(true)),
            ("two", None),
            ("word", None),
        ] {
            assert_eq!(f.bool(field), expected, "{field}");
        }
    }

    #[test]
    fn required_fields_name_the_field() {
        let value = json!({"lat": "north", "nothing": null, "long": "x".repeat(100)});
        let f = fields(&value);
        assert_eq!(f.f64_required("lon"), Err(ParseError::MissingField("lon")));
        assert_eq!(
            f.f64_required("nothing"),
            Err(ParseError::MissingField("nothing"))
        );
        let err = f.f64_required("lat").unwrap_err();
        assert_eq!(err.field(), Some("lat"));
        assert!(err.to_string().contains("north"), "{err}");
        let err = f.i64_required("long").unwrap_err();
        assert!(err.to_string().len() < 100, "{err}");
    }

    #[test]
    fn strings_and_lists() {
        let value =
            json!({"tid": 12, "s": "ab", "list": ["a", 1, null, "b"], "one": "x", "obj": {}});
        let f = fields(&value);
        assert_eq!(f.string("tid").as_deref(), Some("12"));
        assert_eq!(f.string("s").as_deref(), Some("ab"));
        assert_eq!(f.string("obj"), None);
        assert_eq!(f.strings("list"), ["a", "1", "b"]);
        assert_eq!(f.strings("one"), ["x"]);
        assert!(f.strings("obj").is_empty());
        assert!(f.strings("absent").is_empty());
    }

    #[test]
    fn integral_floats_are_written_as_integers() {
        assert_eq!(number(12.0).to_string(), "12");
        assert_eq!(number(-3.0).to_string(), "-3");
        assert_eq!(number(12.5).to_string(), "12.5");
        assert_eq!(number(1e300).to_string(), "1e+300");
    }
}
