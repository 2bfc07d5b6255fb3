//! Connected clients, keyed by `x-mq-client-id`: what each is (producer, consumer),
//! the topics it publishes and the group it consumes for, its Telemetry stream (the
//! one way to push a command to it: transaction check-backs), and when it was
//! last heard from.
//!
//! A client is known from its first call on. It is forgotten on
//! NotifyClientTermination, or when it has no Telemetry stream and no call for
//! `client_idle_timeout`. At most `max_clients` are known at once: a new one beyond
//! that is refused with TOO_MANY_REQUESTS, after idle ones were swept.
//!
//! Every call reads this registry (to refresh `last_seen`), so the map takes a read
//! lock on that path; writes happen only when a client comes, goes or changes settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;
use tonic::metadata::MetadataMap;

use crate::proto::settings::PubSub;
use crate::proto::{ClientType, Code, Resource, Settings, TelemetryCommand};
use crate::status::Refusal;

/// Where commands for a client's Telemetry stream go.
pub(crate) type Outbound = mpsc::Sender<Result<TelemetryCommand, tonic::Status>>;

/// Who is calling, from the request headers.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub client: Arc<Client>,
}

/// One known client.
#[derive(Debug)]
pub(crate) struct Client {
    pub id: String,
    pub language: String,
    pub version: String,
    last_seen_ms: AtomicU64,
    pub session: Mutex<Session>,
}

/// What a client told us in its settings, and its open stream.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub client_type: Option<ClientType>,
    /// Topics a producer publishes (full names, namespace included).
    pub topics: Vec<String>,
    /// The group a consumer consumes for (full name).
    pub group: Option<String>,
    /// The latest settings the server answered with.
    pub settings: Option<Settings>,
    /// The open Telemetry stream: its number (a reopened stream replaces an older one)
    /// and its sender.
    pub telemetry: Option<(u64, Outbound)>,
}

impl Client {
    pub fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// The request timeout the client's settings name, if it sent settings.
    pub fn request_timeout(&self) -> Option<std::time::Duration> {
        let s = self.session.lock().ok()?;
        let t = s.settings.as_ref()?.request_timeout.as_ref()?;
        crate::pop::duration(t)
    }

    fn touch(&self, now_ms: u64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }

    fn has_stream(&self) -> bool {
        self.session
            .lock()
            .map(|s| s.telemetry.is_some())
            .unwrap_or(false)
    }
}

/// The registry.
pub(crate) struct Clients {
    map: RwLock<HashMap<String, Arc<Client>>>,
    max: usize,
    idle_ms: u64,
    next_stream: AtomicU64,
}

fn header<'a>(md: &'a MetadataMap, name: &str) -> &'a str {
    md.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

