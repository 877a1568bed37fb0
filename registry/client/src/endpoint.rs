//! Endpoint parsing and the encoding of keys into request paths.

use reqwest::Url;

use crate::ClientError;

/// Checks an endpoint and normalises it to `scheme://host:port[/base]`
/// without a trailing slash. A bare `host:port` means `http://host:port`.
pub fn parse_endpoint(raw: &str) -> Result<String, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidEndpoint {
        endpoint: raw.to_string(),
        reason: reason.to_string(),
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let url = Url::parse(&with_scheme).map_err(|err| invalid(&err.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(invalid(&format!("scheme '{other}' is not http or https"))),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("it must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not carry credentials"));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Percent-encodes a key for use after `/v1/kv/`: '/' stays a separator,
/// everything but RFC 3986 unreserved characters is encoded.
///
/// URL parsers remove `.` and `..` segments (also when written `%2E`), which
/// would change the key, so a '/' next to such a segment is sent as `%2F`
/// (the server decodes the whole path tail back into the key). A key that is
/// only `.` or `..` cannot be addressed at all.
pub fn encode_key(key: &str) -> Result<String, ClientError> {
    if key == "." || key == ".." {
        return Err(ClientError::InvalidArgument(format!(
            "key '{key}' cannot be addressed over HTTP"
        )));
    }
    let segments: Vec<&str> = key.split('/').collect();
    let is_dot = |i: usize| matches!(segments.get(i), Some(&".") | Some(&".."));
    let mut out = String::with_capacity(key.len() + 8);
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            // The '/' between segments i-1 and i.
            let glue = is_dot(i - 1) || (is_dot(i) && i == segments.len() - 1);
            out.push_str(if glue { "%2F" } else { "/" });
        }
        encode_into(segment, &mut out);
    }
    Ok(out)
}

/// Percent-encodes one path segment ('/' included), e.g. a member name.
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    encode_into(segment, &mut out);
    out
}

fn encode_into(text: &str, out: &mut String) {
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:7001").unwrap(),
            "http://127.0.0.1:7001"
        );
        assert_eq!(
            parse_endpoint(" http://node-1:7001/ ").unwrap(),
            "http://node-1:7001"
        );
        assert_eq!(
            parse_endpoint("10.0.0.1:7001").unwrap(),
            "http://10.0.0.1:7001"
        );
        assert_eq!(
            parse_endpoint("http://lb.example/muster/").unwrap(),
            "http://lb.example/muster"
        );
        // The default port is dropped by the URL parser, which is harmless.
        assert_eq!(parse_endpoint("http://h:80").unwrap(), "http://h");
    }

    #[test]
    fn bad_endpoints_are_refused_with_a_reason() {
        let reason = |raw: &str| match parse_endpoint(raw) {
            Err(ClientError::InvalidEndpoint { endpoint, reason }) => {
                assert_eq!(endpoint, raw);
                reason
            }
            other => panic!("{raw}: {other:?}"),
        };
        assert!(reason("").contains("empty"));
        assert_eq!(parse_endpoint("https://h:1").unwrap(), "https://h:1");
        assert!(reason("ftp://h:1").contains("not http"));
        assert!(reason("http://h:1/?a=b").contains("query"));
        assert!(reason("http://u:p@h:1").contains("credentials"));
        assert!(!reason("http://h:notaport").is_empty());
    }

    #[test]
    fn keys_keep_slashes_and_encode_the_rest() {
        assert_eq!(encode_key("a/b/c").unwrap(), "a/b/c");
        assert_eq!(encode_key("").unwrap(), "");
        assert_eq!(encode_key("dir/").unwrap(), "dir/");
        assert_eq!(encode_key("/abs").unwrap(), "/abs");
        assert_eq!(encode_key("A-z_0.9~").unwrap(), "A-z_0.9~");
        assert_eq!(
            encode_key("sp ace?q=1#f%").unwrap(),
            "sp%20ace%3Fq%3D1%23f%25"
        );
        assert_eq!(encode_key("clé").unwrap(), "cl%C3%A9");
        assert_eq!(encode_key("a+b&c").unwrap(), "a%2Bb%26c");
    }

    #[test]
    fn dot_segments_survive_url_parsing() {
        for key in [
            "a/../b",
            "a/./b",
            "a/..",
            "../a",
            "./",
            "a/b/..",
            "x/../../y",
            "...",
        ] {
            let encoded = encode_key(key).unwrap();
            let url = Url::parse(&format!("http://h/v1/kv/{encoded}")).unwrap();
            let tail = url.path().strip_prefix("/v1/kv/").unwrap();
            assert_eq!(decode(tail), key, "{key} -> {encoded} -> {}", url.path());
        }
        assert!(encode_key("..").is_err());
        assert!(encode_key(".").is_err());
    }

    #[test]
    fn segments_encode_slashes() {
        assert_eq!(encode_segment("node-1"), "node-1");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }

    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }
}
