//! Who opened each MCP session, and how many one caller may hold.
//!
//! A session of either transport (an initialize-era Streamable HTTP session, a legacy SSE
//! stream) belongs to the **principal** that opened it (docs/security.md): the OAuth grant, the
//! static token's name, or, without auth, nobody in particular (whoever holds the session id,
//! as in 1.7.0). [`SessionTable`] records that owner when the session is created — inside the
//! session manager ([`BoundedSessions::create_session`]) and the legacy `GET /sse` handler, from
//! the [`RequestScope`] of the request that creates it — and the route guard asks it on every
//! later request: another principal gets the same 404 as an unknown session.
//!
//! It also caps the sessions of one caller at [`per_principal_cap`] (a quarter of
//! `MCP_MAX_SESSIONS`): over it, that caller's longest-idle session is closed, so a flood from
//! one principal (or, without auth, one address; IPv6 by /64) never takes the slots of others.
//! `MCP_MAX_SESSIONS` itself stays the bound of all sessions together ([`SessionLimit`]).
//!
//! Every session id of either transport comes from [`SessionIds`]: unguessable, and, when this
//! bridge has a replica name (`OPENCLAW_MCP_REPLICA_ID`), prefixed with `<name>.` so that a load
//! balancer in front of several bridges sends each request of a session back to the bridge that
//! holds it (docs/deployment.md, "Sessions behind a load balancer"). rmcp's own manager makes
//! plain UUIDs and cannot be told otherwise; [`BoundedSessions`] then creates the session under
//! the tagged id itself (see [`BoundedSessions::create_session`]), so the id the client holds is
//! the id of every path (rmcp's map, this table, the streams), with no translation anywhere.
//!
//! The session manager also hands every request stream of a session to
//! [`RequestStreams`](super::streams::RequestStreams), which keeps answers for a resume and
//! refuses a second request with the id of one in flight.

