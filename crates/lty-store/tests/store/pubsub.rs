//! Group messaging on each pub/sub backend: fan-out within a group, group
//! isolation, membership, the overflow rule, and delivery across instances.
//! Every receive is bounded by a timeout, so a lost message fails the test.

use bytes::Bytes;
use lty_core::ports::PubSub;

use crate::helpers::{each_pubsub, recv, with_two_redis_instances};

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
