//! OData query options as the local Graph understands them: `$select`,
//! `$expand` (nested), `$filter` (`PROPERTY eq 'VALUE'` only), `$top` and
//! the opaque `$skiptoken` of its own next links. Any other system query
//! option is refused with 400, so a client never believes an option
//! worked when the local Graph ignored it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// One `$expand` item with its nested `$expand`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expand {
    /// The navigation property.
    pub name: String,
    /// Its own `($expand=…)`.
    pub nested: Vec<Expand>,
}

/// Finds an item by name.
pub(crate) fn find_expand<'a>(items: &'a [Expand], name: &str) -> Option<&'a Expand> {
    items.iter().find(|e| e.name == name)
}

/// The query options of one request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Query {
    /// `$select`, split.
    pub select: Option<Vec<String>>,
    /// `$expand`, parsed.
    pub expand: Vec<Expand>,
    /// `$filter`, as given.
    pub filter: Option<String>,
    /// `$top`.
    pub top: Option<usize>,
    /// `$skiptoken`, as given.
    pub skiptoken: Option<String>,
    /// Every parameter but `$skiptoken`, in order: what a next link repeats.
    pub keep: Vec<(String, String)>,
}

impl Query {
    /// Whether any option that shapes a list was given (`$filter`, `$top`,
    /// `$skiptoken`).
    pub fn has_list_options(&self) -> Option<&'static str> {
        if self.filter.is_some() {
            Some("$filter")
        } else if self.top.is_some() {
            Some("$top")
        } else if self.skiptoken.is_some() {
            Some("$skiptoken")
        } else {
            None
        }
    }

    /// Whether any system query option was given at all.
    pub fn has_any_option(&self) -> Option<&'static str> {
        self.has_list_options().or(if self.select.is_some() {
            Some("$select")
        } else if !self.expand.is_empty() {
            Some("$expand")
        } else {
            None
        })
    }
}

/// Parses decoded query pairs. The error is Graph's 400 message.
pub(crate) fn parse_query(pairs: &[(String, String)]) -> Result<Query, String> {
    let mut q = Query::default();
    let mut seen: Vec<String> = Vec::new();
    for (k, v) in pairs {
        if k.starts_with('$') {
            let lower = k.to_ascii_lowercase();
            if seen.contains(&lower) {
                return Err(format!(
                    "Query option '{k}' was specified more than once, but it must be specified at most once."
                ));
            }
            seen.push(lower.clone());
            match lower.as_str() {
                "$select" => {
                    let props: Vec<String> = v
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if props.is_empty() {
                        return Err("The $select query option is empty.".to_owned());
                    }
                    q.select = Some(props);
                }
                "$expand" => q.expand = parse_expand(v)?,
                "$filter" => q.filter = Some(v.clone()),
                "$top" => match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => q.top = Some(n),
                    _ => {
                        return Err(format!(
                            "Invalid value '{v}' for $top query option found. The $top query option requires a positive integer value."
                        ));
                    }
                },
                "$skiptoken" => {
                    q.skiptoken = Some(v.clone());
                    continue;
                }
                _ => {
                    return Err(format!(
                        "Query option '{k}' is not supported by the local Graph (it supports $select, $expand, $filter, $top and $skiptoken)."
                    ));
                }
            }
        }
        q.keep.push((k.clone(), v.clone()));
    }
    Ok(q)
}

/// Splits `s` on `sep` outside parentheses.
fn split_top(s: &str, sep: char) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| format!("Unbalanced parentheses in '{s}'."))?;
            }
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("Unbalanced parentheses in '{s}'."));
    }
    out.push(&s[start..]);
    Ok(out)
}

/// Parses an `$expand` value: `a,b($expand=c($expand=d))`.
pub(crate) fn parse_expand(s: &str) -> Result<Vec<Expand>, String> {
    let mut out = Vec::new();
    for part in split_top(s, ',')? {
        let part = part.trim();
        let (name, options) = match part.find('(') {
            Some(i) => {
                let inner = part[i + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| format!("Syntax error in the $expand item '{part}'."))?;
                (part[..i].trim(), Some(inner))
            }
            None => (part, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("Syntax error in the $expand value '{s}'."));
        }
        let mut nested = Vec::new();
        if let Some(options) = options {
            for opt in split_top(options, ';')? {
                let opt = opt.trim();
                if opt.is_empty() {
                    continue;
                }
                let (k, v) = opt
                    .split_once('=')
                    .ok_or_else(|| format!("Syntax error in the $expand item '{part}'."))?;
                if !k.trim().eq_ignore_ascii_case("$expand") {
                    return Err(format!(
                        "Query option '{}' inside $expand is not supported by the local Graph (only a nested $expand is).",
                        k.trim()
                    ));
                }
                nested = parse_expand(v)?;
            }
        }
        out.push(Expand {
            name: name.to_owned(),
            nested,
        });
    }
    Ok(out)
}

