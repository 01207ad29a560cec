//! The request streams of initialize-era Streamable HTTP sessions, kept in our layer around
//! rmcp's session manager (which is neither patched nor given an event store):
//!
//! - **Resumption.** rmcp 3.11.0 drops a request's replay cache as soon as it routes the final
//!   answer — also when the client's stream was down at that moment — so an answer produced
//!   while the client was away was lost: its resume (`GET` + `Last-Event-ID`) got an empty stream
//!   and the call hung until the client gave up (rust-sdk PR #1165, unreleased). Here a pump
//!   reads each request stream from rmcp whether or not a client is attached, keeps the events
//!   that the client has not acknowledged, hands them to the client attached now, and serves
//!   every `resume` of a request stream itself: the events after the `Last-Event-ID`, then live
//!   ones while the call runs.
//! - **One request per id.** A request whose JSON-RPC id is already in flight in its session (a
//!   client bug, but a real one) is answered `-32600` on its own HTTP response and never reaches
//!   rmcp, where it would take over the first call's routing and cancellation. The id is free
//!   again once the pump has seen the first call's answer (or its stream ended).
//!
//! rmcp's event-store hook would also make answers survive, but it makes rmcp keep stateless
//! (2026-07-28) requests running when their stream closes, which that era defines as the
//! cancellation; the stateless era never reaches this module, so it keeps that rule.
//!
//! # Memory
//!
//! Per request stream: at most [`MAX_EVENTS`] events that carry a message (progress, the answer),
//! sharing the `Arc` of each message with rmcp's own cache while the call runs; events up to the
//! client's `Last-Event-ID` are dropped when it resumes. A stream is forgotten when its answer has
//! been handed to a client's connection in full, when its session closes, or
//! [`COMPLETED_STREAM_TTL`](super::http) after the call ended — so what stays behind is only the
//! answers of calls whose client was away when they ended (`/health` `sessions.heldAnswers`),
//! each for at most that long.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{Stream, StreamExt};
use rmcp::{
    model::{ErrorData, RequestId, ServerJsonRpcMessage},
    transport::streamable_http_server::session::{ServerSseMessage, SessionId},
};
use tokio::{
    sync::{mpsc, oneshot, watch},
    time::Instant,
};

/// Events kept per request stream for a resume. A chat sends progress now and then and one
/// answer; a client resumes within rmcp's 3 s retry hint, so it misses a few events at most.
/// Past this, the oldest unacknowledged progress is dropped (the answer is always the newest).
pub(crate) const MAX_EVENTS: usize = 32;

/// Events buffered between the pump and the connection of the client attached now (rmcp's
/// own per-stream channel capacity).
const CLIENT_CHANNEL: usize = 16;

/// A request stream: its session and rmcp's number for it (the `N` of event ids `i/N`).
type Key = (SessionId, u64);

/// The index and the stream number of a request stream's event id (`i/N`); `None` for the
/// standalone stream's ids (`i`) and for anything else.
fn parse_event_id(id: &str) -> Option<(usize, u64)> {
    let (index, stream) = id.split_once('/')?;
    Some((index.parse().ok()?, stream.parse().ok()?))
}

/// The index of an event rmcp numbered (0 for one without an id: never kept).
fn index_of(event: &ServerSseMessage) -> usize {
    event
        .event_id
        .as_deref()
        .and_then(parse_event_id)
        .map_or(0, |(index, _)| index)
}

/// Whether an event is a request's final message (its answer or its error).
fn is_final(event: &ServerSseMessage) -> bool {
    matches!(
        event.message.as_deref(),
        Some(ServerJsonRpcMessage::Response(_) | ServerJsonRpcMessage::Error(_))
    )
}

/// The answer to a request that reused the id of a request in flight in its session.
pub(crate) fn duplicate_id_error(id: &RequestId) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::error(
        ErrorData::invalid_request(
            format!(
                "Invalid Request: id {id} is already used by a request in flight in this session; \
                 wait for its answer or use another id"
            ),
            None,
        ),
        Some(id.clone()),
    )
}

