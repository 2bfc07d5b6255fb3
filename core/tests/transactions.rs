//! Transactional messages under a manual clock: the four outcomes, check-back after a
//! crash, invisibility before commit, first resolution wins.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use common::*;
use pocketmq::{Message, TxState};

#[test]
fn commit_delivers_once_and_rollback_never() {
    let (b, _) = manual();
    let c = consumer(&b, "g", "orders");
    let tp = b
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Commit))
        .unwrap();
    let r = tp
        .send(Message::new("orders", "paid"), |half| {
            assert_eq!(half.topic, "orders");
            assert!(drain(&c).is_empty(), "a half message is invisible");
            TxState::Commit
        })
        .unwrap();
    assert_eq!(r.transaction_state, Some(TxState::Commit));
    tp.send(Message::new("orders", "refused"), |_| TxState::Rollback)
        .unwrap();
    let got = drain(&c);
    assert_eq!(bodies(&got), vec!["paid"]);
    assert_eq!(got[0].msg_id, r.msg_id);
    assert_eq!(got[0].prepared_transaction_offset, r.commitlog_offset);
    assert_eq!(b.stats().unwrap().pending_transactions, 0);
}

/// `get` of a transactional message's id: nothing while it is pending or once it is
/// rolled back; once committed, the message as consumers get it (its topic's queue
/// offset, without the half message's properties), also after a restart.
#[test]
fn get_sees_a_transactional_message_only_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    let (committed, rolled_back, pending) = {
        let b = file(dir.path(), &clock);
        b.create_topic("orders", 1).unwrap();
        let tp = b
            .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Unknown))
            .unwrap();
        let rolled_back = tp
            .send(Message::new("orders", "refused"), |_| TxState::Rollback)
            .unwrap();
        let pending = tp
            .send(Message::new("orders", "open"), |_| TxState::Unknown)
            .unwrap();
        assert!(
            b.get(&pending.msg_id).unwrap().is_none(),
            "pending is invisible"
        );
        let committed = tp
            .send(Message::new("orders", "paid"), |_| TxState::Commit)
            .unwrap();
        let got = drain(&consumer(&b, "g", "orders"));
        assert_eq!(bodies(&got), ["paid"]);
        let m = b.get(&committed.msg_id).unwrap().expect("committed");
        assert_eq!(
            (m.topic.as_str(), m.queue_offset),
            ("orders", got[0].queue_offset)
        );
        assert_eq!(m.properties, got[0].properties);
        assert!(!m.properties.contains_key("TRAN_MSG"));
        let lower = committed.msg_id.to_ascii_lowercase();
        assert_eq!(
            b.get(&lower).unwrap().map(|m| m.body),
            Some(got[0].body.clone())
        );
        assert!(b.get(&rolled_back.msg_id).unwrap().is_none(), "rolled back");
        b.close().unwrap();
        (committed, rolled_back, pending)
    };
    let b = file(dir.path(), &clock);
    assert_eq!(
        b.get(&committed.msg_id)
            .unwrap()
            .and_then(|m| m.body_str().map(str::to_string)),
        Some("paid".to_string())
    );
    assert!(b.get(&rolled_back.msg_id).unwrap().is_none());
    assert!(b.get(&pending.msg_id).unwrap().is_none());
}

#[test]
fn unknown_is_checked_after_the_timeout_and_resolved_once() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let checks = Arc::new(AtomicU32::new(0));
    let n = checks.clone();
    let tp = b
        .transaction_producer(
            "pay",
            Arc::new(move |m: &pocketmq::MessageExt| {
                assert_eq!(m.body_str(), Some("maybe"));
                n.fetch_add(1, Ordering::SeqCst);
                TxState::Commit
            }),
        )
        .unwrap();
    tp.send(Message::new("orders", "maybe"), |_| TxState::Unknown)
        .unwrap();
    clock.advance_ms(5_999);
    b.tick().unwrap();
    assert_eq!(checks.load(Ordering::SeqCst), 0);
    assert!(drain(&c).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    assert_eq!(bodies(&drain(&c)), vec!["maybe"]);
    clock.advance_ms(600_000);
    b.tick().unwrap();
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    assert!(drain(&c).is_empty());
}

