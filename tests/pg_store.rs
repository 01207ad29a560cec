//! The task store on PostgreSQL, against a real server (`tests/pgserver`), and the same checks
//! on the embedded SQLite store: what one store does the other does. Then what only a shared
//! store must do: a task claimed by exactly one of several replicas, a cancel made on one
//! replica reaching the one that runs the task, a dead replica's lease expiring (its WebSocket
//! runs adopted, its HTTP tasks failed as interrupted), a database that is down at start or goes
//! away and comes back, and a schema from a newer binary.

#![allow(clippy::unwrap_used)]

mod pgserver;

use std::{collections::HashMap, sync::Arc, time::Duration};

use openclaw_mcp::tasks::{
    pg::{LEASE, PgBackend, SCHEMA_VERSION},
    store::{
        CancelOutcome, Finish, Inserted, Limits, Location, SqliteBackend, StoreError, TaskBackend,
    },
    task::{NewTask, TaskRecord, TaskStatus},
};
use pgserver::PgServer;

fn task(owner: &str, priority: i64, message: &str) -> NewTask {
    NewTask {
        owner: owner.into(),
        instance: "default".into(),
        session_id: Some("s".into()),
        agent_id: None,
        message: message.into(),
        images: vec!["data:image/png;base64,AAAA".into()],
        priority,
    }
}

fn stored(i: Inserted) -> TaskRecord {
    match i {
        Inserted::Stored(t) => *t,
        other => panic!("under the limits, got {other:?}"),
    }
}

fn done(status: TaskStatus, at: i64) -> Finish {
    Finish {
        status,
        result: Some("answer".into()),
        error: None,
        progress_chars: 6,
        last_activity_at: Some(at),
        at,
    }
}

async fn sql(url: &str, statement: &str) -> u64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let n = client.execute(statement, &[]).await.unwrap();
    drop(client);
    let _ = driver.await;
    n
}

