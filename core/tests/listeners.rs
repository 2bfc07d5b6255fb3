//! Listeners (push consumers): a handler's outcome is acked or nacked for it, stop
//! drains the running handlers, orderly consumers keep each queue's order across
//! threads, and simple consumers listen the same way.
#![allow(clippy::disallowed_methods)] // tests may start threads and read real time

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{manual, send};
use pocketmq::{
    listen, ConsumerConfig, ListenOptions, Message, MessageExt, Outcome, SimpleConsumerConfig,
};

fn wait_for(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn outcomes_are_acked_or_nacked() {
    let (b, _) = manual();
    for body in ["ok", "fail", "later"] {
        send(&b, "t", body);
    }
    let c = Arc::new(b.consumer(ConsumerConfig::new("g", "t")).unwrap());
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let mut runner = listen(
        c.clone(),
        Arc::new(move |m: &MessageExt| {
            h.fetch_add(1, Ordering::SeqCst);
            match m.body_str() {
                Some("ok") => Outcome::Ack,
                Some("fail") => Outcome::Retry,
                _ => Outcome::RetryAfter(Duration::from_secs(5)),
            }
        }),
        ListenOptions::default(),
    )
    .unwrap();
    wait_for("three handled messages", || {
        handled.load(Ordering::SeqCst) == 3
    });
    runner.stop();
    // The retried two count until a redelivery is acked: one behind level 3, one
    // behind a timer.
    assert_eq!(
        b.lag("g", "t").unwrap(),
        2,
        "the retried ones are not acked yet"
    );
    assert_eq!(b.stats().unwrap().pending_delayed, 2, "two retries wait");
}

#[test]
fn stop_waits_for_running_handlers_and_applies_their_outcome() {
    let (b, _) = manual();
    send(&b, "t", "slow");
    let c = Arc::new(b.consumer(ConsumerConfig::new("g", "t")).unwrap());
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let mut runner = listen(
        c.clone(),
        Arc::new(move |_: &MessageExt| {
            s.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(300));
            Outcome::Ack
        }),
        ListenOptions {
            threads: 2,
            batch: 1,
        },
    )
    .unwrap();
    wait_for("the handler to start", || {
        started.load(Ordering::SeqCst) == 1
    });
    runner.stop();
    assert!(runner.is_finished());
    assert_eq!(
        b.lag("g", "t").unwrap(),
        0,
        "its ack was applied before stop returned"
    );
    nothing_taken_after_stop(&b, &started);
}

/// A message sent after a listener stopped is not handled (`count` stays put).
fn nothing_taken_after_stop(b: &pocketmq::Broker, count: &AtomicUsize) {
    let was = count.load(Ordering::SeqCst);
    send(b, "t", "after stop");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        count.load(Ordering::SeqCst),
        was,
        "nothing taken after stop"
    );
}

#[test]
fn an_orderly_listener_keeps_each_queue_in_order_across_eight_threads() {
    let (b, _) = manual();
    b.create_topic("life", 4).unwrap();
    let p = b.producer("p").unwrap();
    for i in 0..60u32 {
        for key in ["a", "b", "c", "d", "e"] {
            p.send(
                Message::builder("life", format!("{key}:{i}"))
                    .sharding_key(key)
                    .build(),
            )
            .unwrap();
        }
    }
    let c = Arc::new(
        b.consumer(ConsumerConfig {
            orderly: true,
            ..ConsumerConfig::new("g", "life")
        })
        .unwrap(),
    );
    let seen: Arc<Mutex<HashMap<String, Vec<u32>>>> = Arc::default();
    let s = seen.clone();
    let mut runner = listen(
        c,
        Arc::new(move |m: &MessageExt| {
            let (key, i) = m.body_str().unwrap().split_once(':').unwrap();
            let i: u32 = i.parse().unwrap();
            // Vary the handling time so that threads overtake one another.
            std::thread::sleep(Duration::from_micros(((i * 37) % 7) as u64 * 100));
            s.lock()
                .unwrap()
                .entry(key.to_string())
                .or_default()
                .push(i);
            Outcome::Ack
        }),
        ListenOptions {
            threads: 8,
            batch: 4,
        },
    )
    .unwrap();
    wait_for("all 300 messages", || {
        seen.lock().unwrap().values().map(Vec::len).sum::<usize>() == 300
    });
    runner.stop();
    for (key, order) in seen.lock().unwrap().iter() {
        assert_eq!(
            order,
            &(0..60).collect::<Vec<u32>>(),
            "key {key} out of order"
        );
    }
}

