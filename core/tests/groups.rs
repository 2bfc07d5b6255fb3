//! Consumer groups: clustering splits queues and delivers each message once;
//! different groups and broadcasting consumers each see everything; offsets persist.

#![allow(clippy::disallowed_methods)] // tests may start threads and read real time

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::*;
use pocketmq::{ConsumerConfig, ManualClock, Message, MessageModel, StartFrom};

#[test]
fn three_consumers_split_eight_queues_and_see_each_message_once() {
    let (b, _) = manual();
    b.create_topic("orders", 8).unwrap();
    let cs: Vec<_> = (0..3).map(|_| consumer(&b, "g", "orders")).collect();
    let p = b.producer("p").unwrap();
    for i in 0..400 {
        p.send(Message::new("orders", format!("m{i}"))).unwrap();
    }
    let mut seen = Vec::new();
    let mut queues_per_consumer = Vec::new();
    for c in &cs {
        let got = drain(c);
        let qs: BTreeSet<u32> = got.iter().map(|m| m.queue_id).collect();
        queues_per_consumer.push(qs.len());
        c.ack_all(&got).unwrap();
        seen.extend(bodies(&got));
    }
    queues_per_consumer.sort();
    assert_eq!(queues_per_consumer, vec![2, 3, 3]);
    assert_eq!(seen.len(), 400);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 400);
    assert_eq!(b.lag("g", "orders").unwrap(), 0);
}

#[test]
fn every_group_and_every_broadcast_consumer_sees_everything() {
    let (b, _) = manual();
    let g1 = consumer(&b, "g1", "t");
    let g2 = consumer(&b, "g2", "t");
    let bc = |id: &str| {
        let mut cfg = ConsumerConfig::new("bc", "t");
        cfg.model = MessageModel::Broadcasting;
        cfg.consumer_id = Some(id.to_string());
        b.consumer(cfg).unwrap()
    };
    let (b1, b2) = (bc("a"), bc("b"));
    for i in 0..50 {
        send(&b, "t", &format!("m{i}"));
    }
    for c in [&g1, &g2, &b1, &b2] {
        assert_eq!(drain(c).len(), 50);
    }
}

#[test]
fn a_broadcasting_member_keeps_its_deliveries_as_others_come_and_go_and_gets_new_queues() {
    let (b, _) = manual();
    b.create_topic("t", 2).unwrap();
    let p = b.producer("p").unwrap();
    let to = |q: u32, body: &str| {
        p.send(Message::builder("t", body.to_string()).queue_id(q).build())
            .unwrap();
    };
    let bc = |id: &str| {
        let mut cfg = ConsumerConfig::new("bc", "t");
        cfg.model = MessageModel::Broadcasting;
        cfg.consumer_id = Some(id.to_string());
        b.consumer(cfg).unwrap()
    };
    for (q, body) in [(0, "a"), (1, "b"), (0, "c"), (1, "d")] {
        to(q, body);
    }
    let a = bc("a");
    let got = a.receive(4, Duration::ZERO).unwrap();
    assert_eq!(got.len(), 4);
    a.ack(&got[0]).unwrap();
    a.ack(&got[1]).unwrap();
    // Members join and leave: the two a holds stay with it, not delivered again.
    let others: Vec<_> = ["b", "c", "d"].iter().map(|id| bc(id)).collect();
    others[1].close().unwrap();
    assert!(a.receive(4, Duration::ZERO).unwrap().is_empty());
    for m in &got[2..] {
        a.ack(m).unwrap();
    }
    // The topic grows: every member reads the new queues too.
    b.create_topic("t", 4).unwrap();
    for q in 0..4 {
        to(q, &format!("new {q}"));
    }
    let mut new: Vec<String> = drain(&a)
        .iter()
        .map(|m| String::from_utf8_lossy(&m.body).into_owned())
        .collect();
    new.sort();
    assert_eq!(new, ["new 0", "new 1", "new 2", "new 3"]);
    assert_eq!(drain(&others[0]).len(), 8, "a member that joined later");
}