/// What a listener was shown: each check's body and `TRANSACTION_CHECK_TIMES`.
type Checked = std::sync::Mutex<Vec<(String, Option<String>)>>;

#[test]
fn a_check_shows_its_count_and_a_producer_may_put_the_first_one_off() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let seen: Arc<Checked> = Arc::default();
    let log = seen.clone();
    let tp = b
        .transaction_producer(
            "pay",
            Arc::new(move |m: &pocketmq::MessageExt| {
                let count = m.properties.get("TRANSACTION_CHECK_TIMES").cloned();
                let commit = count.as_deref() == Some("2");
                log.lock()
                    .unwrap()
                    .push((m.body_str().unwrap().to_string(), count));
                if commit {
                    TxState::Commit
                } else {
                    TxState::Unknown
                }
            }),
        )
        .unwrap();
    // RocketMQ's user property: whole seconds before the first check-back.
    let later = Message::builder("orders", "later")
        .property("CHECK_IMMUNITY_TIME_IN_SECONDS", "30")
        .build();
    tp.send(later, |_| TxState::Unknown).unwrap();
    tp.send(Message::new("orders", "soon"), |_| TxState::Unknown)
        .unwrap();
    let checked = |seen: &Arc<Checked>| std::mem::take(&mut *seen.lock().unwrap());
    clock.advance_ms(6_000);
    b.tick().unwrap();
    assert_eq!(
        checked(&seen),
        vec![("soon".to_string(), Some("1".to_string()))]
    );
    clock.advance_ms(23_999);
    b.tick().unwrap();
    assert!(checked(&seen).is_empty());
    clock.advance_ms(1);
    b.tick().unwrap();
    assert_eq!(
        checked(&seen),
        vec![("later".to_string(), Some("1".to_string()))]
    );
    clock.advance_ms(60_000);
    b.tick().unwrap();
    let mut second = checked(&seen);
    second.sort();
    assert_eq!(
        second,
        vec![
            ("later".to_string(), Some("2".to_string())),
            ("soon".to_string(), Some("2".to_string())),
        ]
    );
    // Committed at their second check: the count was the check's, never part of
    // the message; the producer's property stays, as RocketMQ keeps it.
    let mut delivered = drain(&c);
    delivered.sort_by(|a, b| a.body.cmp(&b.body));
    assert_eq!(bodies(&delivered), vec!["later", "soon"]);
    assert!(delivered
        .iter()
        .all(|m| !m.properties.contains_key("TRANSACTION_CHECK_TIMES")));
    assert_eq!(
        delivered[0]
            .properties
            .get("CHECK_IMMUNITY_TIME_IN_SECONDS")
            .map(String::as_str),
        Some("30")
    );
}

#[test]
fn a_first_check_delay_that_is_not_whole_seconds_up_to_a_day_is_refused() {
    let (b, _clock) = manual();
    let tp = b
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Commit))
        .unwrap();
    for bad in [
        "-1",
        "1.5",
        "soon",
        "86401",
        " 5",
        "+5",
        "99999999999999999999",
    ] {
        let m = Message::builder("orders", "x")
            .property("CHECK_IMMUNITY_TIME_IN_SECONDS", bad)
            .build();
        let err = tp.send(m, |_| TxState::Commit).unwrap_err();
        assert!(
            matches!(err, pocketmq::Error::InvalidArgument(_)),
            "{bad:?}: {err}"
        );
        assert!(err.to_string().contains("whole seconds"), "{err}");
    }
    assert_eq!(b.stats().unwrap().pending_transactions, 0);
    for good in ["0", "86400"] {
        let m = Message::builder("orders", "x")
            .property("CHECK_IMMUNITY_TIME_IN_SECONDS", good)
            .build();
        tp.send(m, |_| TxState::Commit).unwrap();
    }
    // Reserved as before: the count belongs to the engine.
    let m = Message::builder("orders", "x")
        .property("TRANSACTION_CHECK_TIMES", "3")
        .build();
    assert!(tp.send(m, |_| TxState::Commit).is_err());
}