use std::{
    collections::{HashMap, HashSet},
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use futures_util::future::Either;
use rmcp::{
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
    transport::streamable_http_server::session::{
        EventStore, RestoreOutcome, ServerSseMessage, SessionId, SessionManager,
    },
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::streams::{RequestStreams, duplicate_id_error};
use crate::{net::AddrBucket, tasks::Owner};

/// The task owner of every unauthenticated stateless (2026-07-28) request. Session owners are
/// UUIDs, so this key can never collide with one.
pub const ANONYMOUS_OWNER: &str = "anonymous";

// ------------------------------------------------------------------------------------------------
// The request that creates a session

/// What the service factory and the session manager need to know about the request they run
/// for (they cannot see it: rmcp calls them without it).
#[derive(Debug, Clone)]
pub(crate) struct RequestScope {
    /// The request is an `initialize`: the handler created now serves a new session.
    pub initialize: bool,
    /// The authenticated caller, if any.
    pub principal: Option<Owner>,
    /// Whose share of sessions a session opened now counts against.
    pub cap: CapKey,
}

tokio::task_local! {
    /// Set by the route guard around each `/mcp` request; read by the service factory and the
    /// session manager.
    static REQUEST_SCOPE: RequestScope;
}

/// Runs `fut` (a request's handling) with `scope` visible to the factory and session manager.
pub(crate) async fn with_scope<F: Future>(scope: RequestScope, fut: F) -> F::Output {
    REQUEST_SCOPE.scope(scope, fut).await
}

/// The task owner of a handler the factory creates now:
///
/// - an authenticated principal owns what it creates, in both eras;
/// - an unauthenticated `initialize` gets a fresh `Owner::Session(<uuid>)`: each MCP session
///   sees only its own tasks, as in 1.7.0;
/// - an unauthenticated stateless 2026-07-28 request gets [`ANONYMOUS_OWNER`]. That era has no
///   sessions, so a per-request owner would make every task unreachable from the very next
///   request; task ids are random UUIDs, so reading or cancelling a task still needs its id,
///   but `openclaw_task_list` shows every anonymous task to every anonymous caller, acceptable
///   only because without auth the server is open to anyone anyway (warned about at start).
pub(crate) fn owner_for_new_handler() -> Owner {
    let fresh = || Owner::Session(uuid::Uuid::new_v4().to_string());
    REQUEST_SCOPE
        .try_with(|scope| match (&scope.principal, scope.initialize) {
            (Some(owner), _) => owner.clone(),
            (None, true) => fresh(),
            (None, false) => Owner::Session(ANONYMOUS_OWNER.to_string()),
        })
        .unwrap_or_else(|_| fresh())
}

fn current_scope() -> Option<RequestScope> {
    REQUEST_SCOPE.try_with(Clone::clone).ok()
}

// ------------------------------------------------------------------------------------------------
// Session ids

/// The character that ends the replica name in a session id. Not one a replica name may contain
/// (`[A-Za-z0-9_-]`), so the name is everything before the first one; visible ASCII, as an
/// `Mcp-Session-Id` must be; unreserved in URLs (RFC 3986), so a client puts it in the legacy
/// `?sessionId=` as is and a balancer's regex on the raw query value sees it; and a plain
/// character in an nginx `map` regex once escaped (`~^r1\.`).
pub const REPLICA_SEPARATOR: char = '.';

/// How this bridge makes session ids, for both transports.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionIds {
    /// `<replica>.` when `OPENCLAW_MCP_REPLICA_ID` is set; `None`: plain ids.
    prefix: Option<String>,
}

impl SessionIds {
    /// Ids for the replica named `replica` (a name the configuration validated), or plain ids.
    pub fn new(replica: Option<&str>) -> Self {
        SessionIds {
            prefix: replica.map(|r| format!("{r}{REPLICA_SEPARATOR}")),
        }
    }

    /// A new session id: a random v4 UUID (122 random bits, as rmcp's own ids), after
    /// `<replica>.` when this bridge has a replica name. Only the UUID is secret; the name is
    /// printed on every id this replica hands out.
    pub fn fresh(&self) -> String {
        let uuid = uuid::Uuid::new_v4();
        match &self.prefix {
            Some(prefix) => format!("{prefix}{uuid}"),
            None => uuid.to_string(),
        }
    }

    /// Whether ids carry a replica name.
    pub fn tagged(&self) -> bool {
        self.prefix.is_some()
    }
}

// ------------------------------------------------------------------------------------------------
// The total bound

/// Which transport a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKind {
    /// A Streamable HTTP session (`Mcp-Session-Id`).
    Streamable,
    /// A legacy SSE stream.
    Legacy,
}

/// The one bound on open sessions of both transports (`MCP_MAX_SESSIONS`).
#[derive(Debug)]
pub(crate) struct SessionLimit {
    max: usize,
    total: AtomicUsize,
    streamable: AtomicUsize,
    legacy: AtomicUsize,
}

impl SessionLimit {
    pub fn new(max: usize) -> Self {
        SessionLimit {
            max,
            total: AtomicUsize::new(0),
            streamable: AtomicUsize::new(0),
            legacy: AtomicUsize::new(0),
        }
    }

    fn counter(&self, kind: SessionKind) -> &AtomicUsize {
        match kind {
            SessionKind::Streamable => &self.streamable,
            SessionKind::Legacy => &self.legacy,
        }
    }

    /// Takes a slot; `false` when all are taken.
    pub fn try_acquire(&self, kind: SessionKind) -> bool {
        let taken = self
            .total
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (t < self.max).then_some(t + 1)
            })
            .is_ok();
        if taken {
            self.counter(kind).fetch_add(1, Ordering::SeqCst);
        }
        taken
    }

    /// Gives a slot back.
    pub fn release(&self, kind: SessionKind) {
        self.counter(kind).fetch_sub(1, Ordering::SeqCst);
        self.total.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether a new session would be refused now.
    pub fn is_full(&self) -> bool {
        self.total.load(Ordering::SeqCst) >= self.max
    }

    /// `MCP_MAX_SESSIONS`.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Open sessions of `kind`.
    pub fn open(&self, kind: SessionKind) -> usize {
        self.counter(kind).load(Ordering::SeqCst)
    }
}

