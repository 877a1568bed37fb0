//! Labels a config client states about itself, and the gray selectors
//! matched against them: a client gets an item's gray content when every
//! `key=value` of the selector is among its labels.

use std::collections::BTreeMap;

use muster_types::config::{ConfigItem, GrayRelease};

use crate::names::check_name;

pub type Labels = BTreeMap<String, String>;

/// Parses `k:v,k2:v2` (`k=v` works too). Keys and values follow the name
/// rules; a key given twice is refused, as it would be ambiguous.
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let mut labels = Labels::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        add_label(&mut labels, pair)?;
    }
    Ok(labels)
}

/// Adds one `k:v` (or `k=v`) pair.
pub fn add_label(labels: &mut Labels, pair: &str) -> Result<(), String> {
    let (key, value) = split_pair(pair)
        .ok_or_else(|| format!("label {pair:?} must be key:value (or key=value)"))?;
    check_label(key, value)?;
    if labels.insert(key.to_owned(), value.to_owned()).is_some() {
        return Err(format!("label {key:?} is given twice"));
    }
    Ok(())
}

fn split_pair(pair: &str) -> Option<(&str, &str)> {
    // Whichever separator comes first, so values may contain the other one.
    let at = pair.find([':', '='])?;
    Some((pair[..at].trim(), pair[at + 1..].trim()))
}

/// Checks a selector or a listener's labels.
pub fn check_labels(labels: &Labels) -> Result<(), String> {
    labels
        .iter()
        .try_for_each(|(key, value)| check_label(key, value))
}

fn check_label(key: &str, value: &str) -> Result<(), String> {
    check_name("label key", key)?;
    check_name(&format!("value of label {key:?}"), value)
}

/// A gray selector must name at least one label: an empty one would match
/// every client, which is a plain publish.
pub fn check_selector(selector: &Labels) -> Result<(), String> {
    if selector.is_empty() {
        return Err("the gray selector must name at least one label".into());
    }
    check_labels(selector)
}

/// Whether a client with `labels` is selected.
pub fn matches(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty()
        && selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value))
}

/// The gray release a client with `labels` gets instead of the stable
/// content, if any.
pub fn gray_for<'a>(item: &'a ConfigItem, labels: &Labels) -> Option<&'a GrayRelease> {
    item.gray
        .as_ref()
        .filter(|gray| matches(&gray.selector, labels))
}

/// The MD5 a client with `labels` should hold for `item` (None: absent).
pub fn effective_md5<'a>(item: Option<&'a ConfigItem>, labels: &Labels) -> &'a str {
    match item {
        None => "",
        Some(item) => gray_for(item, labels).map_or(&item.md5, |gray| &gray.md5),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> Labels {
        parse_labels(text).unwrap()
    }

    #[test]
    fn parses_both_separators() {
        let parsed = labels("canary:true, zone=eu-1,ip:10.0.0.1");
        assert_eq!(parsed["canary"], "true");
        assert_eq!(parsed["zone"], "eu-1");
        assert_eq!(parsed["ip"], "10.0.0.1");
        assert!(parse_labels("").unwrap().is_empty());
        assert!(parse_labels("novalue").unwrap_err().contains("key:value"));
        assert!(parse_labels("a:1,a:2").unwrap_err().contains("twice"));
        assert!(parse_labels("a b:1").is_err());
    }

    #[test]
    fn every_selector_pair_must_match() {
        let selector = labels("canary:true,zone:eu");
        assert!(matches(&selector, &labels("zone:eu,canary:true,extra:1")));
        assert!(!matches(&selector, &labels("canary:true")));
        assert!(!matches(&selector, &labels("canary:false,zone:eu")));
        assert!(!matches(&Labels::new(), &labels("canary:true")));
        assert!(check_selector(&Labels::new()).is_err());
    }
}
