//! Group messaging on each pub/sub backend: fan-out within a group, group
//! isolation, membership, the overflow rule, delivery across instances, and
//! the replay log (ids, replay after a cursor, gaps, expiry).
//! Every receive is bounded by a timeout, so a lost message fails the test.

use std::time::Duration;

use bytes::Bytes;
use lty_core::ports::{LogId, PubSub, Replay};
use lty_store::pubsub::LogSettings;

use crate::helpers::{each_pubsub, each_pubsub_with_log, recv, with_two_redis_instances};

fn msg(text: &str) -> Bytes {
    Bytes::from(format!("{{\"type\":\"push\",\"text\":\"{text}\"}}"))
}

#[tokio::test]
async fn every_member_of_a_group_receives_a_published_message() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let mut first = ps.subscribe("device_1", 8);
        let mut second = ps.subscribe("device_1", 8);
        assert_eq!(ps.local_members("device_1"), 2);

        let delivery = ps.publish("device_1", msg("hello")).await.unwrap();

        assert_eq!(delivery.local, 2);
        let expected_instances = if t.is_redis() { Some(1) } else { None };
        assert_eq!(delivery.instances, expected_instances);
        assert_eq!(recv(&mut first).await, Some(msg("hello")));
        assert_eq!(recv(&mut second).await, Some(msg("hello")));
        ps.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_member_of_another_group_does_not_receive_it() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let mut member = ps.subscribe("device_1", 8);
        let mut outsider = ps.subscribe("device_2", 8);

        ps.publish("device_1", msg("for 1")).await.unwrap();
        ps.publish("device_2", msg("for 2")).await.unwrap();

        assert_eq!(recv(&mut member).await, Some(msg("for 1")));
        // Published after "for 1": had "for 1" reached the outsider, it
        // would come first.
        assert_eq!(recv(&mut outsider).await, Some(msg("for 2")));
        let nobody = ps.publish("device_3", msg("for 3")).await.unwrap();
        assert_eq!(nobody.local, 0);
    })
    .await;
}

#[tokio::test]
async fn a_member_receives_messages_in_publish_order() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let mut member = ps.subscribe("device_1", 64);
        for i in 0..20 {
            ps.publish("device_1", msg(&i.to_string())).await.unwrap();
        }
        for i in 0..20 {
            assert_eq!(recv(&mut member).await, Some(msg(&i.to_string())));
        }
    })
    .await;
}

#[tokio::test]
async fn dropping_a_subscription_removes_the_member() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let first = ps.subscribe("device_1", 8);
        let mut second = ps.subscribe("device_1", 8);
        assert_eq!(ps.local_members("device_1"), 2);

        drop(first);
        assert_eq!(ps.local_members("device_1"), 1);
        let delivery = ps.publish("device_1", msg("after")).await.unwrap();
        assert_eq!(delivery.local, 1);
        assert_eq!(recv(&mut second).await, Some(msg("after")));

        drop(second);
        assert_eq!(ps.local_members("device_1"), 0);
    })
    .await;
}

#[tokio::test]
async fn a_member_that_reads_keeps_its_place_in_a_queue_of_one() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let mut member = ps.subscribe("device_1", 1);
        let mut witness = ps.subscribe("device_1", 16);

        // Each message fills the queue of one; reading it makes room for
        // the next, however many times.
        for i in 0..3 {
            ps.publish("device_1", msg(&i.to_string())).await.unwrap();
            assert_eq!(recv(&mut witness).await, Some(msg(&i.to_string())));
            assert!(!member.overflowed());
            assert_eq!(recv(&mut member).await, Some(msg(&i.to_string())));
        }
        assert_eq!(ps.local_members("device_1"), 2);

        // Two without a read: the second overflows it.
        for text in ["a", "b"] {
            ps.publish("device_1", msg(text)).await.unwrap();
            assert_eq!(recv(&mut witness).await, Some(msg(text)));
        }
        assert!(member.overflowed());
        assert_eq!(ps.local_members("device_1"), 1);
        assert_eq!(recv(&mut member).await, Some(msg("a")));
        assert_eq!(recv(&mut member).await, None);
    })
    .await;
}

#[tokio::test]
async fn a_member_that_never_reads_is_removed_once_its_queue_is_full() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        // The slow member joins first, so each delivery reaches it before
        // the witness: once the witness has a message, the slow member has
        // been offered it too.
        let mut slow = ps.subscribe("device_1", 2);
        let mut witness = ps.subscribe("device_1", 16);

        for i in 0..2 {
            ps.publish("device_1", msg(&i.to_string())).await.unwrap();
            assert_eq!(recv(&mut witness).await, Some(msg(&i.to_string())));
        }
        assert!(!slow.overflowed(), "a full queue is not yet an overflow");
        assert_eq!(ps.local_members("device_1"), 2);

        ps.publish("device_1", msg("2")).await.unwrap();
        assert_eq!(recv(&mut witness).await, Some(msg("2")));

        assert!(slow.overflowed());
        assert_eq!(ps.local_members("device_1"), 1);
        assert_eq!(recv(&mut slow).await, Some(msg("0")));
        assert_eq!(recv(&mut slow).await, Some(msg("1")));
        assert_eq!(
            recv(&mut slow).await,
            None,
            "the queue ends after the overflow"
        );

        // The group goes on for the others.
        ps.publish("device_1", msg("3")).await.unwrap();
        assert_eq!(recv(&mut witness).await, Some(msg("3")));
    })
    .await;
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (PostgreSQL + Redis leg)"]
async fn a_message_published_on_one_instance_reaches_members_on_every_instance() {
    with_two_redis_instances(async |r| {
        let mut on_b = r.b.subscribe("device_42", 8);
        assert_eq!(r.a.local_members("device_42"), 0);

        let delivery = r.a.publish("device_42", msg("from A")).await.unwrap();
        assert_eq!(delivery.local, 0, "no member on A itself");
        assert_eq!(delivery.instances, Some(2), "both instances subscribe");
        assert_eq!(recv(&mut on_b).await, Some(msg("from A")));

        // Members on both instances, joined before the publish: a member
        // joining later may still be handed a message already in flight.
        let mut both_on_a = r.a.subscribe("device_43", 8);
        let mut both_on_b = r.b.subscribe("device_43", 8);
        let delivery = r.b.publish("device_43", msg("from B")).await.unwrap();
        assert_eq!(delivery.local, 1);
        assert_eq!(recv(&mut both_on_a).await, Some(msg("from B")));
        assert_eq!(recv(&mut both_on_b).await, Some(msg("from B")));
    })
    .await;
}

