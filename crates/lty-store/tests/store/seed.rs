//! Benchmark seed data as the load harness's contract fixes it: `bench_{i}`
//! bound to `bench_mac(i)`, idempotent, growing only by what is missing.

use lty_core::MacAddress;
use lty_core::user::NewUser;
use lty_store::seed::{SeedReport, bench_mac, count_bench_users, seed_bench_users};

use crate::helpers::{TestDb, each_database};

/// Asserts that bench MAC `i` is bound, in its latest binding, to `bench_{i}`.
async fn assert_bound_to_its_bench_user(t: &TestDb, i: u32) {
    let binding =
        t.db.latest_binding(&bench_mac(i))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("bench MAC {i} is unbound"));
    let user = t.db.user(binding.user_id).await.unwrap().unwrap();
    assert_eq!(user.username, format!("bench_{i}"));
}

#[tokio::test]
async fn seeding_twice_leaves_exactly_the_requested_bench_users() {
    each_database(async |t| {
        let first = seed_bench_users(&t.db, 300).await.unwrap();
        assert_eq!(
            first,
            SeedReport {
                users_created: 300,
                bindings_created: 300
            }
        );
        assert_eq!(count_bench_users(&t.db).await.unwrap(), 300);

        let second = seed_bench_users(&t.db, 300).await.unwrap();
        assert_eq!(
            second,
            SeedReport::default(),
            "the second run creates nothing"
        );
        assert_eq!(count_bench_users(&t.db).await.unwrap(), 300);
    })
    .await;
}

#[tokio::test]
async fn each_bench_mac_is_bound_to_its_bench_user_and_the_unknown_mac_to_no_one() {
    each_database(async |t| {
        seed_bench_users(&t.db, 300).await.unwrap();
        for i in [0, 1, 2, 150, 258, 299] {
            assert_bound_to_its_bench_user(t, i).await;
        }
        let unknown = MacAddress::parse("02:ff:ff:ff:ff:ff").unwrap();
        assert_eq!(t.db.latest_binding(&unknown).await.unwrap(), None);
        assert_eq!(t.db.latest_binding(&bench_mac(300)).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn seeding_more_users_adds_only_the_missing_ones() {
    each_database(async |t| {
        seed_bench_users(&t.db, 300).await.unwrap();

        let grown = seed_bench_users(&t.db, 500).await.unwrap();

        assert_eq!(
            grown,
            SeedReport {
                users_created: 200,
                bindings_created: 200
            }
        );
        assert_eq!(count_bench_users(&t.db).await.unwrap(), 500);
        for i in [0, 299, 300, 499] {
            assert_bound_to_its_bench_user(t, i).await;
        }
        assert_eq!(t.db.latest_binding(&bench_mac(500)).await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn seeding_binds_every_user_across_insert_batches() {
    each_database(async |t| {
        // More than one batch of rows per INSERT.
        let report = seed_bench_users(&t.db, 4100).await.unwrap();
        assert_eq!(report.users_created, 4100);
        assert_eq!(report.bindings_created, 4100);
        assert_eq!(count_bench_users(&t.db).await.unwrap(), 4100);
        for i in [0, 1999, 2000, 3999, 4000, 4099] {
            assert_bound_to_its_bench_user(t, i).await;
        }
    })
    .await;
}

#[tokio::test]
async fn counting_bench_users_ignores_usernames_that_only_look_alike() {
    each_database(async |t| {
        // `_` is a LIKE wildcard, and SQLite's LIKE ignores ASCII case.
        for username in ["benchmark", "bench-7", "BENCH_7", "Bench_admin"] {
            t.db.create_user(NewUser {
                username: username.to_owned(),
                nickname: None,
                phone: None,
            })
            .await
            .unwrap();
        }
        assert_eq!(count_bench_users(&t.db).await.unwrap(), 0);

        seed_bench_users(&t.db, 5).await.unwrap();
        assert_eq!(count_bench_users(&t.db).await.unwrap(), 5);
    })
    .await;
}