// ------------------------------------------------------------------------------------------------
// Owners and per-caller caps

/// Whose share of sessions a session counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CapKey {
    /// An authenticated principal.
    Principal(Owner),
    /// Without auth: the client's address (IPv6 by /64).
    Addr(AddrBucket),
    /// An address that cannot be told (not capped on its own; the total bound still holds).
    Unknown,
}

impl CapKey {
    /// The key of a request: its principal when authenticated, else its address.
    pub fn of(principal: Option<&Owner>, ip: Option<std::net::IpAddr>) -> CapKey {
        match (principal, ip) {
            (Some(owner), _) => CapKey::Principal(owner.clone()),
            (None, Some(ip)) => CapKey::Addr(AddrBucket::of(ip)),
            (None, None) => CapKey::Unknown,
        }
    }
}

/// The most sessions one caller may hold: a quarter of `MCP_MAX_SESSIONS` (at least one), so
/// that for every setting of 2 or more it is below the total, and three other callers always
/// find room however the fourth behaves.
pub fn per_principal_cap(max_sessions: usize) -> usize {
    (max_sessions / 4).max(1)
}

/// One open session, as the table knows it.
#[derive(Debug)]
struct Entry {
    kind: SessionKind,
    /// Who may use it; `None` = whoever has the id (no auth).
    owner: Option<Owner>,
    cap: CapKey,
    /// When it was last used, on the table's own use counter (a strict order, unlike clock
    /// readings that can tie).
    last_used: u64,
    /// Ends a legacy session (its stream's token). Streamable sessions are closed through the
    /// session manager instead.
    cancel: Option<CancellationToken>,
}

/// What [`SessionTable::access`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No such session (or it ended).
    Unknown,
    /// The caller may use it.
    Allowed,
    /// It belongs to another principal: answered exactly as [`Access::Unknown`].
    Foreign,
}

/// The table's contents, under one lock.
#[derive(Debug, Default)]
struct Sessions {
    map: HashMap<String, Entry>,
    /// Counts every admission and use.
    uses: u64,
}

impl Sessions {
    fn tick(&mut self) -> u64 {
        self.uses += 1;
        self.uses
    }
}

/// Every open session's owner and cap key.
pub(crate) struct SessionTable {
    sessions: Mutex<Sessions>,
    per_principal: usize,
    /// Streamable sessions to close (evicted over a cap); a task holding the session manager
    /// closes them.
    evict: mpsc::UnboundedSender<String>,
}

impl SessionTable {
    /// A table for `MCP_MAX_SESSIONS` = `max_sessions`, and the receiver of the Streamable HTTP
    /// sessions it evicts (see [`close_evicted`]).
    pub fn new(max_sessions: usize) -> (SessionTable, mpsc::UnboundedReceiver<String>) {
        let (evict, evicted) = mpsc::unbounded_channel();
        (
            SessionTable {
                sessions: Mutex::new(Sessions::default()),
                per_principal: per_principal_cap(max_sessions),
                evict,
            },
            evicted,
        )
    }

    /// The per-caller cap.
    pub fn per_principal(&self) -> usize {
        self.per_principal
    }

    /// Records a new session. When its caller already holds its share, that caller's
    /// longest-idle session is closed first (never another caller's).
    pub fn admit(
        &self,
        id: &str,
        kind: SessionKind,
        owner: Option<Owner>,
        cap: CapKey,
        cancel: Option<CancellationToken>,
    ) {
        let Ok(mut sessions) = self.sessions.lock() else {
            return;
        };
        let now = sessions.tick();
        let map = &mut sessions.map;
        if cap != CapKey::Unknown {
            let mine: Vec<(&String, &Entry)> = map.iter().filter(|(_, e)| e.cap == cap).collect();
            if mine.len() >= self.per_principal
                && let Some((victim, _)) = mine.iter().min_by_key(|(_, e)| e.last_used)
            {
                let victim = (*victim).clone();
                if let Some(entry) = map.remove(&victim) {
                    tracing::warn!(
                        cap = self.per_principal,
                        "a caller opened more sessions than its share; its longest-idle session is closed"
                    );
                    match entry.cancel {
                        Some(cancel) => cancel.cancel(),
                        None => {
                            let _ = self.evict.send(victim);
                        }
                    }
                }
            }
        }
        map.insert(
            id.to_string(),
            Entry {
                kind,
                owner,
                cap,
                last_used: now,
                cancel,
            },
        );
    }

