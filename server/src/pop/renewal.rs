//! Deliveries the server renews for their clients (`auto_renew`, the PushConsumer's
//! mode): each renewal gets a new receipt handle from the engine, while the client
//! keeps acking with the one it received. This table maps, per client, the handle the
//! client holds to the engine's current one, and says which renewals are due.

use std::collections::HashMap;
use std::sync::Mutex;

/// Deliveries the server renews for their clients (`auto_renew`), by client and by
/// the handle the client holds.
#[derive(Debug, Default)]
pub(crate) struct Renewals {
    by_client: Mutex<HashMap<String, HashMap<String, Renewal>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Renewal {
    pub group: String,
    pub topic: String,
    /// The engine's handle now (the held one until the first renewal).
    pub current: String,
    /// When to renew next (ms, broker clock).
    pub due_ms: u64,
    /// When the delivery was received (ms, broker clock): renewals stop after
    /// `Limits::auto_renew_max`.
    pub since_ms: u64,
}

impl Renewals {
    pub fn add(
        &self,
        client: &str,
        handle: &str,
        (group, topic): (&str, &str),
        (since_ms, due_ms): (u64, u64),
    ) {
        self.by_client
            .lock()
            .expect("renewals")
            .entry(client.to_string())
            .or_default()
            .insert(
                handle.to_string(),
                Renewal {
                    group: group.to_string(),
                    topic: topic.to_string(),
                    current: handle.to_string(),
                    due_ms,
                    since_ms,
                },
            );
    }

    /// The engine's current handle for one a client holds, if the server renews it.
    pub fn current(&self, client: &str, held: &str) -> Option<String> {
        let map = self.by_client.lock().expect("renewals");
        map.get(client)?.get(held).map(|r| r.current.clone())
    }

    pub fn remove(&self, client: &str, held: &str) {
        let mut map = self.by_client.lock().expect("renewals");
        if let Some(m) = map.get_mut(client) {
            m.remove(held);
            if m.is_empty() {
                map.remove(client);
            }
        }
    }

    /// Renewals due at `now_ms`: (client, held handle, renewal).
    pub fn due(&self, now_ms: u64) -> Vec<(String, String, Renewal)> {
        let map = self.by_client.lock().expect("renewals");
        map.iter()
            .flat_map(|(c, m)| {
                m.iter()
                    .filter(|(_, r)| r.due_ms <= now_ms)
                    .map(move |(h, r)| (c.clone(), h.clone(), r.clone()))
            })
            .collect()
    }

    /// Records a renewal's new handle and next due time.
    pub fn renewed(&self, client: &str, held: &str, current: String, due_ms: u64) {
        let mut map = self.by_client.lock().expect("renewals");
        if let Some(r) = map.get_mut(client).and_then(|m| m.get_mut(held)) {
            r.current = current;
            r.due_ms = due_ms;
        }
    }

    /// Everything renewed for a client, forgotten.
    pub fn take_client(&self, client: &str) -> Vec<Renewal> {
        let mut map = self.by_client.lock().expect("renewals");
        map.remove(client)
            .map(|m| m.into_values().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewals_map_held_handles_to_current_ones() {
        let r = Renewals::default();
        r.add("c1", "h1", ("g", "t"), (40, 100));
        assert_eq!(r.current("c1", "h1").as_deref(), Some("h1"));
        assert!(r.due(99).is_empty());
        assert_eq!(r.due(100).len(), 1);
        r.renewed("c1", "h1", "h2".into(), 200);
        assert_eq!(r.current("c1", "h1").as_deref(), Some("h2"));
        assert_eq!(r.current("c2", "h1"), None);
        let taken = r.take_client("c1");
        assert_eq!(taken[0].current, "h2");
        assert_eq!(r.current("c1", "h1"), None);
    }
}