/// What is kept of one request stream.
struct Record {
    /// Events with a message, after the client's last acknowledged one, oldest first.
    events: VecDeque<ServerSseMessage>,
    /// The connection of the client attached now, if any.
    live: Option<mpsc::Sender<ServerSseMessage>>,
    /// Which attachment is current: bumped by every resume, so that an older connection neither
    /// takes events meant for the newer one nor counts as the delivery.
    generation: watch::Sender<u64>,
    /// When the call's stream ended (answer, cancellation or session end); `None` while it runs.
    completed_at: Option<Instant>,
    /// Whether the call's answer is among the events.
    answered: bool,
    /// Dropped with the record: tells the pump, waiting out the expiry, that it may stop.
    _gone: oneshot::Sender<()>,
}

impl Record {
    fn push(&mut self, event: ServerSseMessage) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    fn generation(&self) -> u64 {
        *self.generation.borrow()
    }
}

/// Everything under the one lock.
#[derive(Default)]
struct Table {
    /// Request streams by session and stream number.
    streams: HashMap<Key, Record>,
    /// The JSON-RPC ids of the requests in flight, per session.
    in_flight: HashMap<SessionId, HashSet<RequestId>>,
}

impl Table {
    fn end(&mut self, session: &SessionId, id: &RequestId) {
        if let Some(ids) = self.in_flight.get_mut(session) {
            ids.remove(id);
            if ids.is_empty() {
                self.in_flight.remove(session);
            }
        }
    }
}

/// The request streams and requests in flight of every initialize-era session.
pub(crate) struct RequestStreams {
    table: Mutex<Table>,
    /// How long a stream is kept after its call ended when no client took its answer.
    ttl: Duration,
}