impl Clients {
    pub fn new(max: usize, idle_ms: u64) -> Clients {
        Clients {
            map: RwLock::new(HashMap::new()),
            max,
            idle_ms,
            next_stream: AtomicU64::new(1),
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    /// The caller of a request: its client, registered if new.
    pub fn caller(&self, md: &MetadataMap, now_ms: u64) -> Result<Caller, Refusal> {
        let id = header(md, "x-mq-client-id");
        if id.is_empty() {
            return Err(Refusal::new(
                Code::ClientIdRequired,
                "the x-mq-client-id header is required",
            ));
        }
        if id.len() > 256 {
            return Err(Refusal::new(
                Code::BadRequest,
                "x-mq-client-id is longer than 256 bytes",
            ));
        }
        if let Some(c) = self.map.read().expect("the client map").get(id) {
            c.touch(now_ms);
            return Ok(Caller { client: c.clone() });
        }
        let mut map = self.map.write().expect("the client map");
        if let Some(c) = map.get(id) {
            c.touch(now_ms);
            return Ok(Caller { client: c.clone() });
        }
        if map.len() >= self.max {
            Self::sweep_locked(&mut map, now_ms, self.idle_ms);
            if map.len() >= self.max {
                return Err(Refusal::new(
                    Code::TooManyRequests,
                    format!("{} clients are connected, the limit", self.max),
                ));
            }
        }
        let client = Arc::new(Client {
            id: id.to_string(),
            language: header(md, "x-mq-language").to_string(),
            version: header(md, "x-mq-client-version").to_string(),
            last_seen_ms: AtomicU64::new(now_ms),
            session: Mutex::new(Session::default()),
        });
        log::info!(
            "client={} language={} version={} event=connected",
            client.id,
            client.language,
            client.version
        );
        map.insert(id.to_string(), client.clone());
        Ok(Caller { client })
    }

    /// Whether a client is known (it called, and was not forgotten since).
    pub fn knows(&self, id: &str) -> bool {
        self.map.read().expect("the client map").contains_key(id)
    }

    /// Forgets clients with no stream that were silent for the idle timeout.
    pub fn sweep(&self, now_ms: u64) {
        let mut map = self.map.write().expect("the client map");
        Self::sweep_locked(&mut map, now_ms, self.idle_ms);
    }

    fn sweep_locked(map: &mut HashMap<String, Arc<Client>>, now_ms: u64, idle_ms: u64) {
        map.retain(|id, c| {
            let keep = c.has_stream() || now_ms.saturating_sub(c.last_seen_ms()) < idle_ms;
            if !keep {
                log::info!("client={id} event=idle_forgotten");
            }
            keep
        });
    }

    /// Forgets a client (NotifyClientTermination).
    pub fn remove(&self, id: &str) {
        if self
            .map
            .write()
            .expect("the client map")
            .remove(id)
            .is_some()
        {
            log::info!("client={id} event=terminated");
        }
    }

    /// A number for a newly opened Telemetry stream.
    pub fn next_stream(&self) -> u64 {
        self.next_stream.fetch_add(1, Ordering::Relaxed)
    }

    /// Live producers that publish `topic` (a store name), with their streams and the
    /// resource they know the topic by (for check-backs).
    pub fn producers_of(&self, topic: &str) -> Vec<(String, Outbound, Resource)> {
        let map = self.map.read().expect("the client map");
        map.values()
            .filter_map(|c| {
                let s = c.session.lock().ok()?;
                let (_, tx) = s.telemetry.as_ref()?;
                if s.client_type != Some(ClientType::Producer)
                    || !s.topics.iter().any(|t| t == topic)
                {
                    return None;
                }
                let known = match s.settings.as_ref().and_then(|x| x.pub_sub.as_ref()) {
                    Some(PubSub::Publishing(p)) => p
                        .topics
                        .iter()
                        .find(|r| crate::resource::full_name(r) == topic)
                        .cloned(),
                    _ => None,
                };
                let resource = known.unwrap_or_else(|| Resource {
                    resource_namespace: String::new(),
                    name: topic.to_string(),
                });
                Some((c.id.clone(), tx.clone(), resource))
            })
            .collect()
    }

    /// Drops every stream's sender, so the streams end once their readers stop.
    pub fn close_streams(&self) {
        let map = self.map.read().expect("the client map");
        for c in map.values() {
            if let Ok(mut s) = c.session.lock() {
                s.telemetry = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(id: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        if !id.is_empty() {
            m.insert("x-mq-client-id", id.parse().unwrap());
        }
        m
    }

    #[test]
    fn clients_are_known_by_id_and_capped() {
        let c = Clients::new(2, 1000);
        assert_eq!(
            c.caller(&md(""), 0).unwrap_err().code,
            Code::ClientIdRequired
        );
        let a = c.caller(&md("a"), 0).unwrap();
        let a2 = c.caller(&md("a"), 5).unwrap();
        assert!(Arc::ptr_eq(&a.client, &a2.client));
        assert_eq!(a.client.last_seen_ms(), 5);
        c.caller(&md("b"), 0).unwrap();
        assert_eq!(
            c.caller(&md("c"), 10).unwrap_err().code,
            Code::TooManyRequests
        );
        // Once a and b are idle, c gets a place.
        assert!(c.caller(&md("c"), 2000).is_ok());
        assert_eq!(c.len(), 1);
        c.remove("c");
        assert_eq!(c.len(), 0);
    }
}
