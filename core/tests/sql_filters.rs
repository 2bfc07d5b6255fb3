//! SQL92 subscriptions (RocketMQ's `MessageSelector.bySql`): a consumer given `sql`
//! receives the messages whose properties satisfy it and skips the rest; a bad
//! expression, or tags beside it, is refused before anything changes.

mod common;

use std::time::Duration;

use common::*;
use pocketmq::{
    ConsumerConfig, ErrorKind, Message, MessageExt, MessageSelector, SimpleConsumerConfig,
};

/// Sends orders with an amount, a region and a tag to queue 0 of `t`, in this order.
fn send_orders(b: &pocketmq::Broker) {
    let p = b.producer("shop").unwrap();
    for (body, amount, region, tag) in [
        ("small-eu", "20", "eu", "paid"),
        ("big-eu", "250", "eu", "paid"),
        ("big-us", "900", "us", "paid"),
        ("big-eu-refund", "300", "eu", "refund"),
        ("no-amount", "", "eu", "paid"),
        ("bad-amount", "lots", "eu", "paid"),
    ] {
        let mut m = Message::builder("t", body)
            .tags(tag)
            .queue_id(0)
            .property("region", region);
        if !amount.is_empty() {
            m = m.property("amount", amount);
        }
        p.send(m.build()).unwrap();
    }
}

fn sql_consumer(b: &pocketmq::Broker, group: &str, sql: &str) -> pocketmq::Consumer {
    b.consumer(ConsumerConfig {
        sql: Some(sql.into()),
        ..ConsumerConfig::new(group, "t")
    })
    .unwrap()
}

#[test]
fn a_consumer_receives_only_what_its_expression_takes() {
    let (b, _) = manual();
    b.create_topic("t", 1).unwrap();
    send_orders(&b);
    let c = sql_consumer(
        &b,
        "big-eu",
        "amount >= 100 AND region = 'eu' AND TAGS = 'paid'",
    );
    let got = drain(&c);
    assert_eq!(bodies(&got), vec!["big-eu"]);
    c.ack_all(&got).unwrap();
    // What the expression skipped is consumed for the group, as RocketMQ skips it.
    assert_eq!(b.lag("big-eu", "t").unwrap(), 0);

    let missing = sql_consumer(&b, "no-amount", "amount IS NULL");
    assert_eq!(bodies(&drain(&missing)), vec!["no-amount"]);
    // A value that is no number fails the comparison for that message alone.
    let all_big = sql_consumer(&b, "big", "amount > 100");
    assert_eq!(
        bodies(&drain(&all_big)),
        vec!["big-eu", "big-us", "big-eu-refund"]
    );
    let regions = sql_consumer(&b, "us", "region IN ('us', 'ca') OR TAGS = 'refund'");
    assert_eq!(bodies(&drain(&regions)), vec!["big-us", "big-eu-refund"]);
}

#[test]
fn messages_sent_while_a_consumer_waits_are_filtered_too() {
    let (b, _) = manual();
    b.create_topic("t", 1).unwrap();
    let c = sql_consumer(&b, "g", "amount BETWEEN 100 AND 500");
    assert!(c.receive(8, Duration::ZERO).unwrap().is_empty());
    send_orders(&b);
    assert_eq!(bodies(&drain(&c)), vec!["big-eu", "big-eu-refund"]);
}

