//! A byte budget for a writer's queue: a job reserves what it costs before it is queued and
//! gives it back once it is stored. A queue bounded in jobs alone holds as many bytes as its
//! senders like (65,536 jobs of 1 MiB each); one bounded in bytes holds at most its budget.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget; cheap to clone (clones share it).
#[derive(Clone, Debug)]
pub struct ByteBudget {
    semaphore: Arc<Semaphore>,
    bytes: usize,
}

/// Bytes held by one queued job; back in the budget when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl ByteBudget {
    pub fn new(bytes: usize) -> Self {
        let bytes = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        ByteBudget {
            semaphore: Arc::new(Semaphore::new(bytes)),
            bytes,
        }
    }

    /// What `cost` takes of the budget: at least one byte, at most all of it (a job larger
    /// than the whole budget waits until the queue is empty).
    fn permits(&self, cost: usize) -> u32 {
        cost.clamp(1, self.bytes) as u32
    }

    /// Waits until `cost` bytes fit.
    pub async fn reserve(&self, cost: usize) -> Reservation {
        let permit = self
            .semaphore
            .clone()
            .acquire_many_owned(self.permits(cost))
            .await
            .expect("the budget's semaphore is never closed");
        Reservation { _permit: permit }
    }

    /// `cost` bytes now, or `None` when they do not fit.
    pub fn try_reserve(&self, cost: usize) -> Option<Reservation> {
        let permit = self
            .semaphore
            .clone()
            .try_acquire_many_owned(self.permits(cost))
            .ok()?;
        Some(Reservation { _permit: permit })
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> usize {
        self.bytes - self.semaphore.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_are_bounded_and_returned() {
        let budget = ByteBudget::new(100);
        let a = budget.try_reserve(60).unwrap();
        assert!(budget.try_reserve(60).is_none(), "only 40 left");
        let b = budget.try_reserve(40).unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        // Larger than the whole budget: takes all of it, once the rest is back.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(1_000).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(b);
        let all = waiting.await.unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(all);
        assert_eq!(budget.in_use(), 0);
    }
}