/// The behaviour every store shares, through the trait the supervisor uses.
async fn exercise(store: Arc<dyn TaskBackend>) {
    let limits = Limits {
        total: 4,
        owner: 2,
        ended: Vec::new(),
    };
    let a = stored(
        store
            .insert(task("alice", 0, "a"), limits.clone(), 10)
            .await
            .unwrap(),
    );
    let b = stored(
        store
            .insert(task("alice", 5, "b"), limits.clone(), 11)
            .await
            .unwrap(),
    );
    assert_eq!(b.images, ["data:image/png;base64,AAAA"]);
    // Alice's share (2) is taken; Bob still has room, up to the total (4).
    assert_eq!(
        store
            .insert(task("alice", 0, "c"), limits.clone(), 12)
            .await
            .unwrap(),
        Inserted::ShareReached
    );
    let c = stored(
        store
            .insert(task("bob", 5, "c"), limits.clone(), 13)
            .await
            .unwrap(),
    );
    let d = stored(
        store
            .insert(task("bob", -1, "d"), limits.clone(), 14)
            .await
            .unwrap(),
    );
    assert_eq!(
        store
            .insert(task("carol", 0, "e"), limits.clone(), 15)
            .await
            .unwrap(),
        Inserted::LimitReached
    );
    // Priority first, then age.
    let order: Vec<String> = store
        .pending()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        order,
        [b.id.clone(), c.id.clone(), a.id.clone(), d.id.clone()]
    );
    // Claimed once; claiming again by the same runner (a lost answer) gives it back.
    let claimed = store.claim(b.id.clone(), 20).await.unwrap().unwrap();
    assert_eq!(
        (claimed.status, claimed.started_at),
        (TaskStatus::Running, Some(20))
    );
    assert_eq!(claimed.message.as_deref(), Some("b"));
    assert!(store.claim(b.id.clone(), 21).await.unwrap().is_some());
    assert!(
        store
            .set_run(b.id.clone(), "{\"run_id\":\"r\"}".into())
            .await
            .unwrap()
    );
    // A task that ended but whose end is not written does not count against the limits.
    let with_ended = Limits {
        ended: vec![b.id.clone()],
        ..limits.clone()
    };
    let e = stored(
        store
            .insert(task("alice", 0, "e"), with_ended, 22)
            .await
            .unwrap(),
    );
    assert!(
        store
            .finish(b.id.clone(), done(TaskStatus::Completed, 30))
            .await
            .unwrap()
    );
    let b_now = store
        .get(b.id.clone(), "alice".into(), 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b_now.status, TaskStatus::Completed);
    assert_eq!(b_now.result.as_deref(), Some("answer"));
    assert_eq!(
        (b_now.message, b_now.run, b_now.images.len()),
        (None, None, 0)
    );
    // Cancels: a pending one, a finished one (refused), another owner's (not found).
    assert_eq!(
        store
            .cancel(a.id.clone(), "alice".into(), 40, 0)
            .await
            .unwrap(),
        CancelOutcome::Cancelled {
            previous: TaskStatus::Pending,
            runner: None
        }
    );
    assert_eq!(
        store
            .cancel(b.id.clone(), "alice".into(), 41, 0)
            .await
            .unwrap(),
        CancelOutcome::NotCancellable(TaskStatus::Completed)
    );
    assert_eq!(
        store
            .cancel(c.id.clone(), "alice".into(), 42, 0)
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    assert!(
        store
            .get(c.id.clone(), "alice".into(), 0)
            .await
            .unwrap()
            .is_none()
    );
    // A running task cancelled names its runner; its end is then not written over `cancelled`.
    store.claim(c.id.clone(), 50).await.unwrap().unwrap();
    assert_eq!(
        store
            .cancel(c.id.clone(), "bob".into(), 51, 0)
            .await
            .unwrap(),
        CancelOutcome::Cancelled {
            previous: TaskStatus::Running,
            runner: Some(store.runner().to_string())
        }
    );
    assert!(
        !store
            .finish(c.id.clone(), done(TaskStatus::Completed, 52))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get(c.id.clone(), "bob".into(), 0)
            .await
            .unwrap()
            .unwrap()
            .status,
        TaskStatus::Cancelled
    );
    let listed: Vec<String> = store
        .list("alice".into(), 0)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, [b.id.clone(), a.id.clone(), e.id.clone()]);
    // Retention: finished before the cutoff is hidden, then deleted.
    assert_eq!(store.list("alice".into(), 35).await.unwrap().len(), 2);
    let m = store.maintain(45, 60).await.unwrap();
    assert_eq!(m.expired, 2, "{m:?}");
    // Shutdown fails this runner's running tasks as interrupted.
    store.claim(d.id.clone(), 70).await.unwrap().unwrap();
    assert_eq!(store.interrupt_mine(71).await.unwrap(), 1);
    let d_now = store
        .get(d.id.clone(), "bob".into(), 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d_now.status, TaskStatus::Failed);
    assert!(d_now.error.unwrap().contains("interrupted"));
}

