//! Per-user fair use: how many sandboxes and running agents each user
//! holds right now. A permit is taken before a sandbox is claimed or a run
//! starts and given back when it is dropped, so the counts can never drift
//! from what actually exists.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
}

/// One unit of a user's allowance, returned on drop.
pub struct Permit {
    key: (String, Kind),
    held: Held,
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
    }
}

impl Quotas {
    pub fn new(caps: UserCaps) -> Self {
        Self {
            caps,
            held: Arc::default(),
        }
    }

    pub fn caps(&self) -> UserCaps {
        self.caps
    }

    fn take(&self, user: &str, kind: Kind, cap: usize) -> Result<Permit, SessionError> {
        let key = (user.to_string(), kind);
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key.clone()).or_default();
        if *n >= cap {
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
        Ok(Permit {
            key,
            held: self.held.clone(),
        })
    }

    /// A permit to hold one more sandbox.
    pub fn sandbox(&self, user: &str) -> Result<Permit, SessionError> {
        self.take(user, Kind::Sandbox, self.caps.sandboxes)
    }

    /// A permit to run one more agent.
    pub fn run(&self, user: &str) -> Result<Permit, SessionError> {
        self.take(user, Kind::Run, self.caps.running)
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
        let a = q.sandbox("alice").unwrap();
        let _b = q.sandbox("alice").unwrap();
        assert!(q.sandbox("alice").is_err());
        let _c = q.sandbox("bob").unwrap();
        drop(a);
        assert_eq!(q.sandboxes_held("alice"), 1);
        let _d = q.sandbox("alice").unwrap();
        let _r = q.run("alice").unwrap();
        assert!(matches!(
            q.run("alice"),
            Err(SessionError::Quota {
                code: "quota_running",
                ..
            })
        ));
    }
}
