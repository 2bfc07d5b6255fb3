//! The answer to a client's Settings on its Telemetry stream (server-mode.md §3.1):
//! the client's own settings with the server's fields merged in, as Apache's
//! `GrpcClientSettingsManager` does. Clients block on this reply, and Node and Java
//! dereference its backoff policy, so it must be complete:
//! - producers: an exponential backoff (3 attempts, 10 ms doubling to 1 s),
//!   `publishing.max_body_size` = the store's limit (Node takes a missing one as 0),
//!   `validate_message_type`;
//! - consumers: a customized backoff (the retry ladder, `1 + max_reconsume_times`
//!   attempts), `subscription.fifo` for FIFO groups, `receive_batch_size` 32 and
//!   `long_polling_timeout` (the Python PushConsumer copies it verbatim).

use prost_types::Duration as PbDuration;

use crate::config::ServeConfig;
use crate::proto::settings::PubSub;
use crate::proto::{
    retry_policy, ClientType, Code, CustomizedBackoff, ExponentialBackoff, Metric, Publishing,
    RetryPolicy, Settings, Subscription,
};
use crate::resource;
use crate::status::Refusal;

/// Batch size consumers are told to ask for.
const RECEIVE_BATCH_SIZE: i32 = 32;

pub(crate) fn pb_duration(d: std::time::Duration) -> PbDuration {
    PbDuration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// The effective settings for a client that sent `client`.
pub(crate) fn merge(client: &Settings, cfg: &ServeConfig) -> Result<Settings, Refusal> {
    let mut out = client.clone();
    // The server exports no metrics; a client told `on` would start an exporter.
    out.metric = Some(Metric {
        on: false,
        endpoints: None,
    });
    match client.client_type() {
        ClientType::Producer => {
            out.backoff_policy = Some(RetryPolicy {
                max_attempts: 3,
                strategy: Some(retry_policy::Strategy::ExponentialBackoff(
                    ExponentialBackoff {
                        initial: Some(pb_duration(std::time::Duration::from_millis(10))),
                        max: Some(pb_duration(std::time::Duration::from_secs(1))),
                        multiplier: 2.0,
                    },
                )),
            });
            let topics = match &client.pub_sub {
                Some(PubSub::Publishing(p)) => p.topics.clone(),
                _ => Vec::new(),
            };
            out.pub_sub = Some(PubSub::Publishing(Publishing {
                topics,
                max_body_size: i32::try_from(cfg.limits.max_message_size).unwrap_or(i32::MAX),
                validate_message_type: true,
            }));
        }
        ClientType::PushConsumer
        | ClientType::SimpleConsumer
        | ClientType::PullConsumer
        | ClientType::LitePushConsumer
        | ClientType::LiteSimpleConsumer => {
            let mut sub = match &client.pub_sub {
                Some(PubSub::Subscription(s)) => s.clone(),
                _ => Subscription::default(),
            };
            let group = sub
                .group
                .as_ref()
                .map(resource::full_name)
                .unwrap_or_default();
            let g = cfg.group(&group);
            out.backoff_policy = Some(RetryPolicy {
                max_attempts: 1 + g.max_reconsume_times as i32,
                strategy: Some(retry_policy::Strategy::CustomizedBackoff(
                    CustomizedBackoff {
                        next: cfg.retry_delays.iter().map(|d| pb_duration(*d)).collect(),
                    },
                )),
            });
            sub.fifo = Some(g.fifo);
            sub.receive_batch_size = Some(RECEIVE_BATCH_SIZE);
            sub.long_polling_timeout = Some(pb_duration(cfg.limits.long_polling_max));
            out.pub_sub = Some(PubSub::Subscription(sub));
        }
        ClientType::Unspecified => {
            return Err(Refusal::new(
                Code::UnrecognizedClientType,
                "settings need a client_type",
            ))
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GroupConfig;
    use crate::proto::{Resource, Ua};

    fn producer() -> Settings {
        Settings {
            client_type: Some(ClientType::Producer as i32),
            pub_sub: Some(PubSub::Publishing(Publishing {
                topics: vec![Resource {
                    resource_namespace: String::new(),
                    name: "orders".into(),
                }],
                max_body_size: 0,
                validate_message_type: true,
            })),
            user_agent: Some(Ua::default()),
            ..Settings::default()
        }
    }

    #[test]
    fn producers_get_an_exponential_backoff_and_the_body_limit() {
        let s = merge(&producer(), &ServeConfig::default()).unwrap();
        let b = s.backoff_policy.unwrap();
        assert_eq!(b.max_attempts, 3);
        assert!(matches!(
            b.strategy,
            Some(retry_policy::Strategy::ExponentialBackoff(_))
        ));
        let Some(PubSub::Publishing(p)) = s.pub_sub else {
            panic!("publishing")
        };
        assert_eq!(p.max_body_size, 4 * 1024 * 1024);
        assert_eq!(p.topics[0].name, "orders");
        assert!(s.user_agent.is_some());
    }

    #[test]
    fn consumers_get_the_ladder_fifo_and_the_poll() {
        let mut cfg = ServeConfig::default();
        cfg.groups.insert(
            "billing".into(),
            GroupConfig {
                fifo: true,
                max_reconsume_times: 3,
            },
        );
        let client = Settings {
            client_type: Some(ClientType::PushConsumer as i32),
            pub_sub: Some(PubSub::Subscription(Subscription {
                group: Some(Resource {
                    resource_namespace: String::new(),
                    name: "billing".into(),
                }),
                ..Subscription::default()
            })),
            ..Settings::default()
        };
        let s = merge(&client, &cfg).unwrap();
        let b = s.backoff_policy.unwrap();
        assert_eq!(b.max_attempts, 4);
        let Some(retry_policy::Strategy::CustomizedBackoff(c)) = b.strategy else {
            panic!("customized")
        };
        assert_eq!(c.next[0].seconds, 10);
        let Some(PubSub::Subscription(sub)) = s.pub_sub else {
            panic!("subscription")
        };
        assert_eq!(sub.fifo, Some(true));
        assert_eq!(sub.long_polling_timeout.unwrap().seconds, 20);
        assert_eq!(sub.receive_batch_size, Some(32));
    }

    #[test]
    fn a_missing_client_type_is_refused() {
        let e = merge(&Settings::default(), &ServeConfig::default()).unwrap_err();
        assert_eq!(e.code, Code::UnrecognizedClientType);
    }
}
