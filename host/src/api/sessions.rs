//! `/api/v1/sessions`: create, list, read, rename, delete; messages,
//! pause/resume/cancel, policy switch; forks and snapshots; the event log
//! by cursor; screenshots.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use serde::{Deserialize, Serialize};

use super::auth::User;
use super::error::{ApiError, Json, Path, Query};
use super::AppState;
use crate::session::{Decision, LiveState, SessionError, SessionHandle};
use crate::store::{Event, Session, SessionSettings};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions", post(create).get(list))
        .route("/sessions/{id}", get(read).patch(update).delete(remove))
        .route("/sessions/{id}/messages", post(message))
        .route("/sessions/{id}/pause", post(pause))
        .route("/sessions/{id}/resume", post(resume))
        .route("/sessions/{id}/cancel", post(cancel))
        .route("/sessions/{id}/policy", put(switch_policy))
        .route("/sessions/{id}/approvals/{tool_use_id}", post(decide))
        .route("/sessions/{id}/fork", post(fork))
        .route("/sessions/{id}/snapshots", get(snapshots))
        .route("/sessions/{id}/events", get(events))
        .route("/sessions/{id}/images/{sha256}", get(image))
        .route("/sessions/{id}/recordings/{file}", get(recording))
        .route("/sessions/{id}/ws", get(super::ws::upgrade))
}

/// A session as the API shows it: the stored row plus what only the
/// running host knows.
#[derive(Serialize)]
pub struct SessionView {
    #[serde(flatten)]
    session: Session,
    pending_policy: Option<String>,
    sandbox: Option<String>,
    /// The person has the desktop (see takeover).
    user_control: bool,
    /// The tool call waiting for the person's approval, if one is.
    awaiting_approval: Option<crate::event::ApprovalRequested>,
    /// The host running the session's actor; `null` while none does (an
    /// idle session starts on whichever host is asked next).
    host: Option<String>,
}

pub fn view(mut session: Session, handle: Option<&SessionHandle>) -> SessionView {
    let live: Option<LiveState> = handle.map(SessionHandle::live);
    if let Some(live) = &live {
        session.status = live.status;
        session.policy = live.policy.clone();
        session.settings = live.settings.clone();
    }
    SessionView {
        host: handle.map(|h| h.host.to_string()),
        session,
        pending_policy: live.as_ref().and_then(|l| l.pending_policy.clone()),
        user_control: live.as_ref().is_some_and(|l| l.user_control),
        awaiting_approval: live.as_ref().and_then(|l| l.awaiting_approval.clone()),
        sandbox: live.and_then(|l| l.sandbox),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    policy: Option<String>,
    /// A first message, sent right after creation.
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    settings: Option<SettingsPatch>,
}

/// Switches to change; those left out keep their value.
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct SettingsPatch {
    #[serde(default)]
    ask_before_acting: Option<bool>,
    #[serde(default)]
    record_video: Option<bool>,
}

impl SettingsPatch {
    fn apply(self, mut settings: SessionSettings) -> SessionSettings {
        if let Some(v) = self.ask_before_acting {
            settings.ask_before_acting = v;
        }
        if let Some(v) = self.record_video {
            settings.record_video = v;
        }
        settings
    }
}

const MAX_TITLE: usize = 200;

fn check_title(title: &str) -> Result<(), ApiError> {
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::bad_request(
            "title_too_long",
            format!("a title has at most {MAX_TITLE} characters"),
        ));
    }
    Ok(())
}

