//! Limits the server enforces, in one place so the README, the server and
//! the client agree. Each one is refused with a 4xx naming the field.

/// Longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value of one key.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;
/// Largest HTTP request body (etcd's default): a value plus its envelope.
pub const MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// Most operations in one transaction, counting compares, `success` and `failure`.
pub const MAX_TXN_OPS: usize = 128;
/// Keys returned by one prefix read when the request names no `limit`.
pub const DEFAULT_RANGE_LIMIT: usize = 1000;
/// Most keys one prefix read may return.
pub const MAX_RANGE_LIMIT: usize = 10_000;
/// Most concurrent watch streams served by one node.
pub const MAX_WATCHERS: usize = 10_000;
/// Shortest and longest lease TTL, in seconds.
pub const MIN_LEASE_TTL_SECS: i64 = 1;
pub const MAX_LEASE_TTL_SECS: i64 = 9_000_000_000 / 1000;

/// Keys under this prefix belong to the service catalog and the config
/// center: readable and watchable through the KV API, written only through
/// their own APIs.
pub const RESERVED_PREFIX: &str = "_muster/";

/// Whether a write to `key` (or, with `prefix`, to every key starting with
/// it) would touch the reserved keys.
pub fn touches_reserved(key: &str, prefix: bool) -> bool {
    key.starts_with(RESERVED_PREFIX) || (prefix && RESERVED_PREFIX.starts_with(key))
}

/// Checks a key against the key rules; the error names what is wrong.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key is {} bytes, the limit is {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    if key.chars().any(|c| c.is_control()) {
        return Err("key must not contain control characters".into());
    }
    Ok(())
}

/// Checks a value's size.
pub fn check_value(value: &[u8]) -> Result<(), String> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "value is {} bytes, the limit is {MAX_VALUE_BYTES}",
            value.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert!(check_key("a/b").is_ok());
        assert!(check_key("").unwrap_err().contains("empty"));
        assert!(check_key("a\nb").unwrap_err().contains("control"));
        let long = "k".repeat(MAX_KEY_BYTES + 1);
        assert!(check_key(&long).unwrap_err().contains("limit is 1024"));
        assert!(check_key(&long[1..]).is_ok());
    }

    #[test]
    fn reserved_keys() {
        assert!(touches_reserved("_muster/svc/x", false));
        assert!(touches_reserved("", true));
        assert!(touches_reserved("_mu", true));
        assert!(!touches_reserved("_mu", false));
        assert!(!touches_reserved("app/", true));
    }

    #[test]
    fn values() {
        assert!(check_value(&vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(check_value(&vec![0; MAX_VALUE_BYTES + 1]).is_err());
    }
}
