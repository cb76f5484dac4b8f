//! When the watcher checks and repairs: debounce of event bursts and back-off from a fight.
//!
//! Pure: the caller passes the time in. Events come in bursts (a `firewall-cmd --reload` is
//! hundreds of messages over a few hundred milliseconds, a restore of pfstate's own chains
//! dozens), so a check runs once the burst has been quiet for [`Policy::quiet`], and at the
//! latest [`Policy::max_delay`] after its first event, so a steady trickle cannot postpone the
//! repair forever.
//!
//! A check that had to rewrite counts as a repair. When another process keeps deleting
//! pfstate's rules ([`Policy::fight_repairs`] repairs within [`Policy::fight_window`]), two
//! managers are fighting; answering every deletion at once would only make both spin. The
//! watcher then waits before each further repair, doubling the wait up to [`Policy::max_backoff`],
//! and says so loudly. A check that finds everything in place ends the fight.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub quiet: Duration,
    pub max_delay: Duration,
    pub fight_window: Duration,
    pub fight_repairs: usize,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Policy {
    /// Quiet 150 ms and at most 500 ms: the repair lands well within a second of the event.
    fn default() -> Self {
        Policy {
            quiet: Duration::from_millis(150),
            max_delay: Duration::from_millis(500),
            fight_window: Duration::from_secs(60),
            fight_repairs: 5,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

/// What the caller should log after a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing to say (in sync, or an ordinary repair).
    Calm,
    /// Too many repairs: the next one waits `wait`.
    Fighting { repairs: usize, wait: Duration },
    /// A check found everything in place after a fight.
    Settled,
}

#[derive(Debug, Clone)]
pub struct Debouncer {
    policy: Policy,
    first: Option<Instant>,
    last: Option<Instant>,
    repairs: VecDeque<Instant>,
    /// Set while fighting: no check before this instant.
    hold_until: Option<Instant>,
    backoff: Duration,
}

impl Debouncer {
    pub fn new(policy: Policy) -> Debouncer {
        Debouncer {
            policy,
            first: None,
            last: None,
            repairs: VecDeque::new(),
            hold_until: None,
            backoff: Duration::ZERO,
        }
    }

    /// A relevant event arrived.
    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the next check is due; `None` means nothing is pending (block without timeout).
    pub fn due(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        let debounced = (last + self.policy.quiet).min(first + self.policy.max_delay);
        Some(match self.hold_until {
            Some(h) => debounced.max(h),
            None => debounced,
        })
    }

    /// A check ran at `now`; `repaired` says whether it had to rewrite anything.
    pub fn checked(&mut self, now: Instant, repaired: bool) -> Verdict {
        self.first = None;
        self.last = None;
        while self
            .repairs
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > self.policy.fight_window)
        {
            self.repairs.pop_front();
        }
        if !repaired {
            let was_fighting = self.hold_until.is_some();
            self.hold_until = None;
            self.backoff = Duration::ZERO;
            return if was_fighting {
                self.repairs.clear();
                Verdict::Settled
            } else {
                Verdict::Calm
            };
        }
        self.repairs.push_back(now);
        if self.repairs.len() < self.policy.fight_repairs {
            return Verdict::Calm;
        }
        self.backoff = if self.backoff.is_zero() {
            self.policy.first_backoff
        } else {
            (self.backoff * 2).min(self.policy.max_backoff)
        };
        self.hold_until = Some(now + self.backoff);
        Verdict::Fighting {
            repairs: self.repairs.len(),
            wait: self.backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn idle_has_nothing_due() {
        let d = Debouncer::new(Policy::default());
        assert_eq!(d.due(), None);
    }

    #[test]
    fn a_burst_is_checked_once_after_it_went_quiet() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Policy::default());
        d.event(t0);
        assert_eq!(d.due(), Some(t0 + ms(150)));
        d.event(t0 + ms(100));
        assert_eq!(d.due(), Some(t0 + ms(250)));
        assert_eq!(d.checked(t0 + ms(250), true), Verdict::Calm);
        assert_eq!(d.due(), None, "the burst is consumed by one check");
    }

    #[test]
    fn a_steady_trickle_is_checked_by_the_max_delay() {
        let t0 = Instant::now();
        let mut d = Debouncer::new(Policy::default());
        for i in 0..20 {
            d.event(t0 + ms(i * 100));
        }
        assert_eq!(d.due(), Some(t0 + ms(500)));
    }

    #[test]
    fn repeated_repairs_back_off_doubling_and_settle() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut d = Debouncer::new(p);
        let mut now = t0;
        for _ in 0..4 {
            d.event(now);
            assert_eq!(d.checked(now, true), Verdict::Calm);
            now += ms(1000);
        }
        d.event(now);
        assert_eq!(
            d.checked(now, true),
            Verdict::Fighting {
                repairs: 5,
                wait: p.first_backoff
            }
        );
        // The next deletion is repaired only after the back-off.
        d.event(now + ms(10));
        assert_eq!(d.due(), Some(now + p.first_backoff));
        now += p.first_backoff;
        assert_eq!(
            d.checked(now, true),
            Verdict::Fighting {
                repairs: 6,
                wait: p.first_backoff * 2
            }
        );
        // A check that finds the rules in place ends the fight.
        d.event(now + ms(10));
        now += p.first_backoff * 2;
        assert_eq!(d.checked(now, false), Verdict::Settled);
        d.event(now + ms(10));
        assert_eq!(d.due(), Some(now + ms(160)));
        assert_eq!(d.checked(now + ms(160), true), Verdict::Calm);
    }

    #[test]
    fn backoff_is_capped_and_old_repairs_expire() {
        let p = Policy::default();
        let t0 = Instant::now();
        let mut d = Debouncer::new(p);
        let mut now = t0;
        let mut last = Verdict::Calm;
        for _ in 0..20 {
            d.event(now);
            last = d.checked(now, true);
            now += ms(100);
        }
        assert!(
            matches!(last, Verdict::Fighting { wait, .. } if wait == p.max_backoff),
            "{last:?}"
        );
        // Repairs spread further apart than the window never count as a fight.
        let mut d = Debouncer::new(p);
        let mut now = t0;
        for _ in 0..10 {
            d.event(now);
            assert_eq!(d.checked(now, true), Verdict::Calm);
            now += p.fight_window / 4 + ms(1);
        }
    }
}
