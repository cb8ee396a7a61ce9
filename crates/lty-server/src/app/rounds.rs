//! Periodic work that one instance does per round: each round first takes
//! a cache lock (`SET NX` with a TTL slightly shorter than a round, so the
//! next round can run), and instances that do not get it skip the round.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::state::AppState;

/// Runs `round` every `every`, the first time at `first`, on whichever
/// instance takes `lock_key` for that round, until `state.shutdown`.
pub fn spawn_exclusive<F, Fut>(
    state: AppState,
    name: &'static str,
    lock_key: &'static str,
    first: Instant,
    every: Duration,
    mut round: F,
) -> JoinHandle<()>
where
    F: FnMut(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(first, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let hold = every
            .saturating_sub(Duration::from_millis(200))
            .max(Duration::from_millis(100));
        loop {
            tokio::select! {
                () = state.shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match state.cache.set_nx(lock_key, "1", hold).await {
                Ok(true) => round(state.clone()).await,
                Ok(false) => {}
                Err(err) => tracing::warn!(%err, task = name, "cannot take the round's lock"),
            }
        }
    })
}
