//! Query-string parsing with errors that name the parameter.

use std::collections::HashMap;
use std::str::FromStr;

use super::error::ApiError;

pub struct Params(HashMap<String, String>);

impl Params {
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| {
                percent_decode(text, true).ok_or_else(|| {
                    ApiError::invalid(
                        name,
                        format!("{name}: not valid UTF-8 after percent-decoding"),
                    )
                })
            };
            map.insert(decode(name)?, decode(value)?);
        }
        Ok(Params(map))
    }

    /// A flag: present without a value, or `true`/`1`; `false`/`0` is off.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name).map(String::as_str) {
            None => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(ApiError::invalid(
                name,
                format!("{name} must be true or false, not {other:?}"),
            )),
        }
    }

    pub fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| {
                ApiError::invalid(
                    name,
                    format!("{name} must be a non-negative integer, not {text:?}"),
                )
            }),
        }
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

/// Decodes `%XX` escapes (and, in query strings, `+` as a space); None if
/// the result is not UTF-8 or an escape is malformed.
pub fn percent_decode(text: &str, plus_as_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_as_space => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_numbers() {
        let params = Params::parse(Some("prefix&raw=false&limit=10&bad=x&key=a%2Fb")).unwrap();
        assert!(params.flag("prefix").unwrap());
        assert!(!params.flag("raw").unwrap());
        assert!(!params.flag("absent").unwrap());
        assert_eq!(params.number::<usize>("limit").unwrap(), Some(10));
        let err = params.number::<u64>("bad").unwrap_err();
        assert_eq!(err.0.field.as_deref(), Some("bad"));
        assert!(params.flag("bad").is_err());
        assert_eq!(params.text("key"), Some("a/b"));
    }

    #[test]
    fn non_utf8_is_refused() {
        assert!(percent_decode("%ff%fe", false).is_none());
        assert!(percent_decode("%zz", false).is_none());
        assert_eq!(percent_decode("caf%C3%A9", false).as_deref(), Some("café"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
    }
}