/// Parses `PROPERTY eq 'VALUE'` (quotes in the value doubled, as OData
/// escapes them); `None` for any other form.
pub(crate) fn parse_eq_filter(f: &str) -> Option<(String, String)> {
    let f = f.trim();
    let (prop, rest) = f.split_once(char::is_whitespace)?;
    let rest = rest.trim_start().strip_prefix("eq")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let literal = rest.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    let mut value = String::with_capacity(literal.len());
    let mut chars = literal.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // Inside the literal a quote only appears doubled.
            if chars.next() != Some('\'') {
                return None;
            }
        }
        value.push(c);
    }
    if prop.is_empty() || !prop.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return None;
    }
    Some((prop.to_owned(), value))
}

/// An opaque `$skiptoken` for the page that starts at `offset` of the list
/// at `path`. It names this server's run (`nonce`) and the list, so a
/// token from another list or another run is refused.
pub(crate) fn make_skiptoken(nonce: &str, path: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{nonce}|{}|{offset}", path.to_ascii_lowercase()))
}

/// The offset a `$skiptoken` stands for, if it is one of ours for `path`.
pub(crate) fn read_skiptoken(nonce: &str, path: &str, token: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let mut parts = raw.splitn(3, '|');
    let (n, p, o) = (parts.next()?, parts.next()?, parts.next()?);
    if n != nonce || p != path.to_ascii_lowercase() {
        return None;
    }
    o.parse().ok()
}

/// What a query value must escape in a link we write (keeps `$`, quotes,
/// parentheses and `=` readable, as Graph's own links do).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b',')
    .remove(b'*')
    .remove(b'=')
    .remove(b':');

/// What a path segment must escape.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'$')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The absolute URL of `path` (relative to `/beta/`) with `params`.
pub(crate) fn link(base: &str, path: &str, params: &[(String, String)]) -> String {
    let mut url = format!("{base}/beta");
    for seg in path.split('/') {
        url.push('/');
        url.extend(utf8_percent_encode(seg, PATH_SEGMENT));
    }
    for (i, (k, v)) in params.iter().enumerate() {
        url.push(if i == 0 { '?' } else { '&' });
        url.extend(utf8_percent_encode(k, QUERY_VALUE));
        url.push('=');
        url.extend(utf8_percent_encode(v, QUERY_VALUE));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn expand_parses_nested_items() {
        let e = parse_expand("scheduledActionsForRule($expand=scheduledActionConfigurations),assignments").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "scheduledActionsForRule");
        assert_eq!(e[0].nested[0].name, "scheduledActionConfigurations");
        assert_eq!(e[1].name, "assignments");
        assert!(parse_expand("a(").is_err());
        assert!(parse_expand("a($select=x)").is_err());
        assert!(parse_expand("a b").is_err());
    }

    #[test]
    fn eq_filter_unescapes_doubled_quotes_and_refuses_other_forms() {
        assert_eq!(
            parse_eq_filter("displayName eq 'O''Brien team'"),
            Some(("displayName".into(), "O'Brien team".into()))
        );
        assert_eq!(
            parse_eq_filter("displayName eq ''"),
            Some(("displayName".into(), String::new()))
        );
        assert_eq!(parse_eq_filter("displayName eq 'O'Brien'"), None);
        assert_eq!(parse_eq_filter("startswith(displayName,'a')"), None);
        assert_eq!(parse_eq_filter("displayName ne 'a'"), None);
        assert_eq!(parse_eq_filter("displayName eq 'a' and id eq 'b'"), None);
        assert_eq!(parse_eq_filter("displayName eqx 'a'"), None);
    }

    #[test]
    fn skiptokens_are_bound_to_their_list_and_run() {
        let t = make_skiptoken("n1", "deviceManagement/x", 50);
        assert_eq!(read_skiptoken("n1", "deviceManagement/X", &t), Some(50));
        assert_eq!(read_skiptoken("n2", "deviceManagement/x", &t), None);
        assert_eq!(read_skiptoken("n1", "deviceManagement/y", &t), None);
        assert_eq!(read_skiptoken("n1", "deviceManagement/x", "garbage!"), None);
    }

    #[test]
    fn query_refuses_unknown_and_repeated_options() {
        assert!(parse_query(&pairs(&[("$orderby", "x")])).is_err());
        assert!(parse_query(&pairs(&[("$top", "5"), ("$TOP", "6")])).is_err());
        assert!(parse_query(&pairs(&[("$top", "0")])).is_err());
        let q = parse_query(&pairs(&[("$top", "5"), ("$skiptoken", "x"), ("other", "1")])).unwrap();
        assert_eq!(q.top, Some(5));
        assert_eq!(q.skiptoken.as_deref(), Some("x"));
        assert_eq!(q.keep, pairs(&[("$top", "5"), ("other", "1")]));
    }

    #[test]
    fn links_escape_what_must_be_escaped() {
        let l = link(
            "http://h",
            "groups",
            &pairs(&[("$filter", "displayName eq 'a&b'"), ("$skiptoken", "t")]),
        );
        assert_eq!(
            l,
            "http://h/beta/groups?$filter=displayName%20eq%20'a%26b'&$skiptoken=t"
        );
    }
}