#[test]
fn always_unknown_is_checked_fifteen_times_then_discarded() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let checks = Arc::new(AtomicU32::new(0));
    let n = checks.clone();
    let tp = b
        .transaction_producer(
            "pay",
            Arc::new(move |_: &pocketmq::MessageExt| {
                n.fetch_add(1, Ordering::SeqCst);
                TxState::Unknown
            }),
        )
        .unwrap();
    let r = tp
        .send(Message::new("orders", "limbo"), |_| TxState::Unknown)
        .unwrap();
    for _ in 0..40 {
        clock.advance_ms(60_000);
        b.tick().unwrap();
    }
    assert_eq!(checks.load(Ordering::SeqCst), 15);
    assert!(drain(&c).is_empty());
    let discarded = drain(&consumer(&b, "ops", "RMQ_SYS_TRANS_CHECK_MAX_TOPIC"));
    assert_eq!(bodies(&discarded), vec!["limbo"]);
    assert_eq!(discarded[0].msg_id, r.msg_id);
    assert_eq!(b.stats().unwrap().pending_transactions, 0);
}

#[test]
fn a_crash_between_half_and_commit_is_resolved_by_check_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    {
        let b = file(dir.path(), &clock);
        let tp = b
            .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Unknown))
            .unwrap();
        tp.send(Message::new("orders", "pending"), |_| TxState::Unknown)
            .unwrap();
        // Leave without closing: the next open sees an unclean exit.
        std::mem::forget(b);
        std::mem::forget(tp);
    }
    // The forgotten broker still holds the lock in this process; a fresh copy of the
    // directory stands in for the restarted process.
    let copy = tempfile::tempdir().unwrap();
    copy_store(dir.path(), copy.path());
    let b = file(copy.path(), &clock);
    let c = consumer(&b, "g", "orders");
    let _tp = b
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Commit))
        .unwrap();
    clock.advance_ms(6_000);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["pending"]);
}

#[test]
fn a_half_message_is_resolved_later_by_id_and_the_first_resolution_wins() {
    let (b, _) = manual();
    let c = consumer(&b, "g", "orders");
    let tp = b
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Unknown))
        .unwrap();
    let (r1, id1) = tp.send_half(Message::new("orders", "one")).unwrap();
    let (_, id2) = tp.send_half(Message::new("orders", "two")).unwrap();
    assert_eq!(r1.transaction_state, Some(TxState::Unknown));
    assert_ne!(id1, id2);
    assert!(drain(&c).is_empty(), "half messages are invisible");
    assert_eq!(b.stats().unwrap().pending_transactions, 2);
    // The id survives a round trip through text, as a client holds it.
    let id1: pocketmq::TxId = id1.to_string().parse().unwrap();
    assert!(!b.end_transaction(&id1, TxState::Unknown).unwrap());
    assert!(b.end_transaction(&id1, TxState::Commit).unwrap());
    assert!(!b.end_transaction(&id1, TxState::Rollback).unwrap());
    assert!(!b.end_transaction(&id1, TxState::Commit).unwrap());
    assert!(b.end_transaction(&id2, TxState::Rollback).unwrap());
    assert!(!b.end_transaction(&id2, TxState::Commit).unwrap());
    let got = drain(&c);
    assert_eq!(bodies(&got), vec!["one"]);
    assert_eq!(got[0].msg_id, r1.msg_id);
    assert_eq!(b.stats().unwrap().pending_transactions, 0);
}