#[test]
fn sharding_keys_keep_per_key_order() {
    let (b, _) = manual();
    b.create_topic("life", 4).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..20 {
        for k in 0..50 {
            let m = Message::builder("life", format!("{k}:{i}"))
                .sharding_key(format!("order-{k}"))
                .build();
            p.send(m).unwrap();
        }
    }
    let cs: Vec<_> = (0..2).map(|_| consumer(&b, "g", "life")).collect();
    let mut last: HashMap<String, i32> = HashMap::new();
    let mut n = 0;
    for c in &cs {
        for m in drain(c) {
            let s = m.body_str().unwrap().to_string();
            let (k, i) = s.split_once(':').unwrap();
            let i: i32 = i.parse().unwrap();
            let prev = last.insert(k.to_string(), i).unwrap_or(-1);
            assert_eq!(i, prev + 1, "key {k} out of order");
            n += 1;
        }
    }
    assert_eq!(n, 1000);
}

#[test]
fn tag_hash_collisions_never_leak() {
    let (b, _) = manual();
    let mut cfg = ConsumerConfig::new("g", "t");
    cfg.tags = "Aa".into();
    let c = b.consumer(cfg).unwrap();
    let p = b.producer("p").unwrap();
    for tag in ["BB", "Aa", "C", "BB", "Aa"] {
        p.send(Message::builder("t", tag).tags(tag).queue_id(0).build())
            .unwrap();
    }
    assert_eq!(bodies(&drain(&c)), vec!["Aa", "Aa"]);
}

#[test]
fn unacked_messages_go_to_the_next_owner_when_a_consumer_closes() {
    let (b, _) = manual();
    b.create_topic("t", 2).unwrap();
    let c1 = consumer(&b, "g", "t");
    for i in 0..10 {
        send(&b, "t", &format!("m{i}"));
    }
    let got = drain(&c1);
    assert_eq!(got.len(), 10);
    for m in &got[..4] {
        c1.ack(m).unwrap();
    }
    let c2 = consumer(&b, "g", "t");
    c1.close().unwrap();
    let again = drain(&c2);
    let expected: BTreeSet<String> = bodies(&got[4..]).into_iter().collect();
    assert_eq!(
        bodies(&again).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
}

/// A restart delivers again only what was not acked: the committed offset is the
/// lowest unacked one, and the offsets file keeps what was acked above it.
#[test]
fn a_restart_redelivers_only_what_was_not_acked() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        b.create_topic("t", 1).unwrap();
        let c = consumer(&b, "g", "t");
        for i in 0..10 {
            send(&b, "t", &format!("m{i}"));
        }
        let got = drain(&c);
        for m in got.iter().filter(|m| m.queue_offset != 5) {
            c.ack(m).unwrap();
        }
        b.close().unwrap();
    }
    let b = file(dir.path(), &clock);
    let c = consumer(&b, "g", "t");
    assert_eq!(b.lag("g", "t").unwrap(), 1);
    let again = drain(&c);
    let offsets: Vec<u64> = again.iter().map(|m| m.queue_offset).collect();
    assert_eq!(offsets, vec![5]);
    c.ack(&again[0]).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// A queue that moves to another member passes over what the first one acked above
