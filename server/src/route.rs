//! Where clients find queues: QueryRoute (every queue of a topic, READ_WRITE, on broker
//! id 0, accepting all four message types: pocketmq topics take any type, Apache's
//! MIXED) and QueryAssignment (one virtual queue over the whole topic, since every
//! receive may take from any queue). Routes name the advertised endpoints, else those
//! the client asked through, else the listening address. The client's queue choice
//! never matters: the server picks the queue of each send.

use tonic::Request;

use crate::proto::*;
use crate::resource::{self, Use};
use crate::service::Shared;
use crate::status::{self, Outcome, Refusal};

/// QueryRoute: the topic's queues, or ILLEGAL_TOPIC / TOPIC_NOT_FOUND.
pub(crate) fn query_route(
    sh: &Shared,
    req: Request<QueryRouteRequest>,
) -> Outcome<QueryRouteResponse> {
    sh.caller(&req)?;
    let req = req.into_inner();
    let name = resource::topic(req.topic.as_ref(), Use::Consume)?;
    let queues = queues_of(sh, &name)?;
    let topic = req.topic.unwrap_or_default();
    let endpoints = endpoints(sh, req.endpoints);
    let message_queues = (0..queues as i32)
        .map(|id| MessageQueue {
            topic: Some(topic.clone()),
            id,
            permission: Permission::ReadWrite as i32,
            broker: Some(broker(&endpoints)),
            accept_message_types: vec![
                MessageType::Normal as i32,
                MessageType::Fifo as i32,
                MessageType::Delay as i32,
                MessageType::Transaction as i32,
            ],
        })
        .collect();
    Ok(QueryRouteResponse {
        status: Some(status::ok()),
        message_queues,
    })
}

/// QueryAssignment: one assignment over the whole topic.
pub(crate) fn query_assignment(
    sh: &Shared,
    req: Request<QueryAssignmentRequest>,
) -> Outcome<QueryAssignmentResponse> {
    sh.caller(&req)?;
    let req = req.into_inner();
    let name = resource::topic(req.topic.as_ref(), Use::Consume)?;
    resource::group(req.group.as_ref())?;
    queues_of(sh, &name)?;
    let endpoints = endpoints(sh, req.endpoints);
    // One virtual queue: every receive may take from all of the topic's queues.
    Ok(QueryAssignmentResponse {
        status: Some(status::ok()),
        assignments: vec![Assignment {
            message_queue: Some(MessageQueue {
                topic: req.topic,
                id: -1,
                permission: Permission::ReadWrite as i32,
                broker: Some(broker(&endpoints)),
                accept_message_types: Vec::new(),
            }),
        }],
    })
}

/// The endpoints routes name: the advertised address, else the one the client
/// asked through, else the listening address.
pub(crate) fn endpoints(sh: &Shared, asked: Option<Endpoints>) -> Endpoints {
    if let Some(a) = &sh.cfg.advertise {
        if let Some(e) = parse_endpoint(a) {
            return e;
        }
    }
    match asked {
        Some(e) if !e.addresses.is_empty() => e,
        _ => parse_endpoint(&sh.local_addr.to_string()).expect("a socket address parses"),
    }
}

/// The queue count of a topic a route names, or TOPIC_NOT_FOUND.
pub(crate) fn queues_of(sh: &Shared, topic: &str) -> Outcome<u32> {
    if let Some(t) = sh.broker.topic(topic)? {
        return Ok(t.queues);
    }
    if topic.starts_with('%') || topic.starts_with("RMQ_SYS_") {
        // Retry and dead-letter topics have one queue each, once they exist.
        return Ok(1);
    }
    if sh.cfg.auto_create_topics {
        return Ok(sh.cfg.default_queues);
    }
    Err(Refusal::new(
        Code::TopicNotFound,
        format!("topic {topic:?} does not exist"),
    ))
}

/// `host:port` as protocol endpoints.
pub(crate) fn parse_endpoint(s: &str) -> Option<Endpoints> {
    let (host, port) = s.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let scheme = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => AddressScheme::IPv4,
        Ok(std::net::IpAddr::V6(_)) => AddressScheme::IPv6,
        Err(_) => AddressScheme::DomainName,
    };
    Some(Endpoints {
        scheme: scheme as i32,
        addresses: vec![Address {
            host: host.to_string(),
            port: port as i32,
        }],
    })
}

fn broker(endpoints: &Endpoints) -> crate::proto::Broker {
    crate::proto::Broker {
        name: "pocketmq".to_string(),
        id: 0,
        endpoints: Some(endpoints.clone()),
    }
}