/// `begin` then `finish` (a local transaction run elsewhere) is `send`: invisible
/// until finished, the outcome recorded, a check-back resolving one never finished,
/// the first resolution winning over a late `finish`, and a repeated dedup id known
/// at `begin`.
#[test]
fn begin_then_finish_is_a_send_in_two_steps() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let tp = b
        .transaction_producer(
            "pay",
            Arc::new(|_: &pocketmq::MessageExt| TxState::Rollback),
        )
        .unwrap();
    let paid = tp.begin(Message::new("orders", "paid")).unwrap();
    assert_eq!(paid.half().unwrap().body_str(), Some("paid"));
    assert_eq!(paid.result().transaction_state, Some(TxState::Unknown));
    let refused = tp.begin(Message::new("orders", "refused")).unwrap();
    let open = tp.begin(Message::new("orders", "open")).unwrap();
    let late = tp.begin(Message::new("orders", "late")).unwrap();
    assert!(drain(&c).is_empty(), "half messages are invisible");
    let r = tp.finish(paid, TxState::Commit).unwrap();
    assert_eq!(r.transaction_state, Some(TxState::Commit));
    assert_eq!(bodies(&drain(&c)), vec!["paid"]);
    let msg_id = r.msg_id.clone();
    let r = tp.finish(refused, TxState::Rollback).unwrap();
    assert_eq!(r.transaction_state, Some(TxState::Rollback));
    let r = tp.finish(open, TxState::Unknown).unwrap();
    assert_eq!(r.transaction_state, Some(TxState::Unknown));
    // Past the transaction timeout the check-back rolls back both open ones; the late
    // finish then finds its half message resolved.
    clock.advance_ms(6_000);
    b.tick().unwrap();
    assert_eq!(b.stats().unwrap().pending_transactions, 0);
    tp.finish(late, TxState::Commit).unwrap();
    assert!(drain(&c).is_empty());
    assert!(b.get(&msg_id).unwrap().is_some());

    // A dedup id (inside the default window of 120 s).
    let first = tp
        .begin(Message::builder("orders", "x").dedup_id("pay-1").build())
        .unwrap();
    let again = tp
        .begin(Message::builder("orders", "x").dedup_id("pay-1").build())
        .unwrap();
    assert!(again.half().is_none() && again.result().duplicate);
    assert_eq!(again.result().transaction_state, Some(TxState::Unknown));
    let first = tp.finish(first, TxState::Commit).unwrap();
    let again = tp
        .begin(Message::builder("orders", "x").dedup_id("pay-1").build())
        .unwrap();
    assert!(again.half().is_none());
    assert_eq!(again.result().msg_id, first.msg_id);
    let r = tp.finish(again, TxState::Rollback).unwrap();
    assert_eq!(
        r.transaction_state,
        Some(TxState::Commit),
        "finish of a repeat records nothing"
    );
    assert_eq!(b.stats().unwrap().pending_transactions, 0);

    // Finished by another broker's producer: refused, and the half message stays open.
    let (other, _) = manual();
    let other_tp = other
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Unknown))
        .unwrap();
    let open = tp.begin(Message::new("orders", "open")).unwrap();
    let err = other_tp.finish(open, TxState::Commit).unwrap_err();
    assert_eq!(err.kind(), pocketmq::ErrorKind::InvalidArgument);
    assert_eq!(b.stats().unwrap().pending_transactions, 1);
    assert_eq!(other.stats().unwrap().pending_transactions, 0);
}

#[test]
fn ids_of_no_half_message_are_refused() {
    let (b, _) = manual();
    let tp = b
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Unknown))
        .unwrap();
    let (_, id) = tp.send_half(Message::new("orders", "x")).unwrap();
    let s = id.to_string();
    // Same half offset, another CommitLog offset; an offset never written.
    let forged: pocketmq::TxId = format!("{}{:016x}", &s[..16], 12345).parse().unwrap();
    let unwritten: pocketmq::TxId = format!("{:016x}{}", 99, &s[16..]).parse().unwrap();
    for bad in [forged, unwritten] {
        let e = b.end_transaction(&bad, TxState::Commit).unwrap_err();
        assert_eq!(e.kind(), pocketmq::ErrorKind::InvalidArgument);
    }
    assert!("nonsense".parse::<pocketmq::TxId>().is_err());
    assert_eq!(b.stats().unwrap().pending_transactions, 1);
}