async fn create(
    State(state): State<AppState>,
    user: User,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    // The body is optional: no body means an untitled session with the
    // default policy.
    let body: CreateBody = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
    };
    let title = body.title.unwrap_or_default();
    check_title(&title)?;
    let settings = body
        .settings
        .unwrap_or_default()
        .apply(SessionSettings::default());
    let (session, mut handle) = state
        .sessions
        .create(&user.id, &title, body.policy, settings)
        .await?;
    if let Some(fleet) = &state.sessions.shared().fleet {
        fleet.publish_capacity(state.sessions.free_desktops()).await;
    }
    if let Some(text) = body.message {
        // A first message that is refused refuses the whole create:
        // nothing is left behind that the client did not ask for.
        let sent = match handle.user_message(text.clone()).await {
            // Evicted already (a very slow create): once more, fresh.
            Err(SessionError::Stopped) => on_session(&state, &user.id, &session.id, |h| {
                let text = text.clone();
                async move { h.user_message(text).await }
            })
            .await
            .map(|(_, h, _)| handle = h),
            result => result.map(drop).map_err(ApiError::from),
        };
        if let Err(e) = sent {
            let _ = state.sessions.delete(&user.id, &session.id).await;
            return Err(e);
        }
    }
    let session = state.store.session(&user.id, &session.id).await?;
    Ok((StatusCode::CREATED, Json(view(session, Some(&handle)))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    #[serde(default = "default_limit")]
    limit: i64,
    #[serde(default)]
    offset: i64,
}

fn default_limit() -> i64 {
    50
}

#[derive(Serialize)]
struct SessionList {
    sessions: Vec<SessionView>,
    next_offset: Option<i64>,
}

async fn list(
    State(state): State<AppState>,
    user: User,
    Query(page): Query<Page>,
) -> Result<Json<SessionList>, ApiError> {
    if !(1..=200).contains(&page.limit) || page.offset < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit is 1..=200 and offset is >= 0",
        ));
    }
    let rows = state
        .store
        .sessions(&user.id, page.limit + 1, page.offset)
        .await?;
    let more = rows.len() as i64 > page.limit;
    let rows: Vec<Session> = rows.into_iter().take(page.limit as usize).collect();
    // In a fleet, the hosts running the sessions this one does not.
    let elsewhere = match &state.sessions.shared().fleet {
        Some(_) => {
            let ids: Vec<&str> = rows
                .iter()
                .filter(|s| state.sessions.running(&s.id).is_none())
                .map(|s| s.id.as_str())
                .collect();
            state.store.lease_holders(&ids).await?
        }
        None => Default::default(),
    };
    let sessions = rows
        .into_iter()
        .map(|s| {
            let handle = state.sessions.running(&s.id);
            let host = elsewhere.get(&s.id).cloned();
            let mut view = view(s, handle.as_ref());
            if view.host.is_none() {
                view.host = host;
            }
            view
        })
        .collect();
    Ok(Json(SessionList {
        sessions,
        next_offset: more.then_some(page.offset + page.limit),
    }))
}

async fn read(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<SessionView>, ApiError> {
    let session = state.store.session(&user.id, &id).await?;
    let handle = state.sessions.running(&id);
    Ok(Json(view(session, handle.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    settings: Option<SettingsPatch>,
}

/// Renames the session and/or changes its switches.
async fn update(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<Json<SessionView>, ApiError> {
    if body.title.is_none() && body.settings.is_none() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "give a `title`, `settings`, or both",
        ));
    }
    if let Some(title) = &body.title {
        check_title(title)?;
        state.store.rename(&user.id, &id, title.trim()).await?;
    }
    if let Some(patch) = body.settings {
        // Through the actor: a run in progress follows the new switches
        // from its next tool call.
        on_session(&state, &user.id, &id, |h| async move {
            let settings = patch.apply(h.live().settings);
            h.set_settings(settings).await
        })
        .await?;
    }
    read(State(state), user, Path(id)).await
}

async fn remove(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.sessions.delete(&user.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    text: String,
}

/// Opens the user's session and runs `action` on its actor. An actor
/// evicted for being idle between the two (its channel closed) is started
/// again from the store and asked once more.
pub async fn on_session<T, F, Fut>(
    state: &AppState,
    user: &str,
    id: &str,
    action: F,
) -> Result<(Session, SessionHandle, T), ApiError>
where
    F: Fn(SessionHandle) -> Fut,
    Fut: std::future::Future<Output = Result<T, SessionError>>,
{
    let (session, handle) = state.sessions.open(user, id).await?;
    match action(handle.clone()).await {
        Err(SessionError::Stopped) => {
            let (session, handle) = state.sessions.open(user, id).await?;
            let out = action(handle.clone()).await?;
            Ok((session, handle, out))
        }
        result => Ok((session, handle, result?)),
    }
}

async fn message(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Json(body): Json<MessageBody>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let (_, _, event) = on_session(&state, &user.id, &id, |h| {
        let (state, user, id, text) = (
            state.clone(),
            user.id.clone(),
            id.clone(),
            body.text.clone(),
        );
        async move {
            if h.live().sandbox.is_none() {
                state.sessions.make_room(&user, Some(&id)).await;
            }
            h.user_message(text).await
        }
    })
    .await?;
    Ok((StatusCode::ACCEPTED, Json(event)))
}

async fn control<F, Fut>(
    state: AppState,
    user: User,
    id: String,
    action: F,
) -> Result<(StatusCode, Json<SessionView>), ApiError>
where
    F: Fn(SessionHandle) -> Fut,
    Fut: std::future::Future<Output = Result<(), SessionError>>,
{
    let (session, handle, ()) = on_session(&state, &user.id, &id, action).await?;
    Ok((StatusCode::ACCEPTED, Json(view(session, Some(&handle)))))
}

async fn pause(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    control(state, user, id, |h| async move { h.pause().await }).await
}

async fn resume(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    control(state, user, id, |h| async move { h.resume().await }).await
}

async fn cancel(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    control(state, user, id, |h| async move { h.cancel().await }).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    /// The last event the fork keeps; by default all of them.
    #[serde(default)]
    at_seq: Option<i64>,
    /// The fork's policy; by default the session's.
    #[serde(default)]
    policy: Option<String>,
}

/// A fork as the API answers it: the new session, where it came from, and
/// the snapshot its desktop starts from (`null`: an empty home).
#[derive(Serialize)]
struct ForkView {
    #[serde(flatten)]
    session: SessionView,
    forked_from: crate::store::ForkOrigin,
    snapshot: Option<crate::store::Snapshot>,
}

/// `POST /sessions/{id}/fork`: a new session with the history up to
/// `at_seq` under `policy`, its desktop from the snapshot taken by then.
async fn fork(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<ForkView>), ApiError> {
    let body: ForkBody = if body.iter().all(u8::is_ascii_whitespace) {
        ForkBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?
    };
    let (fork, forked_from, snapshot) = state
        .sessions
        .fork(&user.id, &id, body.at_seq, body.policy)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ForkView {
            session: view(fork, None),
            forked_from,
            snapshot,
        }),
    ))
}