impl RequestStreams {
    /// Streams whose undelivered answers are kept for `ttl` after their call ended.
    pub fn new(ttl: Duration) -> Self {
        RequestStreams {
            table: Mutex::new(Table::default()),
            ttl,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic while holding this lock leaves plain data behind, still consistent enough to
        // serve from: take it rather than fail every later request of every session.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records request `id` of `session` as in flight; `false` when it already is.
    pub fn begin(&self, session: &SessionId, id: &RequestId) -> bool {
        self.lock()
            .in_flight
            .entry(session.clone())
            .or_default()
            .insert(id.clone())
    }

    /// Request `id` of `session` is no longer in flight.
    pub fn end(&self, session: &SessionId, id: &RequestId) {
        self.lock().end(session, id);
    }

    /// Forgets everything of a session that closed.
    pub fn close_session(&self, session: &SessionId) {
        let mut table = self.lock();
        table.in_flight.remove(session);
        table.streams.retain(|(s, _), _| s != session);
    }

    /// Answers of calls that ended while no client was attached, kept for a resume.
    pub fn held_answers(&self) -> usize {
        self.lock()
            .streams
            .values()
            .filter(|r| r.completed_at.is_some() && r.answered)
            .count()
    }

    /// Takes over rmcp's stream for `request` (in flight in `session`, see [`Self::begin`]):
    /// a pump reads it to its end whatever becomes of the client; the returned stream is the
    /// client's connection to it.
    pub fn attach<S>(
        self: &Arc<Self>,
        session: SessionId,
        request: Option<RequestId>,
        inner: S,
    ) -> ClientStream
    where
        S: Stream<Item = ServerSseMessage> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(CLIENT_CHANNEL);
        tokio::spawn(self.clone().pump(session.clone(), request, inner, tx));
        ClientStream {
            replay: Vec::new().into_iter(),
            live: Some(rx),
            owner: self.clone(),
            session,
            key: None,
            generation: 0,
            ended: false,
        }
    }

    /// A resume of one of the request streams kept here: the events after `last_event_id`,
    /// then, while the call runs, its next ones. `None` when the id names no stream kept here
    /// (the standalone stream, a stream of another session, one forgotten): rmcp answers it.
    pub fn resume(
        self: &Arc<Self>,
        session: &SessionId,
        last_event_id: &str,
    ) -> Option<ClientStream> {
        let (acknowledged, stream) = parse_event_id(last_event_id.trim())?;
        let key = (session.clone(), stream);
        let mut table = self.lock();
        let record = table.streams.get_mut(&key)?;
        // What the client acknowledged is never needed again.
        record.events.retain(|e| index_of(e) > acknowledged);
        let replay: Vec<ServerSseMessage> = record.events.iter().cloned().collect();
        record.generation.send_modify(|g| *g += 1);
        let generation = record.generation();
        let live = if record.completed_at.is_none() {
            let (tx, rx) = mpsc::channel(CLIENT_CHANNEL);
            record.live = Some(tx);
            Some(rx)
        } else {
            record.live = None;
            None
        };
        tracing::debug!(
            replayed = replay.len(),
            running = live.is_some(),
            "request stream resumed"
        );
        Some(ClientStream {
            replay: replay.into_iter(),
            live,
            owner: self.clone(),
            session: session.clone(),
            key: Some(key),
            generation,
            ended: false,
        })
    }

    /// A client's connection took every event of a finished stream: nothing is left to resume.
    fn delivered(&self, key: &Key, generation: u64) {
        let mut table = self.lock();
        if table
            .streams
            .get(key)
            .is_some_and(|r| r.completed_at.is_some() && r.generation() == generation)
        {
            table.streams.remove(key);
        }
    }

    /// Reads rmcp's stream for one request to its end: keeps its events, forwards them to the
    /// client attached now, frees the request id at the answer, and after the end keeps an
    /// undelivered answer for the TTL.
    async fn pump<S>(
        self: Arc<Self>,
        session: SessionId,
        mut request: Option<RequestId>,
        inner: S,
        first: mpsc::Sender<ServerSseMessage>,
    ) where
        S: Stream<Item = ServerSseMessage> + Send + 'static,
    {
        let mut inner = std::pin::pin!(inner);
        // The first client's connection, until the stream's record holds it.
        let mut first = Some(first);
        let mut key: Option<Key> = None;
        let mut generations: Option<watch::Receiver<u64>> = None;
        let mut gone: Option<oneshot::Receiver<()>> = None;
        while let Some(event) = inner.next().await {
            let answer = is_final(&event);
            let target = {
                let mut table = self.lock();
                if key.is_none()
                    && let Some((_, stream)) = event.event_id.as_deref().and_then(parse_event_id)
                {
                    let (generation, watcher) = watch::channel(0);
                    let (gone_tx, gone_rx) = oneshot::channel();
                    let k = (session.clone(), stream);
                    table.streams.insert(
                        k.clone(),
                        Record {
                            events: VecDeque::new(),
                            live: first.take(),
                            generation,
                            completed_at: None,
                            answered: false,
                            _gone: gone_tx,
                        },
                    );
                    key = Some(k);
                    generations = Some(watcher);
                    gone = Some(gone_rx);
                }
                if answer && let Some(id) = request.take() {
                    table.end(&session, &id);
                }
                match key.as_ref().and_then(|k| table.streams.get_mut(k)) {
                    Some(record) => {
                        if event.message.is_some() {
                            record.push(event.clone());
                        }
                        record.answered |= answer;
                        record.live.clone().map(|tx| (tx, record.generation()))
                    }
                    // Events without a stream number (never from rmcp's session layer), or a
                    // record already forgotten with its session: only the first client gets them.
                    None => first.clone().map(|tx| (tx, 0)),
                }
            };
            let Some((tx, generation)) = target else {
                continue;
            };
            // Hand the event over, unless a resume replaces this connection meanwhile (the
            // event is kept: the resume replays it).
            let sent = match generations.as_mut() {
                Some(watcher) => tokio::select! {
                    sent = tx.send(event) => sent.is_ok(),
                    _ = watcher.wait_for(|g| *g != generation) => true,
                },
                None => tx.send(event).await.is_ok(),
            };
            if !sent && let Some(k) = &key {
                // The client went away: the events wait here for its resume.
                let mut table = self.lock();
                if let Some(record) = table.streams.get_mut(k)
                    && record.generation() == generation
                {
                    record.live = None;
                }
            }
        }
        drop(first);
        let completed_at = Instant::now();
        {
            let mut table = self.lock();
            if let Some(id) = request.take() {
                table.end(&session, &id);
            }
            if let Some(record) = key.as_ref().and_then(|k| table.streams.get_mut(k)) {
                record.completed_at = Some(completed_at);
                // Ends the attached client's stream once it has taken what it was sent.
                record.live = None;
            }
        }
        let (Some(key), Some(gone)) = (key, gone) else {
            return;
        };
        // Kept for the TTL unless delivered or closed before (then `gone` resolves).
        tokio::select! {
            _ = tokio::time::sleep_until(completed_at + self.ttl) => {
                let mut table = self.lock();
                if table.streams.get(&key).is_some_and(|r| r.completed_at == Some(completed_at))
                    && table.streams.remove(&key).is_some_and(|r| r.answered)
                {
                    tracing::debug!("an answer no client resumed for was dropped after the TTL");
                }
            }
            _ = gone => {}
        }
    }
}

/// A client's connection to one request stream: replayed events first, then live ones. When
/// it reaches the end of a finished stream, everything was handed over and nothing is kept.
pub(crate) struct ClientStream {
    /// Events of a resume, sent before the live ones.
    replay: std::vec::IntoIter<ServerSseMessage>,
    /// Events from the pump while the call runs.
    live: Option<mpsc::Receiver<ServerSseMessage>>,
    owner: Arc<RequestStreams>,
    session: SessionId,
    /// The stream this connection reads (learnt from the first event id of a new stream).
    key: Option<Key>,
    /// The attachment this connection is.
    generation: u64,
    /// Whether the end was seen (and reported) already.
    ended: bool,
}

impl Stream for ClientStream {
    type Item = ServerSseMessage;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(event) = this.replay.next() {
            return Poll::Ready(Some(event));
        }
        let polled = match this.live.as_mut() {
            Some(live) => live.poll_recv(cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(Some(event)) => {
                if this.key.is_none()
                    && let Some((_, stream)) = event.event_id.as_deref().and_then(parse_event_id)
                {
                    this.key = Some((this.session.clone(), stream));
                }
                Poll::Ready(Some(event))
            }
            Poll::Ready(None) => {
                if !this.ended {
                    this.ended = true;
                    if let Some(key) = &this.key {
                        this.owner.delivered(key, this.generation);
                    }
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{
        NumberOrString, ProgressNotification, ProgressNotificationParam, ProgressToken,
        ServerNotification, ServerResult,
    };

    use super::*;

    const TTL: Duration = Duration::from_secs(10);

    fn session() -> SessionId {
        "session-a".into()
    }

    fn priming(stream: u64) -> ServerSseMessage {
        ServerSseMessage::priming(format!("0/{stream}"), Duration::from_secs(3))
    }

    fn progress(index: usize, stream: u64) -> ServerSseMessage {
        let note =
            ProgressNotificationParam::new(ProgressToken(NumberOrString::Number(1)), index as f64);
        let message = ServerJsonRpcMessage::notification(ServerNotification::ProgressNotification(
            ProgressNotification::new(note),
        ));
        ServerSseMessage::new(format!("{index}/{stream}"), message)
    }

    fn answer(index: usize, stream: u64, id: i64) -> ServerSseMessage {
        let message =
            ServerJsonRpcMessage::response(ServerResult::empty(()), NumberOrString::Number(id));
        ServerSseMessage::new(format!("{index}/{stream}"), message)
    }

    /// rmcp's side of one request stream, fed by the test.
    fn rmcp_stream() -> (
        mpsc::Sender<ServerSseMessage>,
        impl Stream<Item = ServerSseMessage> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::channel(64);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
            );
        (tx, stream)
    }

    async fn ids_of(stream: ClientStream) -> Vec<String> {
        stream
            .map(|e| e.event_id.unwrap_or_default())
            .collect()
            .await
    }

    /// Lets the pump task run until it waits again.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_produced_while_nobody_listens_is_replayed_once() {
        let streams = Arc::new(RequestStreams::new(TTL));
        let id = RequestId::Number(7);
        assert!(streams.begin(&session(), &id));
        let (rmcp, inner) = rmcp_stream();
        let mut client = streams.attach(session(), Some(id.clone()), inner);
        rmcp.send(priming(4)).await.unwrap();
        assert_eq!(
            client.next().await.unwrap().event_id.as_deref(),
            Some("0/4")
        );
        drop(client); // the connection goes away
        rmcp.send(progress(1, 4)).await.unwrap();
        rmcp.send(answer(2, 4, 7)).await.unwrap();
        drop(rmcp); // rmcp ends the request stream after the answer
        settle().await;
        assert!(streams.begin(&session(), &id), "the answer frees the id");
        streams.end(&session(), &id);
        assert_eq!(streams.held_answers(), 1);

        let resumed = streams.resume(&session(), "0/4").unwrap();
        assert_eq!(ids_of(resumed).await, ["1/4", "2/4"]);
        assert_eq!(streams.held_answers(), 0, "delivered: nothing kept");
        assert!(streams.resume(&session(), "0/4").is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_while_the_call_runs_gets_the_missed_then_the_live_events() {
        let streams = Arc::new(RequestStreams::new(TTL));
        let (rmcp, inner) = rmcp_stream();
        let mut client = streams.attach(session(), Some(RequestId::Number(1)), inner);
        rmcp.send(priming(0)).await.unwrap();
        rmcp.send(progress(1, 0)).await.unwrap();
        assert_eq!(
            client.next().await.unwrap().event_id.as_deref(),
            Some("0/0")
        );
        assert_eq!(
            client.next().await.unwrap().event_id.as_deref(),
            Some("1/0")
        );
        drop(client);
        rmcp.send(progress(2, 0)).await.unwrap();
        settle().await;
        // The client saw 1/0 before its connection broke.
        let resumed = streams.resume(&session(), "1/0").unwrap();
        rmcp.send(answer(3, 0, 1)).await.unwrap();
        drop(rmcp);
        assert_eq!(ids_of(resumed).await, ["2/0", "3/0"]);
        settle().await;
        assert_eq!(streams.held_answers(), 0);
        assert!(streams.lock().streams.is_empty());
        assert!(streams.lock().in_flight.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_newer_resume_takes_over_from_an_older_connection() {
        let streams = Arc::new(RequestStreams::new(TTL));
        let (rmcp, inner) = rmcp_stream();
        let mut client = streams.attach(session(), None, inner);
        rmcp.send(priming(2)).await.unwrap();
        client.next().await.unwrap();
        let older = streams.resume(&session(), "0/2").unwrap();
        let newer = streams.resume(&session(), "0/2").unwrap();
        rmcp.send(answer(1, 2, 5)).await.unwrap();
        drop(rmcp);
        assert_eq!(ids_of(newer).await, ["1/2"]);
        assert!(ids_of(older).await.is_empty(), "the older one just ends");
        assert!(ids_of(client).await.is_empty());
        settle().await;
        assert!(streams.lock().streams.is_empty(), "the newer one took it");
    }

    #[tokio::test(start_paused = true)]
    async fn undelivered_answers_expire_with_the_ttl_and_are_bounded() {
        let streams = Arc::new(RequestStreams::new(TTL));
        let (rmcp, inner) = rmcp_stream();
        let client = streams.attach(session(), None, inner);
        drop(client);
        rmcp.send(priming(9)).await.unwrap();
        for i in 1..=100 {
            rmcp.send(progress(i, 9)).await.unwrap();
        }
        rmcp.send(answer(101, 9, 3)).await.unwrap();
        drop(rmcp);
        settle().await;
        {
            let table = streams.lock();
            let record = table.streams.values().next().unwrap();
            assert_eq!(record.events.len(), MAX_EVENTS);
            assert_eq!(
                index_of(record.events.back().unwrap()),
                101,
                "the answer is kept"
            );
        }
        tokio::time::advance(TTL - Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(streams.held_answers(), 1);
        tokio::time::advance(Duration::from_millis(2)).await;
        settle().await;
        assert_eq!(streams.held_answers(), 0);
        assert!(
            streams.resume(&session(), "0/9").is_none(),
            "rmcp answers it then"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ids_are_in_flight_once_per_session_and_sessions_do_not_mix() {
        let streams = Arc::new(RequestStreams::new(TTL));
        let a: SessionId = "a".into();
        let b: SessionId = "b".into();
        let id = RequestId::String("x".into());
        assert!(streams.begin(&a, &id));
        assert!(!streams.begin(&a, &id), "a duplicate in the same session");
        assert!(streams.begin(&b, &id), "another session's ids are its own");
        let (rmcp, inner) = rmcp_stream();
        let client = streams.attach(a.clone(), Some(id.clone()), inner);
        rmcp.send(priming(0)).await.unwrap();
        settle().await;
        assert!(
            streams.resume(&b, "0/0").is_none(),
            "another session's stream"
        );
        streams.close_session(&a);
        assert!(streams.begin(&a, &id), "a closed session forgets its ids");
        assert!(streams.resume(&a, "0/0").is_none());
        drop((client, rmcp));
        let error = duplicate_id_error(&id);
        let text = serde_json::to_string(&error).unwrap();
        assert!(
            text.contains("-32600") && text.contains("\"id\":\"x\""),
            "{text}"
        );
    }

    #[test]
    fn event_ids_are_parsed_as_rmcp_writes_them() {
        assert_eq!(parse_event_id("3/17"), Some((3, 17)));
        assert_eq!(parse_event_id("3"), None, "the standalone stream");
        assert_eq!(parse_event_id("x/1"), None);
        assert_eq!(parse_event_id("1/-1"), None);
    }
}