#[tokio::test]
async fn members_get_each_message_with_its_log_id_and_ids_only_grow() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let mut member = ps.subscribe("device_1", 64);
        let mut ids = Vec::new();
        for i in 0..10 {
            let delivery = ps.publish("device_1", msg(&i.to_string())).await.unwrap();
            ids.push(delivery.id.expect("a logged publish has an id"));
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        for (i, id) in ids.iter().enumerate() {
            let got = tokio::time::timeout(Duration::from_secs(5), member.recv_message())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got.id, Some(*id));
            assert_eq!(got.payload, msg(&i.to_string()));
        }
        // Control messages have no id and are not logged.
        let control = ps
            .publish_control("device_1", Bytes::from_static(b"\xffkick-all"))
            .await
            .unwrap();
        assert_eq!(control.id, None);
        let got = member.recv_message().await.unwrap();
        assert_eq!(got.id, None);
        assert_eq!(
            ps.replay("device_1", ids[9]).await.unwrap(),
            Replay::After(vec![])
        );
    })
    .await;
}

#[tokio::test]
async fn replay_returns_what_was_published_after_a_cursor_in_order() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(
                ps.publish("device_1", msg(&i.to_string()))
                    .await
                    .unwrap()
                    .id
                    .unwrap(),
            );
        }
        ps.publish("device_2", msg("other family")).await.unwrap();
        let expected = (2..5).map(|i| (ids[i], msg(&i.to_string()))).collect();
        assert_eq!(
            ps.replay("device_1", ids[1]).await.unwrap(),
            Replay::After(expected)
        );
        assert_eq!(
            ps.replay("device_1", ids[4]).await.unwrap(),
            Replay::After(vec![])
        );
    })
    .await;
}

#[tokio::test]
async fn a_cursor_that_is_not_in_the_log_is_a_gap() {
    let log = LogSettings {
        max_len: 3,
        window: Duration::from_secs(60),
    };
    each_pubsub_with_log(log, async |t| {
        let ps = &t.pubsub;
        // Never logged: a family without messages, or a made-up cursor.
        let made_up = LogId { ms: 5, seq: 0 };
        assert_eq!(ps.replay("device_1", made_up).await.unwrap(), Replay::Gap);
        // Trimmed: Redis trims whole stream nodes (100 entries), so
        // publish well past them.
        let first = ps
            .publish("device_1", msg("first"))
            .await
            .unwrap()
            .id
            .unwrap();
        for i in 0..300 {
            ps.publish("device_1", msg(&i.to_string())).await.unwrap();
        }
        assert_eq!(ps.replay("device_1", first).await.unwrap(), Replay::Gap);
    })
    .await;
}

#[tokio::test]
async fn the_head_of_an_empty_log_is_a_cursor_that_resumes_without_a_gap() {
    each_pubsub(async |t| {
        let ps = &t.pubsub;
        let head = ps.head("device_1").await.unwrap();
        assert_eq!(ps.head("device_1").await.unwrap(), head, "no new marker");
        assert_eq!(
            ps.replay("device_1", head).await.unwrap(),
            Replay::After(vec![])
        );
        let id = ps
            .publish("device_1", msg("after head"))
            .await
            .unwrap()
            .id
            .unwrap();
        assert!(id > head);
        assert_eq!(
            ps.replay("device_1", head).await.unwrap(),
            Replay::After(vec![(id, msg("after head"))])
        );
        assert_eq!(ps.head("device_1").await.unwrap(), id);
    })
    .await;
}

#[tokio::test]
async fn a_log_expires_a_window_after_its_last_message() {
    let log = LogSettings {
        max_len: 16,
        window: Duration::from_millis(300),
    };
    each_pubsub_with_log(log, async |t| {
        let ps = &t.pubsub;
        let id = ps
            .publish("device_1", msg("soon gone"))
            .await
            .unwrap()
            .id
            .unwrap();
        assert_eq!(
            ps.replay("device_1", id).await.unwrap(),
            Replay::After(vec![])
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ps.replay("device_1", id).await.unwrap() != Replay::Gap {
            assert!(
                std::time::Instant::now() < deadline,
                "the log never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
#[ignore = "needs TEST_REDIS_URL (PostgreSQL + Redis leg)"]
async fn an_instance_replays_what_another_instance_published() {
    with_two_redis_instances(async |r| {
        let head = r.b.head("device_44").await.unwrap();
        let id =
            r.a.publish("device_44", msg("from A"))
                .await
                .unwrap()
                .id
                .unwrap();
        assert_eq!(
            r.b.replay("device_44", head).await.unwrap(),
            Replay::After(vec![(id, msg("from A"))])
        );
    })
    .await;
}
