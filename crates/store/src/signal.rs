//! The wire form of [`Signal`]s on PostgreSQL's NOTIFY channel.

use tenantatlas_domain::ids::TenantId;

use crate::model::Signal;

/// The NOTIFY channel every node listens on.
pub(crate) const CHANNEL: &str = "tenantatlas";

/// NOTIFY payloads are limited to 8000 bytes; past this many tenants a
/// change is announced as "possibly any".
const MAX_TENANTS: usize = 150;

/// `w` (wake), `c` (runs of any tenant changed), `c:ID,ID,-` (these
/// tenants; `-` for system runs).
pub(crate) fn encode(s: &Signal) -> String {
    match s {
        Signal::Wake => "w".to_owned(),
        Signal::RunsChanged(ts) if ts.is_empty() || ts.len() > MAX_TENANTS => "c".to_owned(),
        Signal::RunsChanged(ts) => {
            let ids: Vec<String> = ts
                .iter()
                .map(|t| t.map_or_else(|| "-".to_owned(), |t| t.to_string()))
                .collect();
            format!("c:{}", ids.join(","))
        }
    }
}

/// Decodes a payload made by [`encode`]; unknown payloads are ignored.
pub(crate) fn decode(p: &str) -> Option<Signal> {
    match p {
        "w" => Some(Signal::Wake),
        "c" => Some(Signal::RunsChanged(Vec::new())),
        _ => {
            let list = p.strip_prefix("c:")?;
            let ids: Option<Vec<Option<TenantId>>> = list
                .split(',')
                .map(|x| if x == "-" { Some(None) } else { x.parse().ok().map(Some) })
                .collect();
            ids.map(Signal::RunsChanged)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = TenantId::from_uuid(uuid::Uuid::now_v7());
        for s in [
            Signal::Wake,
            Signal::RunsChanged(vec![]),
            Signal::RunsChanged(vec![Some(t), None]),
        ] {
            assert_eq!(decode(&encode(&s)), Some(s));
        }
        let many = Signal::RunsChanged(
            (0..200)
                .map(|_| Some(TenantId::from_uuid(uuid::Uuid::now_v7())))
                .collect(),
        );
        assert_eq!(encode(&many), "c");
        assert!(encode(&Signal::RunsChanged(vec![Some(t); 150])).len() < 8000);
        assert_eq!(decode("nonsense"), None);
        assert_eq!(decode("c:not-a-uuid"), None);
    }
}