/// its lowest unacked message; only that one is delivered again.
#[test]
fn a_queue_handed_over_delivers_again_only_what_was_not_acked() {
    let (b, _) = manual();
    b.create_topic("t", 2).unwrap();
    let c1 = consumer(&b, "g", "t");
    // One producer's round robin: five messages in each queue (a producer apiece
    // would pick each one's queue from its own random start).
    let p = b.producer("p").unwrap();
    for i in 0..10 {
        p.send(Message::new("t", format!("m{i}"))).unwrap();
    }
    let got = drain(&c1);
    assert_eq!(got.len(), 10);
    // The first message of each queue stays unacked, the others are acked.
    let firsts: BTreeSet<(u32, u64)> = [0u32, 1]
        .iter()
        .filter_map(|q| {
            got.iter()
                .filter(|m| m.queue_id == *q)
                .map(|m| (m.queue_id, m.queue_offset))
                .min()
        })
        .collect();
    for m in &got {
        if !firsts.contains(&(m.queue_id, m.queue_offset)) {
            c1.ack(m).unwrap();
        }
    }
    assert_eq!(b.lag("g", "t").unwrap(), 2);
    let c2 = consumer(&b, "g", "t");
    c1.close().unwrap();
    let again: BTreeSet<(u32, u64)> = drain(&c2)
        .iter()
        .map(|m| (m.queue_id, m.queue_offset))
        .collect();
    assert_eq!(again, firsts);
    // A reset forgets those acks: everything comes again.
    b.reset_offset("g", "t", StartFrom::Earliest).unwrap();
    assert_eq!(drain(&c2).len(), 10);
}

#[test]
fn start_positions_hold_on_every_queue() {
    let (b, clock) = manual();
    b.create_topic("t", 4).unwrap();
    let p = b.producer("p").unwrap();
    for q in 0..4 {
        p.send(Message::builder("t", "old").queue_id(q).build())
            .unwrap();
    }
    clock.advance_ms(1000);
    let mid = pocketmq::Clock::now_ms(&clock);
    for q in 0..4 {
        p.send(Message::builder("t", "new").queue_id(q).build())
            .unwrap();
    }
    let mut late = ConsumerConfig::new("late", "t");
    late.start = StartFrom::Latest;
    let late = b.consumer(late).unwrap();
    let mut timed = ConsumerConfig::new("timed", "t");
    timed.start = StartFrom::Timestamp(mid);
    let timed = b.consumer(timed).unwrap();
    assert!(drain(&late).is_empty());
    assert_eq!(bodies(&drain(&timed)), vec!["new"; 4]);
}

#[test]
fn start_positions_apply_to_new_groups_only() {
    let (b, clock) = manual();
    b.create_topic("t", 1).unwrap();
    send(&b, "t", "old");
    clock.advance_ms(10_000);
    let mid = pocketmq::Clock::now_ms(&clock);
    send(&b, "t", "new");
    let latest = {
        let mut cfg = ConsumerConfig::new("late", "t");
        cfg.start = StartFrom::Latest;
        b.consumer(cfg).unwrap()
    };
    let by_time = {
        let mut cfg = ConsumerConfig::new("timed", "t");
        cfg.start = StartFrom::Timestamp(mid);
        b.consumer(cfg).unwrap()
    };
    send(&b, "t", "newest");
    assert_eq!(bodies(&drain(&latest)), vec!["newest"]);
    assert_eq!(bodies(&drain(&by_time)), vec!["new", "newest"]);
    assert_eq!(
        bodies(&drain(&consumer(&b, "fresh", "t"))),
        vec!["old", "new", "newest"]
    );
    b.reset_offset("timed", "t", StartFrom::Earliest).unwrap();
    assert_eq!(drain(&by_time).len(), 3);
    // A time ahead of the clock is ahead of every message, even one stored this
    // millisecond: the group starts at the end, and so does a reset to it.
    let now = pocketmq::Clock::now_ms(&clock);
    let ahead = {
        let mut cfg = ConsumerConfig::new("ahead", "t");
        cfg.start = StartFrom::Timestamp(now + 60_000);
        b.consumer(cfg).unwrap()
    };
    assert!(drain(&ahead).is_empty());
    b.reset_offset("timed", "t", StartFrom::Timestamp(now + 1))
        .unwrap();
    assert!(drain(&by_time).is_empty());
    send(&b, "t", "later");
    assert_eq!(bodies(&drain(&ahead)), vec!["later"]);
    assert_eq!(bodies(&drain(&by_time)), vec!["later"]);
}

