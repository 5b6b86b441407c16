//! Embedded store: SQLite catalog + raw upload files, one writer thread with
//! group commit, a pool of read connections, background retention.
//!
//! Layout and guarantees are documented in `docs/STORAGE.md`.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rusqlite::{params, Connection, OptionalExtension};

use crate::decode::{self, Frame};
use crate::intake::Upload;

/// Slack used when updating `last_seen_ns` of frames/stacks: the column is
/// only rewritten when it is older than this, so hot stacks cost no write.
const LAST_SEEN_SLACK_NS: i64 = 3_600_000_000_000;
/// Profiles longer than this are not found by range queries that start after
/// their start (ddtrace uploads every 60 s, emberscope similar).
pub const MAX_PROFILE_SPAN_NS: i64 = 3_600_000_000_000;
const MAX_BATCH: usize = 64;
const CACHE_LIMIT: usize = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("store writer is not running")]
    WriterGone,
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub retention: Duration,
    pub max_disk: Option<u64>,
}

enum Job {
    Ingest(Box<Upload>, tokio::sync::oneshot::Sender<Result<i64>>),
    Maintain(Option<tokio::sync::oneshot::Sender<Result<MaintainReport>>>),
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct MaintainReport {
    pub deleted_profiles: u64,
    pub deleted_stacks: u64,
    pub deleted_frames: u64,
    pub disk_bytes: u64,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Stats {
    pub uploads: AtomicU64,
    pub rejected: AtomicU64,
    pub bytes: AtomicU64,
}

pub struct Store {
    dir: PathBuf,
    tx: Mutex<mpsc::SyncSender<Job>>,
    readers: Mutex<Vec<Connection>>,
    stacks: RwLock<HashMap<i64, Arc<[i64]>>>,
    frames: RwLock<HashMap<i64, Arc<Frame>>>,
    pub stats: Stats,
    pub opts: StoreOptions,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    service TEXT NOT NULL,
    env TEXT NOT NULL,
    version TEXT NOT NULL,
    host TEXT NOT NULL,
    runtime_id TEXT NOT NULL,
    family TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    sample_count INTEGER NOT NULL,
    tags TEXT NOT NULL,
    event TEXT NOT NULL,
    provenance_id INTEGER,
    bytes INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS profiles_service_start ON profiles(service, start_ns);
CREATE INDEX IF NOT EXISTS profiles_start ON profiles(start_ns);
CREATE TABLE IF NOT EXISTS profile_tags(
    profile_id INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY(profile_id, key, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS profile_tags_kv ON profile_tags(key, value, profile_id);
CREATE TABLE IF NOT EXISTS blobs(
    profile_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    encoding TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY(profile_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sample_types(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    UNIQUE(name, unit)
);
CREATE TABLE IF NOT EXISTS profile_totals(
    profile_id INTEGER NOT NULL,
    type_id INTEGER NOT NULL,
    total INTEGER NOT NULL,
    PRIMARY KEY(profile_id, type_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS frames(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    file TEXT NOT NULL,
    line INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stacks(
    id INTEGER PRIMARY KEY,
    frames BLOB NOT NULL,
    last_seen_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS samples(
    profile_id INTEGER NOT NULL,
    type_id INTEGER NOT NULL,
    stack_id INTEGER NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY(profile_id, type_id, stack_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS provenance(
    id INTEGER PRIMARY KEY,
    hash INTEGER NOT NULL UNIQUE,
    json TEXT NOT NULL
);
INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', '1');
"#;

fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "cache_size", -16000)?;
    Ok(conn)
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

impl Store {
    /// Opens (creating if needed) the store in `dir` and starts its writer thread.
    pub fn open(dir: &Path, opts: StoreOptions) -> Result<Arc<Store>> {
        fs::create_dir_all(dir.join("blobs"))?;
        let db = dir.join("catalog.sqlite");
        let conn = open_conn(&db)?;
        conn.execute_batch(SCHEMA)?;
        sweep_orphans(&conn, dir)?;
        let (tx, rx) = mpsc::sync_channel::<Job>(1024);
        let store = Arc::new(Store {
            dir: dir.to_path_buf(),
            tx: Mutex::new(tx),
            readers: Mutex::new(Vec::new()),
            stacks: RwLock::new(HashMap::new()),
            frames: RwLock::new(HashMap::new()),
            stats: Stats::default(),
            opts: opts.clone(),
        });
        let wdir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("emberscope-writer".into())
            .spawn(move || {
                let mut w = Writer {
                    conn,
                    dir: wdir,
                    types: HashMap::new(),
                    opts,
                    seen_frames: HashMap::new(),
                    seen_stacks: HashMap::new(),
                    pending: Vec::new(),
                };
                w.run(rx);
            })?;
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores an upload; returns its profile id once it is durable on disk.
    pub async fn ingest(&self, upload: Upload) -> Result<i64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let size: u64 = upload.attachments.iter().map(|a| a.data.len() as u64).sum();
        self.send(Job::Ingest(Box::new(upload), tx))?;
        let id = rx.await.map_err(|_| StoreError::WriterGone)??;
        self.stats.uploads.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes.fetch_add(size, Ordering::Relaxed);
        Ok(id)
    }

    /// Runs retention and the disk cap now and waits for the result.
    pub async fn maintain(&self) -> Result<MaintainReport> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Maintain(Some(tx)))?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Queues a maintenance pass without waiting.
    pub fn maintain_later(&self) {
        let _ = self.tx.lock().try_send(Job::Maintain(None));
    }

    fn send(&self, job: Job) -> Result<()> {
        let tx = self.tx.lock().clone();
        // The channel is bounded: this blocks only when 1024 uploads are queued.
        tx.send(job).map_err(|_| StoreError::WriterGone)
    }

    /// Runs `f` with a pooled read connection.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = match self.readers.lock().pop() {
            Some(c) => c,
            None => {
                let c = open_conn(&self.dir.join("catalog.sqlite"))?;
                c.pragma_update(None, "query_only", true)?;
                c
            }
        };
        let out = f(&conn);
        let mut pool = self.readers.lock();
        if pool.len() < 8 {
            pool.push(conn);
        }
        out
    }

    /// Frames of the given stacks (leaf first), using the in-memory caches.
    pub fn resolve_stacks(
        &self,
        conn: &Connection,
        ids: impl Iterator<Item = i64>,
    ) -> Result<HashMap<i64, Arc<[i64]>>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.stacks.read();
            for id in ids {
                match cache.get(&id) {
                    Some(s) => {
                        out.insert(id, s.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let mut stmt = conn.prepare_cached("SELECT frames FROM stacks WHERE id = ?1")?;
            let mut fetched = Vec::with_capacity(missing.len());
            for id in missing {
                let blob: Option<Vec<u8>> = stmt.query_row([id], |r| r.get(0)).optional()?;
                if let Some(b) = blob {
                    let s: Arc<[i64]> = decode::decode_stack(&b).into();
                    out.insert(id, s.clone());
                    fetched.push((id, s));
                }
            }
            let mut cache = self.stacks.write();
            if cache.len() > CACHE_LIMIT {
                cache.clear();
            }
            cache.extend(fetched);
        }
        Ok(out)
    }

    pub fn resolve_frames(
        &self,
        conn: &Connection,
        ids: impl Iterator<Item = i64>,
    ) -> Result<HashMap<i64, Arc<Frame>>> {
        let mut out = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self.frames.read();
            for id in ids {
                if out.contains_key(&id) {
                    continue;
                }
                match cache.get(&id) {
                    Some(f) => {
                        out.insert(id, f.clone());
                    }
                    None => missing.push(id),
                }
            }
        }
        missing.sort_unstable();
        missing.dedup();
        if !missing.is_empty() {
            let mut stmt =
                conn.prepare_cached("SELECT name, file, line FROM frames WHERE id = ?1")?;
            let mut fetched = Vec::with_capacity(missing.len());
            for id in missing {
                let f = stmt
                    .query_row([id], |r| {
                        Ok(Frame {
                            name: r.get(0)?,
                            file: r.get(1)?,
                            line: r.get(2)?,
                        })
                    })
                    .optional()?;
                let f = Arc::new(f.unwrap_or(Frame {
                    name: "<missing frame>".into(),
                    file: String::new(),
                    line: 0,
                }));
                out.insert(id, f.clone());
                fetched.push((id, f));
            }
            let mut cache = self.frames.write();
            if cache.len() > CACHE_LIMIT {
                cache.clear();
            }
            cache.extend(fetched);
        }
        Ok(out)
    }

    /// Bytes used by the store: live database pages plus raw upload files.
    pub fn disk_usage(&self) -> Result<u64> {
        self.read(|c| disk_usage(c, &self.dir))
    }
}

fn disk_usage(conn: &Connection, _dir: &Path) -> Result<u64> {
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let blobs: i64 = conn.query_row("SELECT COALESCE(SUM(bytes), 0) FROM profiles", [], |r| {
        r.get(0)
    })?;
    Ok((page_size.saturating_mul(pages - free) + blobs).max(0) as u64)
}

/// Deletes raw files the catalog does not reference (left by a crash between
/// writing the file and committing the catalog, or between deleting the rows
/// and removing the file) and stale temporary files.
fn sweep_orphans(conn: &Connection, dir: &Path) -> Result<()> {
    let blobs = dir.join("blobs");
    let mut stmt = conn.prepare("SELECT 1 FROM blobs WHERE path = ?1")?;
    for day in fs::read_dir(&blobs)? {
        let day = day?;
        if !day.file_type()?.is_dir() {
            continue;
        }
        let mut empty = true;
        for f in fs::read_dir(day.path())? {
            let f = f?;
            let rel = format!(
                "blobs/{}/{}",
                day.file_name().to_string_lossy(),
                f.file_name().to_string_lossy()
            );
            let known = stmt.exists([&rel])?;
            if known {
                empty = false;
            } else {
                tracing::info!(file = %rel, "removing orphaned upload file");
                let _ = fs::remove_file(f.path());
            }
        }
        if empty {
            let _ = fs::remove_dir(day.path());
        }
    }
    Ok(())
}

struct Writer {
    conn: Connection,
    dir: PathBuf,
    types: HashMap<(String, String), i64>,
    opts: StoreOptions,
    /// id -> last_seen_ns as committed, for frames and stacks; lets ingest skip
    /// the upsert of rows that exist and need no `last_seen_ns` update.
    seen_frames: HashMap<i64, i64>,
    seen_stacks: HashMap<i64, i64>,
    /// Cache updates of the current batch, applied after COMMIT.
    pending: Vec<(bool, i64, i64)>,
}

const SEEN_LIMIT: usize = 500_000;

fn needs_upsert(cache: &HashMap<i64, i64>, id: i64, seen: i64) -> bool {
    match cache.get(&id) {
        Some(last) => *last < seen - LAST_SEEN_SLACK_NS,
        None => true,
    }
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            let mut ingests = Vec::new();
            let mut maint = Vec::new();
            let mut next = Some(first);
            let mut n = 0;
            while let Some(j) = next.take() {
                match j {
                    Job::Ingest(u, tx) => ingests.push((u, tx)),
                    Job::Maintain(tx) => maint.push(tx),
                }
                n += 1;
                if n < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            if !ingests.is_empty() {
                self.ingest_batch(ingests);
            }
            if !maint.is_empty() {
                let r = self.maintain();
                if let Err(e) = &r {
                    tracing::error!(error = %e, "maintenance failed");
                }
                for tx in maint.into_iter().flatten() {
                    let _ = tx.send(match &r {
                        Ok(v) => Ok(v.clone()),
                        Err(e) => Err(StoreError::Other(e.to_string())),
                    });
                }
            }
        }
    }

    fn ingest_batch(
        &mut self,
        jobs: Vec<(Box<Upload>, tokio::sync::oneshot::Sender<Result<i64>>)>,
    ) {
        let mut results: Vec<Result<i64>> = Vec::with_capacity(jobs.len());
        let mut files: Vec<Vec<PathBuf>> = Vec::with_capacity(jobs.len());
        let mut dirs: Vec<PathBuf> = Vec::new();
        let begin = self.conn.execute_batch("BEGIN IMMEDIATE");
        if let Err(e) = begin {
            for (_, tx) in jobs {
                let _ = tx.send(Err(StoreError::Other(e.to_string())));
            }
            return;
        }
        let types_before = self.types.clone();
        self.pending.clear();
        for (u, _) in &jobs {
            let mark = self.pending.len();
            let mut written = Vec::new();
            let r = self
                .conn
                .execute_batch("SAVEPOINT up")
                .map_err(StoreError::from)
                .and_then(|_| self.ingest_one(u, &mut written, &mut dirs));
            match r {
                Ok(id) => {
                    let _ = self.conn.execute_batch("RELEASE up");
                    results.push(Ok(id));
                }
                Err(e) => {
                    let _ = self.conn.execute_batch("ROLLBACK TO up; RELEASE up");
                    self.pending.truncate(mark);
                    for f in &written {
                        let _ = fs::remove_file(f);
                    }
                    written.clear();
                    tracing::warn!(error = %e, "failed to store upload");
                    results.push(Err(e));
                }
            }
            files.push(written);
        }
        // Make the renames durable before the catalog says the files exist.
        let mut dir_err = None;
        dirs.sort();
        dirs.dedup();
        for d in &dirs {
            if let Err(e) = fsync_dir(d) {
                dir_err = Some(e);
            }
        }
        let commit = match dir_err {
            Some(e) => Err(StoreError::Io(e)),
            None => self.conn.execute_batch("COMMIT").map_err(StoreError::from),
        };
        if let Err(e) = commit {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.types = types_before;
            self.pending.clear();
            tracing::error!(error = %e, "commit failed");
            for fs_ in &files {
                for f in fs_ {
                    let _ = fs::remove_file(f);
                }
            }
            for (_, tx) in jobs {
                let _ = tx.send(Err(StoreError::Other(format!("commit failed: {e}"))));
            }
            return;
        }
        if self.seen_frames.len() > SEEN_LIMIT || self.seen_stacks.len() > SEEN_LIMIT {
            self.seen_frames.clear();
            self.seen_stacks.clear();
        }
        for (is_stack, id, seen) in self.pending.drain(..) {
            let cache = if is_stack {
                &mut self.seen_stacks
            } else {
                &mut self.seen_frames
            };
            let e = cache.entry(id).or_insert(seen);
            *e = (*e).max(seen);
        }
        if results.iter().any(|r| r.is_err()) {
            // A failed upload may have registered types that were rolled back.
            self.types.clear();
        }
        for ((_, tx), r) in jobs.into_iter().zip(results) {
            let _ = tx.send(r);
        }
    }

    fn type_id(&mut self, name: &str, unit: &str) -> Result<i64> {
        if let Some(id) = self.types.get(&(name.to_string(), unit.to_string())) {
            return Ok(*id);
        }
        self.conn.execute(
            "INSERT OR IGNORE INTO sample_types(name, unit) VALUES (?1, ?2)",
            params![name, unit],
        )?;
        let id: i64 = self.conn.query_row(
            "SELECT id FROM sample_types WHERE name = ?1 AND unit = ?2",
            params![name, unit],
            |r| r.get(0),
        )?;
        self.types.insert((name.to_string(), unit.to_string()), id);
        Ok(id)
    }

    fn ingest_one(
        &mut self,
        u: &Upload,
        written: &mut Vec<PathBuf>,
        dirs: &mut Vec<PathBuf>,
    ) -> Result<i64> {
        let bytes: i64 = u.attachments.iter().map(|a| a.data.len() as i64).sum();
        let mut tags_obj = serde_json::Map::new();
        for (k, v) in &u.tags {
            tags_obj.insert(k.clone(), serde_json::Value::String(v.clone()));
        }
        let tags_json = serde_json::Value::Object(tags_obj).to_string();
        let provenance_id = match &u.provenance {
            Some(json) => {
                let hash = decode::hash_bytes(json.as_bytes());
                self.conn
                    .prepare_cached("INSERT OR IGNORE INTO provenance(hash, json) VALUES (?1, ?2)")?
                    .execute(params![hash, json])?;
                let id: i64 = self
                    .conn
                    .prepare_cached("SELECT id FROM provenance WHERE hash = ?1")?
                    .query_row([hash], |r| r.get(0))?;
                Some(id)
            }
            None => None,
        };
        self.conn
            .prepare_cached(
                "INSERT INTO profiles(service, env, version, host, runtime_id, family, start_ns, \
                 end_ns, received_ns, sample_count, tags, event, provenance_id, bytes) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?
            .execute(params![
                u.service,
                u.env,
                u.version,
                u.host,
                u.runtime_id,
                u.family,
                u.start_ns,
                u.end_ns,
                u.received_ns,
                u.aggregate.sample_count as i64,
                tags_json,
                u.event_json,
                provenance_id,
                bytes
            ])?;
        let id = self.conn.last_insert_rowid();

        // Raw attachments: write to a temp name, fsync, rename.
        let day = chrono::DateTime::from_timestamp_nanos(u.received_ns)
            .format("%Y-%m-%d")
            .to_string();
        let day_dir = self.dir.join("blobs").join(&day);
        if !day_dir.exists() {
            fs::create_dir_all(&day_dir)?;
            dirs.push(self.dir.join("blobs"));
        }
        dirs.push(day_dir.clone());
        for a in &u.attachments {
            let fname = format!("{id}-{}", sanitize(&a.name));
            let rel = format!("blobs/{day}/{fname}");
            let path = day_dir.join(&fname);
            let tmp = day_dir.join(format!("{fname}.tmp"));
            {
                let mut f = fs::File::create(&tmp)?;
                written.push(tmp.clone());
                f.write_all(&a.data)?;
                f.sync_all()?;
            }
            fs::rename(&tmp, &path)?;
            written.pop();
            written.push(path);
            self.conn
                .prepare_cached(
                    "INSERT INTO blobs(profile_id, name, path, encoding, size) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![id, a.name, rel, a.encoding.as_str(), a.data.len() as i64])?;
        }

        {
            let mut st = self.conn.prepare_cached(
                "INSERT OR IGNORE INTO profile_tags(profile_id, key, value) VALUES (?1, ?2, ?3)",
            )?;
            for (k, v) in &u.tags {
                st.execute(params![id, k, v])?;
            }
        }
        let mut type_ids = Vec::with_capacity(u.aggregate.types.len());
        for (n, unit) in &u.aggregate.types {
            type_ids.push(self.type_id(n, unit)?);
        }
        let seen = u.start_ns;
        let mut new_frames = Vec::new();
        let mut new_stacks = Vec::new();
        {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO frames(id, name, file, line, last_seen_ns) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT(id) DO UPDATE SET last_seen_ns = excluded.last_seen_ns \
                 WHERE frames.last_seen_ns < excluded.last_seen_ns - ?6",
            )?;
            for (fid, f) in &u.aggregate.frames {
                if needs_upsert(&self.seen_frames, *fid, seen) {
                    st.execute(params![
                        fid,
                        f.name,
                        f.file,
                        f.line,
                        seen,
                        LAST_SEEN_SLACK_NS
                    ])?;
                    new_frames.push(*fid);
                }
            }
        }
        {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO stacks(id, frames, last_seen_ns) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(id) DO UPDATE SET last_seen_ns = excluded.last_seen_ns \
                 WHERE stacks.last_seen_ns < excluded.last_seen_ns - ?4",
            )?;
            for (sid, frames) in &u.aggregate.stacks {
                if needs_upsert(&self.seen_stacks, *sid, seen) {
                    st.execute(params![
                        sid,
                        decode::encode_stack(frames),
                        seen,
                        LAST_SEEN_SLACK_NS
                    ])?;
                    new_stacks.push(*sid);
                }
            }
        }
        {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO samples(profile_id, type_id, stack_id, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for ((t, sid), v) in &u.aggregate.samples {
                let tid = type_ids.get(*t).copied().unwrap_or(0);
                st.execute(params![id, tid, sid, v])?;
            }
        }
        {
            let mut st = self.conn.prepare_cached(
                "INSERT INTO profile_totals(profile_id, type_id, total) VALUES (?1, ?2, ?3)",
            )?;
            for (i, total) in u.aggregate.totals.iter().enumerate() {
                if *total != 0 {
                    let tid = type_ids.get(i).copied().unwrap_or(0);
                    st.execute(params![id, tid, total])?;
                }
            }
        }
        // Upserted rows now have last_seen >= seen (or were newer already).
        for f in new_frames {
            self.pending.push((false, f, seen));
        }
        for st in new_stacks {
            self.pending.push((true, st, seen));
        }
        Ok(id)
    }

    fn delete_profiles(&mut self, ids: &[i64]) -> Result<()> {
        let tx = self.conn.transaction()?;
        let mut paths = Vec::new();
        {
            let mut q = tx.prepare_cached("SELECT path FROM blobs WHERE profile_id = ?1")?;
            for id in ids {
                let rows = q.query_map([id], |r| r.get::<_, String>(0))?;
                for p in rows {
                    paths.push(p?);
                }
            }
            for sql in [
                "DELETE FROM samples WHERE profile_id = ?1",
                "DELETE FROM profile_totals WHERE profile_id = ?1",
                "DELETE FROM profile_tags WHERE profile_id = ?1",
                "DELETE FROM blobs WHERE profile_id = ?1",
                "DELETE FROM profiles WHERE id = ?1",
            ] {
                let mut st = tx.prepare_cached(sql)?;
                for id in ids {
                    st.execute([id])?;
                }
            }
        }
        tx.commit()?;
        for p in paths {
            let _ = fs::remove_file(self.dir.join(p));
        }
        Ok(())
    }

    fn maintain(&mut self) -> Result<MaintainReport> {
        let mut report = MaintainReport::default();
        let now = crate::timeparse::now_ns();
        let retention = i64::try_from(self.opts.retention.as_nanos()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(retention);
        loop {
            let ids: Vec<i64> = {
                let mut st = self.conn.prepare_cached(
                    "SELECT id FROM profiles WHERE start_ns < ?1 ORDER BY start_ns LIMIT 500",
                )?;
                let rows = st.query_map([cutoff], |r| r.get(0))?;
                rows.collect::<std::result::Result<_, _>>()?
            };
            if ids.is_empty() {
                break;
            }
            self.delete_profiles(&ids)?;
            report.deleted_profiles += ids.len() as u64;
        }
        if let Some(cap) = self.opts.max_disk {
            let target = cap - cap / 20;
            let mut usage = disk_usage(&self.conn, &self.dir)?;
            if usage > cap {
                while usage > target {
                    let count: i64 =
                        self.conn
                            .query_row("SELECT COUNT(*) FROM profiles", [], |r| r.get(0))?;
                    if count == 0 {
                        break;
                    }
                    // Delete about as many of the oldest as the excess needs.
                    let per_profile = (usage / count as u64).max(1);
                    let n = ((usage - target) / per_profile + 1).min(500) as i64;
                    let ids: Vec<i64> = {
                        let mut st = self
                            .conn
                            .prepare_cached("SELECT id FROM profiles ORDER BY start_ns LIMIT ?1")?;
                        let rows = st.query_map([n], |r| r.get(0))?;
                        rows.collect::<std::result::Result<_, _>>()?
                    };
                    if ids.is_empty() {
                        break;
                    }
                    self.delete_profiles(&ids)?;
                    report.deleted_profiles += ids.len() as u64;
                    self.gc(&mut report)?;
                    usage = disk_usage(&self.conn, &self.dir)?;
                }
            }
        }
        if report.deleted_profiles > 0 {
            self.gc(&mut report)?;
            tracing::info!(
                deleted_profiles = report.deleted_profiles,
                deleted_stacks = report.deleted_stacks,
                "retention pass"
            );
        }
        report.disk_bytes = disk_usage(&self.conn, &self.dir)?;
        Ok(report)
    }

    /// Deletes frames/stacks no remaining profile can reference (see
    /// STORAGE.md: `last_seen_ns` is within LAST_SEEN_SLACK_NS of the newest
    /// profile start that used the row).
    fn gc(&mut self, report: &mut MaintainReport) -> Result<()> {
        let min_start: Option<i64> =
            self.conn
                .query_row("SELECT MIN(start_ns) FROM profiles", [], |r| r.get(0))?;
        let horizon = min_start
            .unwrap_or(i64::MAX)
            .saturating_sub(3 * LAST_SEEN_SLACK_NS);
        let tx = self.conn.transaction()?;
        report.deleted_stacks +=
            tx.execute("DELETE FROM stacks WHERE last_seen_ns < ?1", [horizon])? as u64;
        report.deleted_frames +=
            tx.execute("DELETE FROM frames WHERE last_seen_ns < ?1", [horizon])? as u64;
        tx.execute(
            "DELETE FROM provenance WHERE id NOT IN (SELECT provenance_id FROM profiles WHERE provenance_id IS NOT NULL)",
            [],
        )?;
        tx.commit()?;
        self.seen_frames.clear();
        self.seen_stacks.clear();
        Ok(())
    }
}
