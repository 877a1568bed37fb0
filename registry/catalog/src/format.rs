//! Whether config content parses as its declared format. A refusal says
//! what the parser found and on which line, so the publisher can fix it.

use std::fmt;

use muster_types::config::ConfigFormat;

/// Content that does not parse as its format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct FormatError {
    pub format: ConfigFormat,
    /// 1-based line of the problem, when the parser knows it.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "content is not valid {}", name(self.format))?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The format's name as the API spells it.
pub fn name(format: ConfigFormat) -> &'static str {
    match format {
        ConfigFormat::Yaml => "yaml",
        ConfigFormat::Json => "json",
        ConfigFormat::Toml => "toml",
        ConfigFormat::Properties => "properties",
        ConfigFormat::Text => "text",
    }
}

/// The `Content-Type` of raw content of this format.
pub fn content_type(format: ConfigFormat) -> &'static str {
    match format {
        ConfigFormat::Yaml => "application/yaml; charset=utf-8",
        ConfigFormat::Json => "application/json",
        ConfigFormat::Toml => "application/toml; charset=utf-8",
        ConfigFormat::Properties => "text/x-java-properties; charset=utf-8",
        ConfigFormat::Text => "text/plain; charset=utf-8",
    }
}

/// Checks that `content` parses as `format` (text always does).
pub fn validate(format: ConfigFormat, content: &str) -> Result<(), FormatError> {
    let refuse = |line: Option<usize>, message: String| FormatError {
        format,
        line,
        message,
    };
    match format {
        ConfigFormat::Text => Ok(()),
        ConfigFormat::Json => serde_json::from_str::<serde::de::IgnoredAny>(content)
            .map(drop)
            .map_err(|err| refuse(Some(err.line()), err.to_string())),
        ConfigFormat::Yaml => {
            // A file may hold several `---` documents; each must parse.
            for document in serde_yaml_ng::Deserializer::from_str(content) {
                serde::Deserialize::deserialize(document)
                    .map(|_: serde::de::IgnoredAny| ())
                    .map_err(|err| refuse(err.location().map(|l| l.line()), err.to_string()))?;
            }
            Ok(())
        }
        ConfigFormat::Toml => toml::from_str::<toml::Table>(content)
            .map(drop)
            .map_err(|err| {
                let line = err.span().map(|span| line_of(content, span.start));
                refuse(line, err.message().trim().to_owned())
            }),
        ConfigFormat::Properties => parse_properties(content).map(drop),
    }
}

/// 1-based line of a byte offset.
fn line_of(content: &str, offset: usize) -> usize {
    let end = offset.min(content.len());
    content.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Parses `.properties` content by the rules of `java.util.Properties`:
/// `key=value`, `key: value` or `key value`; `#` and `!` comment lines;
/// a line ending in an odd number of backslashes continues on the next
/// (whose leading blanks are dropped); `\t \n \r \f \uXXXX` escapes, and a
/// backslash before any other character stands for that character.
/// Java refuses a malformed `\u` escape, and so does this.
pub fn parse_properties(content: &str) -> Result<Vec<(String, String)>, FormatError> {
    let normalized = content.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalized.split('\n').collect();
    let mut entries = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        let first = skip_blanks(lines[index]);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            index += 1;
            continue;
        }
        // One logical line: each character with the line it came from.
        let mut logical: Vec<(char, usize)> = Vec::new();
        let mut text = first;
        loop {
            let line_number = index + 1;
            index += 1;
            let trailing = text.chars().rev().take_while(|&c| c == '\\').count();
            if trailing % 2 == 0 {
                logical.extend(text.chars().map(|c| (c, line_number)));
                break;
            }
            let kept = &text[..text.len() - 1];
            logical.extend(kept.chars().map(|c| (c, line_number)));
            match lines.get(index) {
                Some(next) => text = skip_blanks(next),
                None => break,
            }
        }
        entries.push(parse_entry(&logical)?);
    }
    Ok(entries)
}

fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\x0c')
}

fn skip_blanks(line: &str) -> &str {
    line.trim_start_matches(is_blank)
}