#[test]
fn a_waiting_receiver_wakes_on_a_matching_send_only() {
    let b = pocketmq::Broker::memory();
    let mut cfg = ConsumerConfig::new("g", "t");
    cfg.tags = "want".into();
    let c = b.consumer(cfg).unwrap();
    let b2 = b.clone();
    let sender = std::thread::spawn(move || {
        let p = b2.producer("p").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        p.send(Message::builder("t", "no").tags("other").build())
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        p.send(Message::builder("t", "yes").tags("want").build())
            .unwrap();
    });
    let start = Instant::now();
    let got = c.receive(10, Duration::from_secs(5)).unwrap();
    let waited = start.elapsed();
    sender.join().unwrap();
    assert_eq!(bodies(&got), vec!["yes"]);
    assert!(
        waited >= Duration::from_millis(140),
        "woke too early: {waited:?}"
    );
    let start = Instant::now();
    assert!(c
        .receive(10, Duration::from_millis(100))
        .unwrap()
        .is_empty());
    assert!(start.elapsed() >= Duration::from_millis(100));
}

/// Broadcasting consumers without a `consumer_id` cannot come back as themselves:
/// closing one leaves no offsets behind, and lag counts the live consumers only.
#[test]
fn short_lived_broadcasting_consumers_leave_no_offsets_behind() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    let b = file(dir.path(), &clock);
    b.create_topic("t", 1).unwrap();
    let broadcast = |id: Option<&str>| {
        let mut cfg = ConsumerConfig::new("bc", "t");
        cfg.model = pocketmq::MessageModel::Broadcasting;
        cfg.consumer_id = id.map(str::to_string);
        b.consumer(cfg).unwrap()
    };
    let live = broadcast(Some("live"));
    let p = b.producer("p").unwrap();
    for i in 0..300 {
        p.send(Message::new("t", format!("m{i}"))).unwrap();
        let short = broadcast(None);
        let got = drain(&short);
        short.ack_all(&got).unwrap();
        short.close().unwrap();
    }
    let got = drain(&live);
    live.ack_all(&got).unwrap();
    assert_eq!(b.lag("bc", "t").unwrap(), 0);
    b.close().unwrap();
    let offsets = std::fs::read_to_string(dir.path().join("config/offsets.json")).unwrap();
    let entries = offsets.matches("t@bc@").count();
    assert_eq!(entries, 1, "{offsets}");
}

/// A consumer's ack of a delivery whose queue moved away and back (a member joined
/// and left) still counts while the message has not been delivered again: it is
/// never delivered to the group again. After a reset an old ack counts for nothing.
#[test]
fn an_ack_outlives_a_rebalance_but_not_a_reset() {
    let (b, _) = manual();
    b.create_topic("t", 2).unwrap();
    let p = b.producer("p").unwrap();
    for q in 0..2 {
        p.send(Message::builder("t", format!("m{q}")).queue_id(q).build())
            .unwrap();
    }
    let named = |id: &str| {
        let mut cfg = ConsumerConfig::new("g", "t");
        cfg.consumer_id = Some(id.to_string());
        b.consumer(cfg).unwrap()
    };
    let held_by_b = named("b");
    let got = drain(&held_by_b);
    assert_eq!(got.len(), 2);
    let a = named("a");
    a.close().unwrap();
    held_by_b.ack_all(&got).unwrap();
    assert!(drain(&held_by_b).is_empty(), "acked, never delivered again");
    assert_eq!(b.lag("g", "t").unwrap(), 0);
    // A reset makes the old deliveries' acks worthless: the replay delivers both.
    p.send(Message::builder("t", "m2").queue_id(0).build())
        .unwrap();
    let third = drain(&held_by_b);
    assert_eq!(bodies(&third), ["m2"]);
    b.reset_offset("g", "t", StartFrom::Earliest).unwrap();
    held_by_b.ack_all(&third).unwrap();
    let mut replay = bodies(&drain(&held_by_b));
    replay.sort();
    assert_eq!(replay, ["m0", "m1", "m2"]);
}