#[test]
fn a_listener_may_answer_later_through_the_id_it_is_shown() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = asked.clone();
    let tp = b
        .transaction_producer(
            "pay",
            Arc::new(move |m: &pocketmq::MessageExt| {
                seen.lock()
                    .unwrap()
                    .push(pocketmq::TxId::of(m).expect("a half message"));
                TxState::Unknown
            }),
        )
        .unwrap();
    let (_, id) = tp.send_half(Message::new("orders", "later")).unwrap();
    clock.advance_ms(6_000);
    b.tick().unwrap();
    assert_eq!(*asked.lock().unwrap(), vec![id]);
    assert!(drain(&c).is_empty());
    assert!(b.end_transaction(&id, TxState::Commit).unwrap());
    assert_eq!(bodies(&drain(&c)), vec!["later"]);
    // A delivered message is not a half message.
    assert!(pocketmq::TxId::of(&drain(&consumer(&b, "h", "orders"))[0]).is_none());
    clock.advance_ms(600_000);
    b.tick().unwrap();
    assert_eq!(
        asked.lock().unwrap().len(),
        1,
        "no check after the resolution"
    );
}

#[test]
fn a_half_message_is_resolved_by_id_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(T0);
    let id = {
        let b = file(dir.path(), &clock);
        let tp = b
            .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Unknown))
            .unwrap();
        let (_, id) = tp.send_half(Message::new("orders", "across")).unwrap();
        b.close().unwrap();
        id.to_string()
    };
    let b = file(dir.path(), &clock);
    let id: pocketmq::TxId = id.parse().unwrap();
    assert!(b.end_transaction(&id, TxState::Commit).unwrap());
    assert!(!b.end_transaction(&id, TxState::Commit).unwrap());
    assert_eq!(bodies(&drain(&consumer(&b, "g", "orders"))), vec!["across"]);
}

/// A check listener that panics leaves its half message pending, as UNKNOWN does:
/// `tick` goes on, and the next check (a minute later) resolves it.
#[test]
fn a_panicking_check_is_taken_for_unknown_and_asked_again() {
    let (b, clock) = manual();
    let c = consumer(&b, "g", "orders");
    let checks = Arc::new(AtomicU32::new(0));
    let n = checks.clone();
    let tp = b
        .transaction_producer(
            "pay",
            Arc::new(move |_: &pocketmq::MessageExt| {
                if n.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("the listener's database is down");
                }
                TxState::Commit
            }),
        )
        .unwrap();
    tp.send(Message::new("orders", "maybe"), |_| TxState::Unknown)
        .unwrap();
    clock.advance_ms(6_000);
    b.tick().unwrap();
    assert_eq!(checks.load(Ordering::SeqCst), 1);
    assert!(drain(&c).is_empty());
    assert_eq!(b.stats().unwrap().pending_transactions, 1);
    clock.advance_ms(60_000);
    b.tick().unwrap();
    assert_eq!(checks.load(Ordering::SeqCst), 2);
    assert_eq!(bodies(&drain(&c)), vec!["maybe"]);
}

/// A broker closed while `execute` runs records nothing: the send reports UNKNOWN
/// (not the outcome `execute` gave), and after a reopen the check-back decides.
#[test]
fn a_broker_closed_during_execute_leaves_the_outcome_to_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let clock = pocketmq::ManualClock::new(1_764_000_000_000);
    let b = file(dir.path(), &clock);
    let tp = b
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Commit))
        .unwrap();
    let r = tp
        .send(Message::new("orders", "paid"), |_| {
            b.close().unwrap();
            TxState::Commit
        })
        .unwrap();
    assert_eq!(r.transaction_state, Some(TxState::Unknown));
    drop(tp);
    drop(b);
    let b = file(dir.path(), &clock);
    let c = consumer(&b, "g", "orders");
    assert!(drain(&c).is_empty());
    assert_eq!(b.stats().unwrap().pending_transactions, 1);
    let tp = b
        .transaction_producer("pay", Arc::new(|_: &pocketmq::MessageExt| TxState::Commit))
        .unwrap();
    clock.advance_ms(6_000);
    b.tick().unwrap();
    assert_eq!(bodies(&drain(&c)), vec!["paid"]);
    drop(tp);
}
