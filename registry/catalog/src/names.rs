//! Names of namespaces, services, instances, groups and data ids.

/// Longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// Checks a name: 1 to 128 characters of `A-Z a-z 0-9 . _ - :`, not `.`
/// or `..`. `what` names the field in the error.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(format!(
            "{what} is {} bytes, the limit is {MAX_NAME_BYTES}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{what} must not be {name:?}"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')))
    {
        return Err(format!(
            "{what} {name:?} has {bad:?}; use letters, digits, '.', '_', '-' and ':'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("service", "web-api_v2.prod:eu").is_ok());
        assert!(check_name("service", "").unwrap_err().contains("empty"));
        assert!(check_name("service", "a/b").unwrap_err().contains("'/'"));
        assert!(check_name("service", "..").is_err());
        assert!(
            check_name("service", &"x".repeat(129))
                .unwrap_err()
                .contains("limit")
        );
    }
}