    /// Forgets a session that ended.
    pub fn remove(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.map.remove(id);
        }
    }

    /// Whether `principal` may use session `id` of `kind`; marks it used when allowed.
    pub fn access(&self, id: &str, kind: SessionKind, principal: Option<&Owner>) -> Access {
        let Ok(mut sessions) = self.sessions.lock() else {
            return Access::Unknown;
        };
        let now = sessions.tick();
        match sessions.map.get_mut(id) {
            Some(entry) if entry.kind == kind => {
                if entry.owner.is_none() || entry.owner.as_ref() == principal {
                    entry.last_used = now;
                    Access::Allowed
                } else {
                    Access::Foreign
                }
            }
            _ => Access::Unknown,
        }
    }

    /// Open sessions of one caller.
    #[cfg(test)]
    fn count(&self, cap: &CapKey) -> usize {
        self.sessions
            .lock()
            .map(|s| s.map.values().filter(|e| &e.cap == cap).count())
            .unwrap_or(0)
    }
}

/// Closes the Streamable HTTP sessions the table evicts, until the table is gone.
pub(crate) async fn close_evicted<M: SessionManager>(
    manager: Arc<M>,
    mut evicted: mpsc::UnboundedReceiver<String>,
) {
    while let Some(id) = evicted.recv().await {
        let id: SessionId = id.into();
        if let Err(e) = manager.close_session(&id).await {
            tracing::warn!(error = %e, "cannot close an evicted session");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// rmcp's session manager, bounded and owned

/// A session refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError<E: std::error::Error + Send + 'static> {
    /// `MCP_MAX_SESSIONS` reached.
    #[error("too many MCP sessions (MCP_MAX_SESSIONS={0})")]
    Full(usize),
    /// A session could not be created under an id of ours (never expected with rmcp's
    /// `LocalSessionManager`).
    #[error("cannot open an MCP session: {0}")]
    Naming(&'static str),
    /// The wrapped session manager failed.
    #[error(transparent)]
    Inner(E),
}

/// rmcp's session manager, with a bound on how many sessions are open at once, every session
/// recorded in the [`SessionTable`] with the principal of the request that opened it, and every
/// request stream kept in [`RequestStreams`] (resumption, one request per id).
pub(crate) struct BoundedSessions<M> {
    inner: M,
    /// `MCP_MAX_SESSIONS`, shared with the legacy transport.
    limit: Arc<SessionLimit>,
    /// Who opened each session.
    table: Arc<SessionTable>,
    /// Sessions this manager holds a slot for (so a session closed twice frees it once).
    ids: Mutex<HashSet<SessionId>>,
    /// The request streams of every session, and the request ids in flight.
    streams: Arc<RequestStreams>,
    /// How new sessions are named (the replica name).
    naming: SessionIds,
}

impl<M> BoundedSessions<M> {
    pub fn new(
        inner: M,
        limit: Arc<SessionLimit>,
        table: Arc<SessionTable>,
        streams: Arc<RequestStreams>,
        naming: SessionIds,
    ) -> Self {
        BoundedSessions {
            inner,
            limit,
            table,
            ids: Mutex::new(HashSet::new()),
            streams,
            naming,
        }
    }
}

impl<M: SessionManager> BoundedSessions<M> {
    /// A new session of the inner manager, under an id of [`SessionIds`] when ids carry the
    /// replica name.
    ///
    /// rmcp's `LocalSessionManager::create_session` always names a session with a plain UUID,
    /// and the one method of the trait that takes the id is `restore_session`: in rmcp 3.11 it
    /// runs exactly what `create_session` runs (a new session worker with the manager's config
    /// and event store, put in its map, its transport spawned) under the id given, and tells when
    /// that id is already taken. So the session exists under the tagged id from the start, and
    /// every later call (`has_session`, `close_session`, streams, resume, evictions) sees the
    /// same id the client sends. A manager that cannot do it, or an id already in use (a UUID
    /// collision), is an error, never a session under a plain id or someone else's.
    async fn create_inner(&self) -> Result<(SessionId, M::Transport), SessionError<M::Error>> {
        if !self.naming.tagged() {
            return self
                .inner
                .create_session()
                .await
                .map_err(SessionError::Inner);
        }
        let id: SessionId = self.naming.fresh().into();
        match self.inner.restore_session(id.clone()).await {
            Ok(RestoreOutcome::Restored(transport)) => Ok((id, transport)),
            Ok(RestoreOutcome::AlreadyPresent) => {
                Err(SessionError::Naming("a new session id is already in use"))
            }
            Ok(_) => Err(SessionError::Naming(
                "the session manager cannot name a session (OPENCLAW_MCP_REPLICA_ID)",
            )),
            Err(e) => Err(SessionError::Inner(e)),
        }
    }
}

impl<M: SessionManager> SessionManager for BoundedSessions<M> {
    type Error = SessionError<M::Error>;
    type Transport = M::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        if !self.limit.try_acquire(SessionKind::Streamable) {
            tracing::warn!(
                max = self.limit.max(),
                "MCP session refused: the session table is full"
            );
            return Err(SessionError::Full(self.limit.max()));
        }
        match self.create_inner().await {
            Ok((id, transport)) => {
                if let Ok(mut ids) = self.ids.lock() {
                    ids.insert(id.clone());
                }
                // rmcp creates a session only inside the request that asks for it, so the
                // scope is there; without one (never expected) the session is nobody's and
                // uncapped, as without auth.
                let scope = current_scope();
                let (owner, cap) = match scope {
                    Some(scope) => (scope.principal, scope.cap),
                    None => (None, CapKey::Unknown),
                };
                self.table
                    .admit(&id, SessionKind::Streamable, owner, cap, None);
                tracing::info!(
                    open = self.limit.open(SessionKind::Streamable),
                    "MCP session opened"
                );
                Ok((id, transport))
            }
            Err(e) => {
                self.limit.release(SessionKind::Streamable);
                Err(e)
            }
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner
            .initialize_session(id, message)
            .await
            .map_err(SessionError::Inner)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner
            .has_session(id)
            .await
            .map_err(SessionError::Inner)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        let held = self
            .ids
            .lock()
            .map(|mut ids| ids.remove(id))
            .unwrap_or(false);
        self.streams.close_session(id);
        if held {
            self.table.remove(id);
            self.limit.release(SessionKind::Streamable);
            tracing::info!(
                open = self.limit.open(SessionKind::Streamable),
                "MCP session closed"
            );
        }
        self.inner
            .close_session(id)
            .await
            .map_err(SessionError::Inner)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        let request = match &message {
            ClientJsonRpcMessage::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        if let Some(request) = &request
            && !self.streams.begin(id, request)
        {
            tracing::warn!(
                "a request reused the id of a request in flight in its session; refused with -32600"
            );
            let refusal = ServerSseMessage::from_message(duplicate_id_error(request));
            return Ok(Either::Left(futures_util::stream::iter([refusal])));
        }
        match self.inner.create_stream(id, message).await {
            Ok(stream) => Ok(Either::Right(self.streams.attach(
                id.clone(),
                request,
                stream,
            ))),
            Err(e) => {
                if let Some(request) = &request {
                    self.streams.end(id, request);
                }
                Err(SessionError::Inner(e))
            }
        }
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner
            .accept_message(id, message)
            .await
            .map_err(SessionError::Inner)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        self.inner
            .create_standalone_stream(id)
            .await
            .map_err(SessionError::Inner)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<
        impl futures_util::Stream<Item = ServerSseMessage> + Send + Sync + 'static,
        Self::Error,
    > {
        // A request stream kept here is resumed from here: rmcp may have dropped its answer
        // already, and resuming it in rmcp would take its channel away from our pump.
        if let Some(stream) = self.streams.resume(id, &last_event_id) {
            return Ok(Either::Left(stream));
        }
        self.inner
            .resume(id, last_event_id)
            .await
            .map(Either::Right)
            .map_err(SessionError::Inner)
    }

    fn event_store(&self) -> Option<Arc<dyn EventStore>> {
        self.inner.event_store()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_limit_counts_both_transports() {
        let limit = SessionLimit::new(2);
        assert!(limit.try_acquire(SessionKind::Streamable));
        assert!(limit.try_acquire(SessionKind::Legacy));
        assert!(limit.is_full());
        assert!(!limit.try_acquire(SessionKind::Streamable));
        limit.release(SessionKind::Legacy);
        assert_eq!(limit.open(SessionKind::Legacy), 0);
        assert!(limit.try_acquire(SessionKind::Streamable));
        assert_eq!(limit.open(SessionKind::Streamable), 2);
    }

    #[test]
    fn the_cap_per_caller_is_below_the_total() {
        for max in 2..2000 {
            let cap = per_principal_cap(max);
            assert!(cap >= 1 && cap < max, "{max} -> {cap}");
        }
        assert_eq!(per_principal_cap(1000), 250);
    }

    #[tokio::test]
    async fn owners_follow_the_request_scope() {
        assert!(matches!(owner_for_new_handler(), Owner::Session(id) if id != ANONYMOUS_OWNER));
        let scope = |initialize, principal| RequestScope {
            initialize,
            principal,
            cap: CapKey::Unknown,
        };
        let a = with_scope(scope(true, None), async { owner_for_new_handler() }).await;
        let b = with_scope(scope(true, None), async { owner_for_new_handler() }).await;
        assert_ne!(a, b, "each session gets its own owner");
        let anon = with_scope(scope(false, None), async { owner_for_new_handler() }).await;
        assert_eq!(anon, Owner::Session(ANONYMOUS_OWNER.into()));
        let sub = Owner::Subject("alice".into());
        for initialize in [true, false] {
            let got = with_scope(scope(initialize, Some(sub.clone())), async {
                owner_for_new_handler()
            })
            .await;
            assert_eq!(got, sub);
        }
    }

    #[test]
    fn ids_carry_the_replica_name_and_a_fresh_uuid() {
        let plain = SessionIds::new(None).fresh();
        assert!(uuid::Uuid::parse_str(&plain).is_ok(), "{plain}");
        let ids = SessionIds::new(Some("eu-1_b"));
        let (a, b) = (ids.fresh(), ids.fresh());
        assert_ne!(a, b);
        let (replica, rest) = a.split_once(REPLICA_SEPARATOR).unwrap();
        assert_eq!(replica, "eu-1_b");
        assert_eq!(uuid::Uuid::parse_str(rest).unwrap().get_version_num(), 4);
    }

    #[tokio::test]
    async fn a_tagged_session_lives_under_the_id_the_client_sees() {
        use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
        let limit = Arc::new(SessionLimit::new(8));
        let (table, _evicted) = SessionTable::new(8);
        let table = Arc::new(table);
        let streams = Arc::new(RequestStreams::new(std::time::Duration::from_secs(1)));
        let manager = BoundedSessions::new(
            LocalSessionManager::default(),
            limit.clone(),
            table.clone(),
            streams,
            SessionIds::new(Some("r1")),
        );
        let (id, _transport) = manager.create_session().await.unwrap();
        let (replica, rest) = id.split_once('.').unwrap();
        assert_eq!(replica, "r1");
        assert!(manager.has_session(&id).await.unwrap());
        assert_eq!(
            table.access(&id, SessionKind::Streamable, None),
            Access::Allowed
        );
        for other in [rest.to_string(), "r1.".to_string(), format!("r2.{rest}")] {
            let other: SessionId = other.into();
            assert!(!manager.has_session(&other).await.unwrap(), "{other}");
        }
        assert_eq!(limit.open(SessionKind::Streamable), 1);
        manager.close_session(&id).await.unwrap();
        assert!(!manager.has_session(&id).await.unwrap());
        assert_eq!(limit.open(SessionKind::Streamable), 0);
        assert_eq!(
            table.access(&id, SessionKind::Streamable, None),
            Access::Unknown
        );
    }

    #[test]
    fn a_session_answers_only_its_owner() {
        let (table, _rx) = SessionTable::new(100);
        let alice = Owner::Subject("grant:a".into());
        let bob = Owner::Subject("token:bob".into());
        let cap = CapKey::Principal(alice.clone());
        table.admit(
            "s1",
            SessionKind::Streamable,
            Some(alice.clone()),
            cap,
            None,
        );
        assert_eq!(
            table.access("s1", SessionKind::Streamable, Some(&alice)),
            Access::Allowed
        );
        assert_eq!(
            table.access("s1", SessionKind::Streamable, Some(&bob)),
            Access::Foreign
        );
        assert_eq!(
            table.access("s1", SessionKind::Streamable, None),
            Access::Foreign
        );
        assert_eq!(
            table.access("s1", SessionKind::Legacy, Some(&alice)),
            Access::Unknown,
            "a Streamable HTTP id is not a legacy one"
        );
        assert_eq!(
            table.access("nope", SessionKind::Streamable, Some(&alice)),
            Access::Unknown
        );
        let open = CapKey::Addr(AddrBucket::of("10.0.0.1".parse().unwrap()));
        table.admit("s2", SessionKind::Legacy, None, open, None);
        assert_eq!(
            table.access("s2", SessionKind::Legacy, Some(&bob)),
            Access::Allowed,
            "without auth the id is the key"
        );
        table.remove("s1");
        assert_eq!(
            table.access("s1", SessionKind::Streamable, Some(&alice)),
            Access::Unknown
        );
    }

    #[test]
    fn over_its_share_a_caller_loses_its_own_longest_idle_session() {
        let (table, mut evicted) = SessionTable::new(8); // 2 per caller
        let flood = CapKey::Addr(AddrBucket::of("2001:db8::1".parse().unwrap()));
        let other = CapKey::Addr(AddrBucket::of("10.0.0.9".parse().unwrap()));
        table.admit("other", SessionKind::Streamable, None, other.clone(), None);
        let legacy = CancellationToken::new();
        table.admit(
            "f1",
            SessionKind::Legacy,
            None,
            flood.clone(),
            Some(legacy.clone()),
        );
        table.admit("f2", SessionKind::Streamable, None, flood.clone(), None);
        assert_eq!(
            table.access("f2", SessionKind::Streamable, None),
            Access::Allowed
        );
        // Another address of the same /64.
        let same64 = CapKey::Addr(AddrBucket::of("2001:db8::2".parse().unwrap()));
        table.admit("f3", SessionKind::Streamable, None, same64, None);
        assert!(legacy.is_cancelled(), "the longest idle (f1) was closed");
        assert_eq!(table.count(&flood), 2);
        table.admit("f4", SessionKind::Streamable, None, flood.clone(), None);
        assert_eq!(evicted.try_recv().unwrap(), "f2");
        assert_eq!(table.count(&flood), 2);
        assert_eq!(
            table.access("other", SessionKind::Streamable, None),
            Access::Allowed,
            "another caller's session is never touched"
        );
        // Unknown addresses are not capped on their own.
        for i in 0..5 {
            table.admit(
                &format!("u{i}"),
                SessionKind::Streamable,
                None,
                CapKey::Unknown,
                None,
            );
        }
        assert_eq!(table.count(&CapKey::Unknown), 5);
    }
}