#[derive(Serialize)]
struct SnapshotList {
    snapshots: Vec<crate::store::Snapshot>,
}

/// `GET /sessions/{id}/snapshots`: the session's saved desktops, oldest
/// first.
async fn snapshots(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
) -> Result<Json<SnapshotList>, ApiError> {
    state.store.session(&user.id, &id).await?;
    Ok(Json(SnapshotList {
        snapshots: state.store.snapshots(&id).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    policy: String,
}

async fn switch_policy(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Json(body): Json<PolicyBody>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    control(state, user, id, |h| {
        let policy = body.policy.clone();
        async move { h.switch_policy(policy).await }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionBody {
    approve: bool,
    /// Why (reaches the policy with a denial).
    #[serde(default)]
    note: String,
}

/// Approves or denies the tool call waiting for the person.
async fn decide(
    State(state): State<AppState>,
    user: User,
    Path((id, tool_use_id)): Path<(String, String)>,
    Json(body): Json<DecisionBody>,
) -> Result<(StatusCode, Json<SessionView>), ApiError> {
    control(state, user, id, |h| {
        let decision = Decision {
            tool_use_id: tool_use_id.clone(),
            approve: body.approve,
            note: body.note.clone(),
        };
        async move { h.decide(decision).await }
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    #[serde(default)]
    after: i64,
    #[serde(default = "default_event_limit")]
    limit: i64,
}

fn default_event_limit() -> i64 {
    200
}

#[derive(Serialize)]
struct EventPage {
    events: Vec<Event>,
    /// Pass as `after` to get the next page.
    next_cursor: i64,
    has_more: bool,
}

async fn events(
    State(state): State<AppState>,
    user: User,
    Path(id): Path<String>,
    Query(cursor): Query<Cursor>,
) -> Result<Json<EventPage>, ApiError> {
    if !(1..=1000).contains(&cursor.limit) || cursor.after < 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "limit is 1..=1000 and after is >= 0",
        ));
    }
    let session = state.store.session(&user.id, &id).await?;
    let events = state
        .store
        .events_after(&id, cursor.after, cursor.limit)
        .await?;
    let next_cursor = events.last().map_or(cursor.after, |e| e.seq);
    Ok(Json(EventPage {
        has_more: next_cursor < session.last_seq,
        next_cursor,
        events,
    }))
}

/// A run's desktop video. Served from its file with range requests, so a
/// browser can seek without downloading it all.
async fn recording(
    State(state): State<AppState>,
    user: User,
    Path((id, file)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    use tower::ServiceExt as _;
    state.store.session(&user.id, &id).await?;
    let valid = file.strip_suffix(".webm").is_some_and(|stem| {
        !stem.is_empty() && stem.len() <= 20 && stem.bytes().all(|b| b.is_ascii_digit())
    });
    if !valid {
        return Err(ApiError::bad_request(
            "invalid_path",
            "not a recording's file name",
        ));
    }
    let Some(path) = state
        .sessions
        .shared()
        .recordings_of(&id)
        .map(|d| d.join(&file))
    else {
        return Err(ApiError::not_found("recording"));
    };
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(ApiError::not_found("recording"));
    }
    let served = match tower_http::services::ServeFile::new_with_mime(&path, &mime_webm())
        .oneshot(request)
        .await
    {
        Ok(served) => served,
        Err(never) => match never {},
    };
    Ok(served.map(axum::body::Body::new).into_response())
}

fn mime_webm() -> mime::Mime {
    "video/webm".parse().expect("a valid media type")
}

async fn image(
    State(state): State<AppState>,
    user: User,
    Path((id, sha256)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.store.session(&user.id, &id).await?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request("invalid_path", "not a SHA-256"));
    }
    let image = match state.store.image(&id, &sha256).await {
        Ok(image) => image,
        Err(crate::store::StoreError::NotFound) => return Err(ApiError::not_found("image")),
        Err(e) => return Err(e.into()),
    };
    Ok((
        [
            (header::CONTENT_TYPE, image.media_type),
            // Content-addressed: the bytes behind a hash never change.
            (
                header::CACHE_CONTROL,
                "private, max-age=31536000, immutable".to_string(),
            ),
        ],
        image.bytes,
    )
        .into_response())
}
