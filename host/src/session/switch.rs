//! Switching a session's policy: the one operation both the idle actor and
//! a run in progress use, so they cannot drift apart.
//!
//! A switch drops the old policy's private state before anything else: the
//! WIT promises a policy never sees another's blob, and the new policy may
//! be a third party's. Then the session's policy is stored and the
//! `policy_switched` event appended. The caller replaces the instance (a
//! run swaps it before its next step; the idle actor drops it and the next
//! run makes a fresh one).

use std::sync::Arc;

use super::log::EventLog;
use super::Shared;
use crate::event::{EventBody, PolicySwitched, Source};
use crate::plugins::LoadedPlugin;

/// Records the switch from `from` to `to`; the error is the message for
/// the session's `policy_switch_failed` event.
pub async fn switch_policy(
    shared: &Shared,
    log: &EventLog,
    user_id: &str,
    from: &str,
    to: &str,
) -> Result<Arc<LoadedPlugin>, String> {
    let plugin = shared.registry.policy(to).map_err(|e| e.to_string())?;
    let session_id = log.session_id();
    shared
        .store
        .set_policy_state(session_id, None)
        .await
        .map_err(|e| e.to_string())?;
    shared
        .store
        .set_policy(user_id, session_id, to)
        .await
        .map_err(|e| e.to_string())?;
    log.append(
        Source::User,
        EventBody::PolicySwitched(PolicySwitched {
            from: from.to_string(),
            to: to.to_string(),
            version: plugin.manifest.version.to_string(),
        }),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(plugin)
}