/// `lag` counts the messages not yet acked: one acked out of order above a slow one
/// is not behind (the committed offset, what a restart resumes from, stays at the
/// slow one). Likewise for a simple consumer group.
#[test]
fn lag_counts_what_is_not_acked_even_out_of_order() {
    let (b, _) = manual();
    b.create_topic("t", 1).unwrap();
    send_numbered(&b, "t", "m", 10);
    let c = consumer(&b, "g", "t");
    let got = drain(&c);
    assert_eq!(got.len(), 10);
    let (slow, rest): (Vec<_>, Vec<_>) = got.iter().partition(|m| m.queue_offset == 5);
    for m in rest {
        c.ack(m).unwrap();
    }
    assert_eq!(b.lag("g", "t").unwrap(), 1);
    let [q] = b.progress("g", "t").unwrap().try_into().unwrap();
    assert_eq!(
        q.consumer_offset, 5,
        "the committed offset waits for the slow one"
    );
    c.ack(slow[0]).unwrap();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
    let sc = b
        .simple_consumer(pocketmq::SimpleConsumerConfig::new("s", "t"))
        .unwrap();
    let got = sc.receive(16, Duration::ZERO).unwrap();
    for m in got.iter().filter(|m| m.queue_offset != 2) {
        sc.ack(m).unwrap();
    }
    assert_eq!(b.lag("s", "t").unwrap(), 1);
}

/// A store written under a clock ahead of this one (another machine, a clock set
/// back): a time ahead of now is searched for like any other, not taken for the end.
#[test]
fn a_reset_to_a_time_ahead_of_the_clock_finds_messages_stored_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000;
    {
        let ahead = pocketmq::ManualClock::new(common::T0 + hour);
        let b = common::file(dir.path(), &ahead);
        b.create_topic("t", 1).unwrap();
        send(&b, "t", "early");
        ahead.advance_ms(hour);
        send(&b, "t", "late");
        b.close().unwrap();
    }
    let clock = pocketmq::ManualClock::new(common::T0);
    let b = common::file(dir.path(), &clock);
    let c = consumer(&b, "g", "t");
    b.reset_offset("g", "t", StartFrom::Timestamp(common::T0 + hour + hour / 2))
        .unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["late"]);
}

#[test]
fn stats_count_each_groups_deliveries_per_topic() {
    let (b, _) = manual();
    send_numbered(&b, "orders", "o", 70);
    send_numbered(&b, "refunds", "r", 5);
    let (a, c) = (consumer(&b, "a", "orders"), consumer(&b, "c", "orders"));
    assert_eq!(drain(&a).len(), 70);
    let some = c.receive(32, Duration::ZERO).unwrap();
    // The same group on another topic, once its members of the first are gone.
    a.close().unwrap();
    let r = consumer(&b, "a", "refunds");
    assert_eq!(drain(&r).len(), 5);
    let out: HashMap<(String, String), u64> = b
        .stats()
        .unwrap()
        .groups
        .into_iter()
        .map(|g| ((g.group, g.topic), g.messages_out))
        .collect();
    let key = |g: &str, t: &str| (g.to_string(), t.to_string());
    assert_eq!(out.get(&key("a", "orders")), Some(&70));
    assert_eq!(out.get(&key("c", "orders")), Some(&(some.len() as u64)));
    assert_eq!(out.get(&key("a", "refunds")), Some(&5));
}

#[test]
fn a_receive_hands_out_a_list_of_about_its_own_length() {
    // Whatever the receiving thread took before: a caller may keep many lists.
    let (b, _) = manual();
    b.create_topic("orders", 1).unwrap();
    send_numbered(&b, "orders", "m", 67);
    let c = consumer(&b, "g", "orders");
    for want in [32, 32, 1, 2] {
        let got = c.receive(want, Duration::ZERO).unwrap();
        assert_eq!(got.len(), want);
        assert!(
            got.capacity() <= want + want / 4,
            "{} messages in a list of {}",
            got.len(),
            got.capacity()
        );
    }
}
