//! Per-user fair use: how many sandboxes and running agents each user
//! holds right now. A permit is taken before a sandbox is claimed or a run
//! starts and given back when it is dropped, so the counts can never drift
//! from what actually exists. In a fleet a host also counts what the user
//! holds on the other hosts (each publishes its own counts; see
//! [`Quotas::holdings`] and [`Quotas::changed`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use super::SessionError;
use crate::config::UserCaps;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Sandbox,
    Run,
}

type Held = Arc<Mutex<HashMap<(String, Kind), usize>>>;

pub struct Quotas {
    caps: UserCaps,
    held: Held,
    changed: Arc<Notify>,
}

/// One unit of a user's allowance, returned on drop.
pub struct Permit {
    key: (String, Kind),
    held: Held,
    changed: Arc<Notify>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
        self.changed.notify_one();
    }
}

impl Quotas {
    pub fn new(caps: UserCaps) -> Self {
        Self {
            caps,
            held: Arc::default(),
            changed: Arc::default(),
        }
    }

    pub fn caps(&self) -> UserCaps {
        self.caps
    }

    /// Signalled when a permit is taken or given back (a fleet host then
    /// publishes its counts). One signal is kept if nobody waits.
    pub fn changed(&self) -> &Notify {
        &self.changed
    }

    /// What each user holds here: `(user, desktops, running agents)`.
    pub fn holdings(&self) -> Vec<(String, i64, i64)> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_user: std::collections::BTreeMap<&str, (i64, i64)> = Default::default();
        for ((user, kind), n) in held.iter() {
            let entry = by_user.entry(user.as_str()).or_default();
            match kind {
                Kind::Sandbox => entry.0 += *n as i64,
                Kind::Run => entry.1 += *n as i64,
            }
        }
        by_user
            .into_iter()
            .map(|(user, (s, r))| (user.to_string(), s, r))
            .collect()
    }

    /// `elsewhere`: what the user holds on other hosts of the fleet.
    fn take(
        &self,
        user: &str,
        kind: Kind,
        cap: usize,
        elsewhere: usize,
    ) -> Result<Permit, SessionError> {
        let key = (user.to_string(), kind);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key.clone()).or_default();
        if *n + elsewhere >= cap {
            return Err(match kind {
                Kind::Sandbox => SessionError::Quota {
                    code: "quota_sandboxes",
                    message: format!(
                        "you hold {cap} desktops, your limit: finish or delete a session first"
                    ),
                    retry_after: None,
                },
                Kind::Run => SessionError::Quota {
                    code: "quota_running",
                    message: format!(
                        "{cap} of your sessions are running, your limit: wait for one to finish"
                    ),
                    retry_after: Some(10),
                },
            });
        }
        *n += 1;
        self.changed.notify_one();
        Ok(Permit {
            key,
            held: self.held.clone(),
            changed: self.changed.clone(),
        })
    }

    /// A permit to hold one more sandbox, the user using `elsewhere` on
    /// the fleet's other hosts.
    pub fn sandbox(&self, user: &str, elsewhere: usize) -> Result<Permit, SessionError> {
        self.take(user, Kind::Sandbox, self.caps.sandboxes, elsewhere)
    }

    /// A permit to run one more agent, the user running `elsewhere` on
    /// the fleet's other hosts.
    pub fn run(&self, user: &str, elsewhere: usize) -> Result<Permit, SessionError> {
        self.take(user, Kind::Run, self.caps.running, elsewhere)
    }

    /// Sandboxes the user holds now.
    pub fn sandboxes_held(&self, user: &str) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&(user.to_string(), Kind::Sandbox))
            .copied()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_count_per_user_and_return_on_drop() {
        let q = Quotas::new(UserCaps {
            sandboxes: 2,
            running: 1,
            tokens_per_day: 0,
        });
        let a = q.sandbox("alice", 0).unwrap();
        let _b = q.sandbox("alice", 0).unwrap();
        assert!(q.sandbox("alice", 0).is_err());
        let _c = q.sandbox("bob", 0).unwrap();
        drop(a);
        assert_eq!(q.sandboxes_held("alice"), 1);
        // What bob holds on other hosts counts against his cap.
        assert!(q.sandbox("bob", 1).is_err());
        let _d = q.sandbox("alice", 0).unwrap();
        let _r = q.run("alice", 0).unwrap();
        assert_eq!(
            q.holdings(),
            [("alice".to_string(), 2, 1), ("bob".to_string(), 1, 0)]
        );
        assert!(matches!(
            q.run("alice", 0),
            Err(SessionError::Quota {
                code: "quota_running",
                ..
            })
        ));
    }
}