fn parse_entry(logical: &[(char, usize)]) -> Result<(String, String), FormatError> {
    let mut chars = logical.iter().copied().peekable();
    let mut key = String::new();
    // The key ends at the first unescaped separator or blank.
    while let Some(&(c, line)) = chars.peek() {
        if c == '=' || c == ':' || is_blank(c) {
            break;
        }
        chars.next();
        if c == '\\' {
            key.push(unescape(&mut chars, line)?);
        } else {
            key.push(c);
        }
    }
    while chars.peek().is_some_and(|&(c, _)| is_blank(c)) {
        chars.next();
    }
    if chars.peek().is_some_and(|&(c, _)| c == '=' || c == ':') {
        chars.next();
        while chars.peek().is_some_and(|&(c, _)| is_blank(c)) {
            chars.next();
        }
    }
    let mut value = String::new();
    while let Some((c, line)) = chars.next() {
        if c == '\\' {
            value.push(unescape(&mut chars, line)?);
        } else {
            value.push(c);
        }
    }
    Ok((key, value))
}

/// The character an escape stands for; the backslash is consumed.
fn unescape(
    chars: &mut impl Iterator<Item = (char, usize)>,
    line: usize,
) -> Result<char, FormatError> {
    let Some((c, _)) = chars.next() else {
        // Only a continuation ends a logical line in a backslash, and those
        // were joined: a lone backslash here stands for nothing.
        return Ok('\\');
    };
    Ok(match c {
        't' => '\t',
        'n' => '\n',
        'r' => '\r',
        'f' => '\x0c',
        'u' => {
            let digits: String = chars.take(4).map(|(c, _)| c).collect();
            let code = (digits.len() == 4 && digits.chars().all(|c| c.is_ascii_hexdigit()))
                .then(|| u32::from_str_radix(&digits, 16).ok())
                .flatten();
            // Surrogate halves are not characters on their own.
            code.and_then(char::from_u32).ok_or_else(|| FormatError {
                format: ConfigFormat::Properties,
                line: Some(line),
                message: format!(
                    "malformed \\uxxxx escape \\u{digits}: it needs four hex digits naming a character"
                ),
            })?
        }
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(format: ConfigFormat, content: &str) -> FormatError {
        validate(format, content).expect_err("should be refused")
    }

    #[test]
    fn each_format_reports_the_line() {
        let json = refused(ConfigFormat::Json, "{\n  \"a\": 1,\n  \"b\": \n}");
        assert_eq!(json.line, Some(4), "{json}");
        let yaml = refused(ConfigFormat::Yaml, "a: 1\nb:\n  - x\n  y: [\n");
        assert!(yaml.line.is_some(), "{yaml}");
        let toml = refused(ConfigFormat::Toml, "a = 1\n[b]\nc = = 2\n");
        assert_eq!(toml.line, Some(3), "{toml}");
        let properties = refused(ConfigFormat::Properties, "a=1\n# c\nb=\\u12G4\n");
        assert_eq!(properties.line, Some(3), "{properties}");
        assert!(properties.to_string().contains("line 3"), "{properties}");
    }

    #[test]
    fn valid_content_passes() {
        validate(ConfigFormat::Json, "{\"a\": [1, 2]}").unwrap();
        validate(ConfigFormat::Yaml, "a: 1\n---\nb: [x, y]\n").unwrap();
        validate(ConfigFormat::Toml, "[server]\nport = 80\n").unwrap();
        validate(ConfigFormat::Text, "{ not json").unwrap();
        validate(ConfigFormat::Yaml, "").unwrap();
    }

    #[test]
    fn yaml_checks_every_document() {
        let err = refused(ConfigFormat::Yaml, "a: 1\n---\nb: [\n");
        assert!(err.line.is_some_and(|line| line >= 3), "{err}");
    }

    #[test]
    fn properties_follow_java_rules() {
        let entries = parse_properties(
            "# comment\n! also\n  a = 1\nb:2\nc 3\nlong = one, \\\n    two\n\
             key\\ with\\=sep = v\\tx\nuni=\\u00e9\nempty\nwin=1\r\nlast\\\n",
        )
        .unwrap();
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("a"), Some("1"));
        assert_eq!(get("b"), Some("2"));
        assert_eq!(get("c"), Some("3"));
        assert_eq!(get("long"), Some("one, two"));
        assert_eq!(get("key with=sep"), Some("v\tx"));
        assert_eq!(get("uni"), Some("é"));
        assert_eq!(get("empty"), Some(""));
        assert_eq!(get("win"), Some("1"));
        assert_eq!(get("last"), Some(""));
    }

    #[test]
    fn a_bad_escape_on_a_continued_line_names_that_line() {
        let err = refused(ConfigFormat::Properties, "a = x \\\n  \\u00\n");
        assert_eq!(err.line, Some(2), "{err}");
        assert!(refused(ConfigFormat::Properties, "a=\\uD800").line == Some(1));
    }
}