#[actix_rt::test]
async fn the_embedded_store_and_postgresql_behave_the_same() {
    exercise(Arc::new(SqliteBackend::start(&Location::Memory).unwrap())).await;
    let Some(pg) = PgServer::start() else { return };
    exercise(Arc::new(PgBackend::start(&pg.url).unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pending_task_is_claimed_by_exactly_one_of_three_replicas() {
    let Some(pg) = PgServer::start() else { return };
    let replicas: Vec<Arc<PgBackend>> = (0..3)
        .map(|_| Arc::new(PgBackend::start(&pg.url).unwrap()))
        .collect();
    let mut ids = Vec::new();
    for i in 0..90 {
        let t = stored(
            replicas[i % 3]
                .insert(
                    task("o", 0, &format!("m{i}")),
                    Limits::total(1000),
                    i as i64,
                )
                .await
                .unwrap(),
        );
        ids.push(t.id);
    }
    // Every replica tries to claim every task, all at once.
    let mut racers = Vec::new();
    for replica in &replicas {
        let replica = replica.clone();
        let ids = ids.clone();
        racers.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for id in ids {
                if replica.claim(id.clone(), 100).await.unwrap().is_some() {
                    won.push(id);
                }
            }
            won
        }));
    }
    let mut winners: HashMap<String, usize> = HashMap::new();
    for racer in racers {
        for id in racer.await.unwrap() {
            *winners.entry(id).or_default() += 1;
        }
    }
    assert_eq!(winners.len(), 90, "every task claimed");
    assert!(winners.values().all(|&n| n == 1), "a task claimed twice");
    // The limits hold across replicas too: 20 inserts at once against a total of 100 with 90
    // unfinished: exactly 10 get in.
    let mut inserts = Vec::new();
    for i in 0..20 {
        let replica = replicas[i % 3].clone();
        inserts.push(tokio::spawn(async move {
            replica
                .insert(task("o", 0, "x"), Limits::total(100), 200)
                .await
                .unwrap()
        }));
    }
    let mut admitted = 0;
    for insert in inserts {
        if matches!(insert.await.unwrap(), Inserted::Stored(_)) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_replica_reaches_the_replica_that_runs_the_task() {
    let Some(pg) = PgServer::start() else { return };
    let runs = PgBackend::start(&pg.url).unwrap();
    let other = PgBackend::start(&pg.url).unwrap();
    let mut cancels = runs.cancellations().unwrap();
    assert!(runs.cancellations().is_none(), "taken once");
    let t = stored(
        runs.insert(task("o", 0, "m"), Limits::total(10), 1)
            .await
            .unwrap(),
    );
    runs.claim(t.id.clone(), 2).await.unwrap().unwrap();
    // The listener is up once a notification of a first cancel arrives; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = std::time::Instant::now();
    assert_eq!(
        other.cancel(t.id.clone(), "o".into(), 3, 0).await.unwrap(),
        CancelOutcome::Cancelled {
            previous: TaskStatus::Running,
            runner: Some(runs.runner().to_string())
        }
    );
    let heard = tokio::time::timeout(Duration::from_secs(1), cancels.recv())
        .await
        .expect("the running replica heard of the cancel within 1 s")
        .unwrap();
    assert_eq!(heard, t.id);
    eprintln!("cancel heard across replicas after {:?}", sent.elapsed());
    assert!(
        !runs
            .finish(t.id.clone(), done(TaskStatus::Completed, 4))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_runs_are_adopted_and_its_http_tasks_failed_once_its_lease_expires() {
    let Some(pg) = PgServer::start() else { return };
    let dead = PgBackend::start(&pg.url).unwrap();
    let survivor = PgBackend::start(&pg.url).unwrap();
    let ws = stored(
        dead.insert(task("o", 0, "ws"), Limits::total(10), 1)
            .await
            .unwrap(),
    );
    let http = stored(
        dead.insert(task("o", 0, "http"), Limits::total(10), 1)
            .await
            .unwrap(),
    );
    let waiting = stored(
        dead.insert(task("o", 0, "pending"), Limits::total(10), 1)
            .await
            .unwrap(),
    );
    dead.claim(ws.id.clone(), 2).await.unwrap().unwrap();
    dead.claim(http.id.clone(), 2).await.unwrap().unwrap();
    assert!(
        dead.set_run(ws.id.clone(), "{\"run_id\":\"run-1\"}".into())
            .await
            .unwrap()
    );
    dead.ready().await.unwrap();
    let now = openclaw_mcp::util::now_ms();
    // Within the lease: nothing is touched.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = survivor.maintain(0, now).await.unwrap();
    assert_eq!((m.interrupted, m.adopted.len()), (0, 0), "{m:?}");
    // The replica dies (its heartbeat stops); its last beat is older than the lease.
    let dead_runner = dead.runner().to_string();
    drop(dead);
    sql(
        &pg.url,
        &format!(
            "UPDATE openclaw_mcp.runners SET seen_at = {} WHERE id = '{dead_runner}'",
            now - LEASE.as_millis() as i64 - 1
        ),
    )
    .await;
    let m = survivor.maintain(0, now).await.unwrap();
    assert_eq!(m.interrupted, 1, "{m:?}");
    assert_eq!(m.adopted.len(), 1);
    assert_eq!(m.adopted[0].id, ws.id);
    assert_eq!(m.adopted[0].run.as_deref(), Some("{\"run_id\":\"run-1\"}"));
    let http_now = survivor
        .get(http.id.clone(), "o".into(), 0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(http_now.status, TaskStatus::Failed);
    assert!(http_now.error.unwrap().contains("interrupted"));
    // The adopted run is the survivor's now: it finishes it; the pending task runs there too.
    assert!(
        survivor
            .finish(ws.id.clone(), done(TaskStatus::Completed, now))
            .await
            .unwrap()
    );
    assert!(
        survivor
            .claim(waiting.id.clone(), now)
            .await
            .unwrap()
            .is_some()
    );
    // A second pass finds nothing more.
    let m = survivor.maintain(0, now).await.unwrap();
    assert_eq!((m.interrupted, m.adopted.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_down_at_start_or_gone_for_a_while_is_a_clear_error_then_recovers() {
    let Some(pg) = PgServer::start() else { return };
    pg.stop();
    let url = format!(
        "postgres://postgres:secret-pw-123456@127.0.0.1:{}/postgres",
        pg.port
    );
    let store = PgBackend::start(&url).unwrap();
    let down = store
        .insert(task("o", 0, "m"), Limits::total(10), 1)
        .await
        .unwrap_err();
    let text = down.to_string();
    assert!(matches!(down, StoreError::Unavailable(_)), "{down:?}");
    assert!(
        text.starts_with(&format!(
            "store unavailable: cannot reach PostgreSQL at postgresql://127.0.0.1:{}/postgres: ",
            pg.port
        )),
        "{text}"
    );
    assert!(!text.contains("secret-pw"), "{text}");
    // Back: the same store works, no restart.
    pg.restart();
    let t = stored(
        store
            .insert(task("o", 0, "m"), Limits::total(10), 1)
            .await
            .unwrap(),
    );
    // Gone again mid-life, and back.
    pg.stop();
    assert!(store.get(t.id.clone(), "o".into(), 0).await.is_err());
    pg.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.get(t.id.clone(), "o".into(), 0).await {
            Ok(found) => {
                assert_eq!(found.unwrap().id, t.id);
                break;
            }
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "not recovered: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    // The database is recreated empty under the running bridge: one call says so, the next
    // makes the tables again.
    sql(&pg.url, "DROP SCHEMA openclaw_mcp CASCADE").await;
    let gone = store.get(t.id.clone(), "o".into(), 0).await.unwrap_err();
    assert!(
        gone.to_string().contains("the task tables are missing"),
        "{gone}"
    );
    assert!(
        store
            .get(t.id.clone(), "o".into(), 0)
            .await
            .unwrap()
            .is_none()
    );
    stored(
        store
            .insert(task("o", 0, "m"), Limits::total(10), 5)
            .await
            .unwrap(),
    );
}

#[tokio::test]
async fn a_schema_more_than_one_version_newer_is_refused_and_one_newer_is_used() {
    let Some(pg) = PgServer::start() else { return };
    PgBackend::start(&pg.url).unwrap().ready().await.unwrap();
    // The next release (one version newer, additive) runs beside this one in a rolling deploy.
    sql(
        &pg.url,
        &format!(
            "UPDATE openclaw_mcp.schema_version SET version = {} WHERE component = 'tasks'",
            SCHEMA_VERSION + 1
        ),
    )
    .await;
    PgBackend::start(&pg.url).unwrap().ready().await.unwrap();
    sql(
        &pg.url,
        &format!(
            "UPDATE openclaw_mcp.schema_version SET version = {} WHERE component = 'tasks'",
            SCHEMA_VERSION + 2
        ),
    )
    .await;
    let refused = PgBackend::start(&pg.url)
        .unwrap()
        .ready()
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("written by a newer openclaw-mcp"),
        "{refused}"
    );
}
