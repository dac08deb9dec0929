//! Following sessions another host runs: one listener per host on the
//! append channel, and per followed session a hub its WebSocket clients
//! subscribe to, fed from the store in sequence order.
//!
//! A notification only says "session S has event N": the follower reads
//! every event after its cursor from the store, so notifications that
//! arrive together, late or twice cost one read and deliver nothing twice,
//! and one lost while the listener reconnected is caught up by the next
//! (or by the catch-up every reconnect runs for all followed sessions).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::session::Hub;
use crate::store::{Store, StoreError, EVENTS_CHANNEL};

/// Events read from the store per round trip while catching up.
const PAGE: i64 = 500;

struct Follower {
    hub: Hub,
    /// The last sequence number published; the lock orders catch-ups.
    cursor: tokio::sync::Mutex<i64>,
}

#[derive(Clone, Default)]
pub(super) struct Followers {
    by_session: Arc<Mutex<HashMap<String, Arc<Follower>>>>,
}

/// A live subscription to a session run elsewhere; the session is followed
/// while any `Following` for it exists.
pub struct Following {
    session_id: String,
    follower: Arc<Follower>,
    followers: Followers,
}

impl Following {
    pub fn hub(&self) -> &Hub {
        &self.follower.hub
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut map = self.followers.lock();
        // The map's reference and this one: nobody else follows it.
        if Arc::strong_count(&self.follower) <= 2 {
            map.remove(&self.session_id);
        }
    }
}

impl Followers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Follower>>> {
        self.by_session.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) async fn follow(
        &self,
        store: &Store,
        session_id: &str,
    ) -> Result<Following, StoreError> {
        let existing = self.lock().get(session_id).cloned();
        let follower = match existing {
            Some(f) => f,
            None => {
                // Events up to here are the clients' replay; later ones are
                // announced on a channel the listener already hears.
                let last = store.session_by_id(session_id).await?.last_seq;
                let fresh = Arc::new(Follower {
                    hub: Hub::default(),
                    cursor: tokio::sync::Mutex::new(last),
                });
                self.lock()
                    .entry(session_id.to_string())
                    .or_insert(fresh)
                    .clone()
            }
        };
        Ok(Following {
            session_id: session_id.to_string(),
            follower,
            followers: self.clone(),
        })
    }

    fn get(&self, session_id: &str) -> Option<Arc<Follower>> {
        self.lock().get(session_id).cloned()
    }

    fn all(&self) -> Vec<(String, Arc<Follower>)> {
        self.lock()
            .iter()
            .map(|(id, f)| (id.clone(), f.clone()))
            .collect()
    }
}

/// Publishes the session's stored events after the follower's cursor.
async fn catch_up(store: &Store, session_id: &str, follower: &Follower) {
    let mut cursor = follower.cursor.lock().await;
    loop {
        let page = match store.events_after(session_id, *cursor, PAGE).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(session = session_id, error = %e, "cannot read a followed session's events");
                return;
            }
        };
        for event in &page {
            follower.hub.publish(event);
            *cursor = event.seq;
        }
        if (page.len() as i64) < PAGE {
            return;
        }
    }
}

/// Listens on the append channel for as long as the host runs,
/// reconnecting when the connection drops.
pub(super) async fn listen(database_url: String, store: Store, followers: Followers) {
    loop {
        let mut listener = super::listen_on(&database_url, EVENTS_CHANNEL).await;
        // Anything announced while not listening is read now.
        for (id, follower) in followers.all() {
            catch_up(&store, &id, &follower).await;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(note)) => {
                    let Some((session_id, _seq)) = note.payload().rsplit_once(':') else {
                        continue;
                    };
                    if let Some(follower) = followers.get(session_id) {
                        let (store, id) = (store.clone(), session_id.to_string());
                        // Per session in order (the cursor lock), sessions
                        // side by side.
                        tokio::spawn(async move { catch_up(&store, &id, &follower).await });
                    }
                }
                // The connection dropped: reconnect and catch up.
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "the fleet's event listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}