#[test]
fn a_simple_consumer_listens_too() {
    let (b, _) = manual();
    for i in 0..20 {
        send(&b, "t", &format!("m{i}"));
    }
    let sc = Arc::new(
        b.simple_consumer(SimpleConsumerConfig::new("g", "t"))
            .unwrap(),
    );
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let mut runner = listen(
        sc,
        Arc::new(move |_: &MessageExt| {
            h.fetch_add(1, Ordering::SeqCst);
            Outcome::Ack
        }),
        ListenOptions::default(),
    )
    .unwrap();
    wait_for("20 messages", || handled.load(Ordering::SeqCst) == 20);
    runner.stop();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// A handler may stop its own listener: no panic, its message is acked, and the
/// other threads end.
#[test]
fn stop_from_inside_a_handler() {
    let (b, _) = manual();
    let c = Arc::new(b.consumer(ConsumerConfig::new("g", "t")).unwrap());
    let runner: Arc<Mutex<Option<pocketmq::Runner>>> = Arc::new(Mutex::new(None));
    let r = runner.clone();
    let handled = Arc::new(AtomicUsize::new(0));
    let h = handled.clone();
    let started = listen(
        c.clone(),
        Arc::new(move |_: &MessageExt| {
            let taken = r.lock().unwrap().take();
            if let Some(mut runner) = taken {
                runner.stop();
            }
            h.fetch_add(1, Ordering::SeqCst);
            Outcome::Ack
        }),
        ListenOptions::default(),
    )
    .unwrap();
    *runner.lock().unwrap() = Some(started);
    // Sent once the handler can find its runner.
    send(&b, "t", "last");
    wait_for("the handler", || handled.load(Ordering::SeqCst) == 1);
    wait_for("the ack", || b.lag("g", "t").unwrap() == 0);
    nothing_taken_after_stop(&b, &handled);
}

/// A panicking handler is a failed one: its message is retried and the listener
/// goes on with the others.
#[test]
fn a_panicking_handler_retries_its_message_and_the_listener_goes_on() {
    let (b, clock) = manual();
    for body in ["boom", "a", "b", "c"] {
        send(&b, "t", body);
    }
    let c = Arc::new(b.consumer(ConsumerConfig::new("g", "t")).unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut runner = listen(
        c.clone(),
        Arc::new(move |m: &MessageExt| {
            let body = m.body_str().unwrap_or_default().to_string();
            s.lock().unwrap().push((body.clone(), m.reconsume_times));
            if body == "boom" && m.reconsume_times == 0 {
                panic!("handler bug");
            }
            Outcome::Ack
        }),
        ListenOptions {
            threads: 1,
            batch: 4,
        },
    )
    .unwrap();
    wait_for("the three others", || seen.lock().unwrap().len() >= 4);
    // The clock moves once the failure is settled (a retry 10 s out).
    wait_for("boom's retry", || b.stats().unwrap().pending_delayed == 1);
    clock.advance_ms(10_000);
    wait_for("boom again", || seen.lock().unwrap().len() >= 5);
    runner.stop();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&("boom".to_string(), 1)), "{seen:?}");
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// Slow handlers run side by side: a thread takes one message at a time while
/// handling is slow, so the other threads get the rest.
#[test]
fn slow_handlers_spread_over_the_threads() {
    let (b, _) = manual();
    for i in 0..8 {
        send(&b, "t", &format!("m{i}"));
    }
    let c = Arc::new(b.consumer(ConsumerConfig::new("g", "t")).unwrap());
    let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (r, m) = (running.clone(), most.clone());
    let done = Arc::new(AtomicUsize::new(0));
    let d = done.clone();
    let mut runner = listen(
        c.clone(),
        Arc::new(move |_: &MessageExt| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            r.fetch_sub(1, Ordering::SeqCst);
            d.fetch_add(1, Ordering::SeqCst);
            Outcome::Ack
        }),
        ListenOptions::default(),
    )
    .unwrap();
    wait_for("eight handled", || done.load(Ordering::SeqCst) == 8);
    runner.stop();
    assert!(
        most.load(Ordering::SeqCst) >= 2,
        "handlers ran one at a time"
    );
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// An outcome the consumer refuses (a retry delay out of range) is retried after
/// the ladder's step instead, and keeps none of the batch's others back.
#[test]
fn a_refused_retry_delay_retries_after_the_ladder_step() {
    let (b, clock) = manual();
    for body in ["far", "x", "y"] {
        send(&b, "t", body);
    }
    let c = Arc::new(b.consumer(ConsumerConfig::new("g", "t")).unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let mut runner = listen(
        c.clone(),
        Arc::new(move |m: &MessageExt| {
            let body = m.body_str().unwrap_or_default().to_string();
            s.lock().unwrap().push(body.clone());
            match (body.as_str(), m.reconsume_times) {
                ("far", 0) => Outcome::RetryAfter(Duration::from_secs(100 * 86_400)),
                ("x", 0) => Outcome::Retry,
                _ => Outcome::Ack,
            }
        }),
        ListenOptions {
            threads: 1,
            batch: 3,
        },
    )
    .unwrap();
    wait_for("three", || seen.lock().unwrap().len() >= 3);
    wait_for("both retries settled", || {
        b.stats().unwrap().pending_delayed == 2
    });
    clock.advance_ms(10_000);
    wait_for("both retries", || seen.lock().unwrap().len() >= 5);
    runner.stop();
    assert_eq!(b.lag("g", "t").unwrap(), 0);
}

/// Options out of range are refused with a typed error before any thread starts.
#[test]
fn thread_and_batch_counts_out_of_range_are_refused() {
    let (b, _) = manual();
    let c = Arc::new(b.consumer(ConsumerConfig::new("g", "t")).unwrap());
    for (threads, batch) in [(0, 1), (1025, 1), (1, 0), (1, 1025), (1, usize::MAX)] {
        let e = listen(
            c.clone(),
            Arc::new(|_: &MessageExt| Outcome::Ack),
            ListenOptions { threads, batch },
        )
        .err()
        .unwrap_or_else(|| panic!("threads {threads}, batch {batch} accepted"));
        assert_eq!(e.kind(), pocketmq::ErrorKind::InvalidArgument);
    }
    let mut runner = listen(
        c,
        Arc::new(|_: &MessageExt| Outcome::Ack),
        ListenOptions {
            threads: 1,
            batch: 1024,
        },
    )
    .unwrap();
    runner.stop();
}