#[test]
fn a_simple_consumer_filters_by_sql_and_can_resubscribe() {
    let (b, _) = manual();
    b.create_topic("t", 1).unwrap();
    send_orders(&b);
    let sc = b
        .simple_consumer(SimpleConsumerConfig {
            sql: Some("region = 'us'".into()),
            ..SimpleConsumerConfig::new("pop", "t")
        })
        .unwrap();
    let got = sc.receive(32, Duration::ZERO).unwrap();
    assert_eq!(bodies(&got), vec!["big-us"]);
    for m in &got {
        assert!(m.matches_sql("region = 'us' AND amount > 500").unwrap());
        assert!(!m.matches_sql("TAGS = 'refund'").unwrap());
        sc.ack(m).unwrap();
    }
    // From here on the group reads by the new expression (skipped messages stay
    // skipped, as with tags).
    b.producer("shop")
        .unwrap()
        .send(Message::builder("t", "late-refund").tags("refund").build())
        .unwrap();
    sc.resubscribe_sql("TAGS = 'refund'").unwrap();
    assert_eq!(
        bodies(&sc.receive(32, Duration::ZERO).unwrap()),
        vec!["late-refund"]
    );
    let bad = sc.resubscribe_sql("TAGS =").unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn members_of_a_group_subscribe_alike() {
    let (b, _) = manual();
    b.create_topic("t", 2).unwrap();
    let _first = sql_consumer(&b, "g", "amount > 100");
    // The same expression joins; another one, or tags, is refused.
    let _second = sql_consumer(&b, "g", "amount > 100");
    let other = b
        .consumer(ConsumerConfig {
            sql: Some("amount > 200".into()),
            ..ConsumerConfig::new("g", "t")
        })
        .unwrap_err();
    assert_eq!(other.kind(), ErrorKind::InvalidArgument);
    assert!(
        other.to_string().contains("with sql \"amount > 100\""),
        "{other}"
    );
    let by_tags = b
        .consumer(ConsumerConfig {
            tags: "paid".into(),
            ..ConsumerConfig::new("g", "t")
        })
        .unwrap_err();
    assert_eq!(by_tags.kind(), ErrorKind::InvalidArgument);
}

#[test]
fn bad_expressions_are_refused_and_change_nothing() {
    let (b, _) = manual();
    b.create_topic("t", 1).unwrap();
    send_orders(&b);
    for sql in [
        "",
        "amount >",
        "amount > 'x'",
        "region = NULL",
        "a = 1 b = 2",
    ] {
        let e = b
            .consumer(ConsumerConfig {
                sql: Some(sql.into()),
                ..ConsumerConfig::new("g", "t")
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{sql:?}: {e}");
        assert!(e.to_string().contains("SQL92"), "{e}");
    }
    let both = b
        .consumer(ConsumerConfig {
            tags: "paid".into(),
            sql: Some("amount > 1".into()),
            ..ConsumerConfig::new("g", "t")
        })
        .unwrap_err();
    assert_eq!(both.kind(), ErrorKind::InvalidArgument);
    assert!(pocketmq::check_sql("a > 1").is_ok());
    assert_eq!(
        pocketmq::check_sql("a >").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // None of the refused consumers joined: the group starts from the first message.
    let c = consumer(&b, "g", "t");
    assert_eq!(drain(&c).len(), 6);
}

#[test]
fn a_selector_parsed_once_tests_received_messages_as_the_subscription_would() {
    let (b, _) = manual();
    b.create_topic("t", 1).unwrap();
    send_orders(&b);
    let all = drain(&consumer(&b, "everything", "t"));
    assert_eq!(all.len(), 6);
    for (kind, expression) in [
        ("sql", "amount >= 100 AND region = 'eu'"),
        ("sql", "amount IS NULL OR TAGS = 'refund'"),
        ("sql", "KEYS IS NULL AND amount > 100"),
        ("tags", "refund"),
        ("tags", "paid || refund"),
        ("tags", "*"),
    ] {
        let selector = if kind == "sql" {
            MessageSelector::by_sql(expression).unwrap()
        } else {
            MessageSelector::by_tag(expression).unwrap()
        };
        assert_eq!(selector.is_sql(), kind == "sql");
        assert_eq!(selector.expression(), expression);
        assert_eq!(selector.to_string(), format!("{kind} {expression:?}"));
        // The same messages as a consumer subscribed with the expression, and as
        // MessageExt's one-off test.
        let group = format!("{kind}-{expression}").replace(['\'', ' ', '|', '*', '>', '='], "_");
        let subscribed = b
            .consumer(ConsumerConfig {
                tags: if kind == "tags" {
                    expression.into()
                } else {
                    "*".into()
                },
                sql: (kind == "sql").then(|| expression.into()),
                ..ConsumerConfig::new(group, "t")
            })
            .unwrap();
        let want = bodies(&drain(&subscribed));
        let taken: Vec<&MessageExt> = all.iter().filter(|m| selector.matches(m)).collect();
        let got: Vec<&str> = taken.iter().map(|m| m.body_str().unwrap()).collect();
        assert_eq!(got, want, "{selector}");
        for m in &all {
            let one_off = if kind == "sql" {
                m.matches_sql(expression)
            } else {
                m.matches_tags(expression)
            };
            assert_eq!(one_off.unwrap(), selector.matches(m), "{selector}");
        }
    }
    // The same subscription whatever the spacing and order of its tags; never across kinds.
    assert_eq!(
        MessageSelector::by_tag(" paid||refund ").unwrap(),
        MessageSelector::by_tag("refund || paid").unwrap()
    );
    assert_ne!(
        MessageSelector::by_tag("paid").unwrap(),
        MessageSelector::by_sql("TAGS = 'paid'").unwrap()
    );
    for bad in [
        MessageSelector::by_sql("amount >").unwrap_err(),
        MessageSelector::by_tag(" || ").unwrap_err(),
    ] {
        assert_eq!(bad.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
}
