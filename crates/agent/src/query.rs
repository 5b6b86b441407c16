//! Read side: selections, flame graphs, top lists, diffs, time series,
//! profile lists, single-profile timelines and pprof export.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, OptionalExtension};
use serde::Serialize;

use crate::decode::{self, Frame};
use crate::store::{Result, Store, StoreError, MAX_PROFILE_SPAN_NS};

/// Keys with a meaning of their own; every other query key is a tag filter.
const RESERVED: &[&str] = &[
    "service",
    "type",
    "from",
    "to",
    "env",
    "version",
    "host",
    "profile",
    "step",
    "limit",
    "max_nodes",
    "min_fraction",
    "group",
    "token",
    "format",
    "thread",
];

const MAX_DEPTH: usize = 400;

/// A set of uploads: service, time range, well-known tags and any other tags.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub service: Option<String>,
    pub from: i64,
    pub to: i64,
    pub env: Vec<String>,
    pub version: Vec<String>,
    pub host: Vec<String>,
    pub profile: Option<i64>,
    pub tags: Vec<(String, String)>,
}

fn list(v: Option<&String>) -> Vec<String> {
    v.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    })
    .unwrap_or_default()
}

impl Selection {
    /// Builds a selection from query parameters. With a prefix (`a_`/`b_`,
    /// used by the diff) prefixed keys override the plain ones.
    pub fn from_params(
        params: &HashMap<String, String>,
        prefix: Option<&str>,
        now: i64,
    ) -> std::result::Result<Selection, String> {
        let get = |k: &str| -> Option<&String> {
            prefix
                .and_then(|p| params.get(&format!("{p}{k}")))
                .or_else(|| params.get(k))
                .filter(|v| !v.is_empty())
        };
        let to = match get("to") {
            Some(s) => crate::timeparse::parse_time(s, now)?,
            None => now,
        };
        let from = match get("from") {
            Some(s) => crate::timeparse::parse_time(s, now)?,
            None => to.saturating_sub(3_600_000_000_000),
        };
        if from > to {
            return Err("`from` is after `to`".into());
        }
        let profile = match get("profile") {
            Some(s) => Some(
                s.parse::<i64>()
                    .map_err(|_| format!("invalid profile id {s:?}"))?,
            ),
            None => None,
        };
        let mut tags: Vec<(String, String)> = params
            .iter()
            .filter(|(k, v)| {
                !v.is_empty()
                    && !RESERVED.contains(&k.as_str())
                    && !k.starts_with("a_")
                    && !k.starts_with("b_")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        tags.sort();
        Ok(Selection {
            service: get("service").cloned(),
            from,
            to,
            env: list(get("env")),
            version: list(get("version")),
            host: list(get("host")),
            profile,
            tags,
        })
    }

    fn where_sql(&self) -> (String, Vec<Value>) {
        let mut conds: Vec<String> = Vec::new();
        let mut vals: Vec<Value> = Vec::new();
        if let Some(id) = self.profile {
            conds.push("p.id = ?".into());
            vals.push(Value::Integer(id));
        } else {
            conds.push("p.start_ns < ?".into());
            vals.push(Value::Integer(self.to));
            conds.push("p.start_ns >= ?".into());
            vals.push(Value::Integer(
                self.from.saturating_sub(MAX_PROFILE_SPAN_NS),
            ));
            conds.push("(p.end_ns > ? OR p.start_ns >= ?)".into());
            vals.push(Value::Integer(self.from));
            vals.push(Value::Integer(self.from));
        }
        if let Some(s) = &self.service {
            conds.push("p.service = ?".into());
            vals.push(Value::Text(s.clone()));
        }
        for (col, values) in [
            ("env", &self.env),
            ("version", &self.version),
            ("host", &self.host),
        ] {
            if !values.is_empty() {
                let qs = vec!["?"; values.len()].join(",");
                conds.push(format!("p.{col} IN ({qs})"));
                vals.extend(values.iter().map(|v| Value::Text(v.clone())));
            }
        }
        for (k, v) in &self.tags {
            conds.push(
                "p.id IN (SELECT profile_id FROM profile_tags WHERE key = ? AND value = ?)".into(),
            );
            vals.push(Value::Text(k.clone()));
            vals.push(Value::Text(v.clone()));
        }
        (conds.join(" AND "), vals)
    }

    pub fn profile_ids(&self, conn: &Connection) -> Result<Vec<i64>> {
        let (w, vals) = self.where_sql();
        let sql = format!("SELECT p.id FROM profiles p WHERE {w} ORDER BY p.id");
        let mut st = conn.prepare_cached(&sql)?;
        let rows = st.query_map(params_from_iter(vals), |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }
}

/// A sample type known to the store.
#[derive(Debug, Clone, Serialize)]
pub struct SampleType {
    pub id: i64,
    pub name: String,
    pub unit: String,
}

pub fn all_types(conn: &Connection) -> Result<Vec<SampleType>> {
    let mut st = conn.prepare_cached("SELECT id, name, unit FROM sample_types ORDER BY id")?;
    let rows = st.query_map([], |r| {
        Ok(SampleType {
            id: r.get(0)?,
            name: r.get(1)?,
            unit: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Preferred default when no `type` is given.
const DEFAULT_TYPES: &[&str] = &["cpu-time", "wall-time", "cpu", "samples", "alloc-space"];

/// Resolves `type=name` or `type=name/unit`; `None` picks a default present in the selection.
pub fn resolve_type(
    conn: &Connection,
    name: Option<&str>,
    sel: &Selection,
) -> Result<Option<SampleType>> {
    let types = all_types(conn)?;
    if let Some(n) = name.filter(|n| !n.is_empty()) {
        let (tn, tu) = match n.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (n, None),
        };
        return Ok(types
            .into_iter()
            .find(|t| t.name == tn && tu.is_none_or(|u| u == t.unit)));
    }
    let present = types_in(conn, sel)?;
    for d in DEFAULT_TYPES {
        if let Some(t) = present.iter().find(|(t, _)| t.name == *d) {
            return Ok(Some(t.0.clone()));
        }
    }
    Ok(present.into_iter().next().map(|(t, _)| t))
}

/// Sample types with their totals in a selection (non-zero only).
pub fn types_in(conn: &Connection, sel: &Selection) -> Result<Vec<(SampleType, i64)>> {
    let (w, vals) = sel.where_sql();
    let sql = format!(
        "SELECT st.id, st.name, st.unit, SUM(t.total) FROM profiles p \
         JOIN profile_totals t ON t.profile_id = p.id \
         JOIN sample_types st ON st.id = t.type_id WHERE {w} GROUP BY st.id ORDER BY st.id"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(vals), |r| {
        Ok((
            SampleType {
                id: r.get(0)?,
                name: r.get(1)?,
                unit: r.get(2)?,
            },
            r.get::<_, i64>(3)?,
        ))
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// Stack id -> summed value for one type over a selection, plus the number of profiles.
pub fn aggregate(
    conn: &Connection,
    sel: &Selection,
    type_id: i64,
) -> Result<(HashMap<i64, i64>, usize)> {
    let ids = sel.profile_ids(conn)?;
    let mut out: HashMap<i64, i64> = HashMap::new();
    let mut st = conn.prepare_cached(
        "SELECT stack_id, value FROM samples WHERE profile_id = ?1 AND type_id = ?2",
    )?;
    for id in &ids {
        let mut rows = st.query([id, &type_id])?;
        while let Some(r) = rows.next()? {
            let sid: i64 = r.get(0)?;
            let v: i64 = r.get(1)?;
            let e = out.entry(sid).or_insert(0);
            *e = e.saturating_add(v);
        }
    }
    Ok((out, ids.len()))
}

/// Code provenance classification (from ddtrace's `code-provenance.json`).
pub struct Classifier {
    /// (path prefix, kind, library name), longest prefix first.
    entries: Vec<(String, &'static str, String)>,
}

impl Classifier {
    pub fn parse(json: &str) -> Option<Classifier> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let libs = v.get("v1")?.as_array()?;
        let mut entries = Vec::new();
        for lib in libs {
            let kind = match lib.get("kind").and_then(|k| k.as_str()).unwrap_or("") {
                "standard library" => "stdlib",
                "library" => "library",
                "" => "user",
                _ => "library",
            };
            let name = lib
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_string();
            if let Some(paths) = lib.get("paths").and_then(|p| p.as_array()) {
                for p in paths.iter().filter_map(|p| p.as_str()) {
                    if !p.is_empty() {
                        entries.push((p.to_string(), kind, name.clone()));
                    }
                }
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
        Some(Classifier { entries })
    }

    pub fn classify(&self, file: &str) -> (&'static str, Option<String>) {
        for (prefix, kind, name) in &self.entries {
            if file == prefix
                || (file.starts_with(prefix.as_str())
                    && (prefix.ends_with('/') || file[prefix.len()..].starts_with('/')))
            {
                return match *kind {
                    "library" => ("library", Some(name.clone())),
                    k => (k, None),
                };
            }
        }
        if file.starts_with('<') || file.is_empty() {
            ("runtime", None)
        } else {
            ("user", None)
        }
    }
}

fn classifier_for(conn: &Connection, ids: &[i64]) -> Result<Option<Classifier>> {
    let Some(max_id) = ids.iter().max() else {
        return Ok(None);
    };
    let json: Option<String> = conn
        .query_row(
            "SELECT pr.json FROM profiles p JOIN provenance pr ON pr.id = p.provenance_id \
             WHERE p.id <= ?1 AND p.id >= ?2 AND p.provenance_id IS NOT NULL ORDER BY p.id DESC LIMIT 1",
            [*max_id, ids.iter().min().copied().unwrap_or(0)],
            |r| r.get(0),
        )
        .optional()?;
    Ok(json.and_then(|j| Classifier::parse(&j)))
}

/// Output node of flame graphs and diffs.
#[derive(Debug, Serialize)]
pub struct FlameNode {
    pub name: String,
    pub file: String,
    pub line: i64,
    #[serde(rename = "self")]
    pub self_value: i64,
    pub total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_self: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_total: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lib: Option<String>,
    pub children: Vec<FlameNode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping {
    Function,
    Line,
}

struct TreeNode {
    frame: Option<Arc<Frame>>,
    self_v: [i64; 2],
    total: [i64; 2],
    children: Vec<u32>,
}

/// Prefix tree over two value columns (0 = selection / comparison, 1 = baseline).
struct Tree {
    nodes: Vec<TreeNode>,
    index: HashMap<(u32, i64), u32>,
}

impl Tree {
    fn new() -> Self {
        Tree {
            nodes: vec![TreeNode {
                frame: None,
                self_v: [0; 2],
                total: [0; 2],
                children: Vec::new(),
            }],
            index: HashMap::new(),
        }
    }

    fn add(&mut self, frames: &[(i64, Arc<Frame>)], col: usize, v: i64) {
        let mut node = 0u32;
        self.bump(0, col, v, false);
        for (depth, (key, f)) in frames.iter().rev().enumerate() {
            if depth >= MAX_DEPTH {
                break;
            }
            let next = match self.index.get(&(node, *key)) {
                Some(n) => *n,
                None => {
                    let n = self.nodes.len() as u32;
                    self.nodes.push(TreeNode {
                        frame: Some(f.clone()),
                        self_v: [0; 2],
                        total: [0; 2],
                        children: Vec::new(),
                    });
                    if let Some(p) = self.nodes.get_mut(node as usize) {
                        p.children.push(n);
                    }
                    self.index.insert((node, *key), n);
                    n
                }
            };
            self.bump(next, col, v, false);
            node = next;
        }
        self.bump(node, col, v, true);
    }

    fn bump(&mut self, n: u32, col: usize, v: i64, is_self: bool) {
        if let Some(node) = self.nodes.get_mut(n as usize) {
            let c = col.min(1);
            if is_self {
                node.self_v[c] = node.self_v[c].saturating_add(v);
            } else {
                node.total[c] = node.total[c].saturating_add(v);
            }
        }
    }

    /// Indices of nodes kept after pruning, closed under "parent is kept".
    fn keep(&self, max_nodes: usize, min_fraction: f64) -> (Vec<bool>, bool) {
        let root = &self.nodes[0];
        let tot = [root.total[0].max(1) as f64, root.total[1].max(1) as f64];
        let weight = |n: &TreeNode| -> f64 {
            let a = n.total[0] as f64 / tot[0];
            let b = n.total[1] as f64 / tot[1];
            a.max(b)
        };
        // Walk from the root, always expanding the heaviest frontier node.
        let mut keep = vec![false; self.nodes.len()];
        keep[0] = true;
        let mut kept = 1usize;
        let mut truncated = false;
        let mut frontier: Vec<(f64, u32)> = Vec::new();
        for c in &root.children {
            frontier.push((weight(&self.nodes[*c as usize]), *c));
        }
        while let Some(pos) = frontier
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
            .map(|(i, _)| i)
        {
            let (w, n) = frontier.swap_remove(pos);
            if w < min_fraction {
                truncated = true;
                continue;
            }
            if kept >= max_nodes {
                truncated = true;
                break;
            }
            keep[n as usize] = true;
            kept += 1;
            for c in &self.nodes[n as usize].children {
                frontier.push((weight(&self.nodes[*c as usize]), *c));
            }
            if frontier.len() > 200_000 {
                // Bound the frontier: drop the lightest half.
                frontier.sort_by(|a, b| b.0.total_cmp(&a.0));
                frontier.truncate(100_000);
                truncated = true;
            }
        }
        (keep, truncated)
    }

    fn emit(
        &self,
        n: u32,
        keep: &[bool],
        diff: bool,
        classifier: Option<&Classifier>,
    ) -> FlameNode {
        let node = &self.nodes[n as usize];
        let (name, file, line) = match &node.frame {
            Some(f) => (f.name.clone(), f.file.clone(), f.line),
            None => ("root".to_string(), String::new(), 0),
        };
        let (kind, lib) = match (classifier, &node.frame) {
            (Some(c), Some(f)) => {
                let (k, l) = c.classify(&f.file);
                (Some(k), l)
            }
            _ => (None, None),
        };
        let mut children: Vec<FlameNode> = node
            .children
            .iter()
            .filter(|c| keep.get(**c as usize).copied().unwrap_or(false))
            .map(|c| self.emit(*c, keep, diff, classifier))
            .collect();
        children.sort_by(|a, b| {
            let wa = a.total.max(a.base_total.unwrap_or(0));
            let wb = b.total.max(b.base_total.unwrap_or(0));
            wb.cmp(&wa).then_with(|| a.name.cmp(&b.name))
        });
        FlameNode {
            name,
            file,
            line,
            self_value: node.self_v[0],
            total: node.total[0],
            base_self: diff.then_some(node.self_v[1]),
            base_total: diff.then_some(node.total[1]),
            kind,
            lib,
            children,
        }
    }
}

/// Options controlling tree size and grouping.
#[derive(Debug, Clone, Copy)]
pub struct TreeOptions {
    pub max_nodes: usize,
    pub min_fraction: f64,
    pub grouping: Grouping,
}

impl TreeOptions {
    pub fn from_params(params: &HashMap<String, String>) -> TreeOptions {
        let max_nodes = params
            .get("max_nodes")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(2000)
            .clamp(1, 50_000);
        let min_fraction = params
            .get("min_fraction")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .unwrap_or(0.0005)
            .clamp(0.0, 1.0);
        let grouping = match params.get("group").map(String::as_str) {
            Some("line") => Grouping::Line,
            _ => Grouping::Function,
        };
        TreeOptions {
            max_nodes,
            min_fraction,
            grouping,
        }
    }
}

/// A stack's frames (leaf first) with their grouping keys.
type KeyedFrames = Vec<(i64, Arc<Frame>)>;

/// Frames (grouping key, frame) of every stack in `stacks`.
fn expand(
    store: &Store,
    conn: &Connection,
    stack_ids: impl Iterator<Item = i64>,
    grouping: Grouping,
) -> Result<HashMap<i64, KeyedFrames>> {
    let stacks = store.resolve_stacks(conn, stack_ids)?;
    let frames = store.resolve_frames(conn, stacks.values().flat_map(|s| s.iter().copied()))?;
    let mut keys: HashMap<i64, i64> = HashMap::with_capacity(frames.len());
    for (id, f) in &frames {
        let k = match grouping {
            Grouping::Line => *id,
            Grouping::Function => {
                let mut b = Vec::with_capacity(f.name.len() + f.file.len() + 1);
                b.extend_from_slice(f.name.as_bytes());
                b.push(0);
                b.extend_from_slice(f.file.as_bytes());
                decode::hash_bytes(&b)
            }
        };
        keys.insert(*id, k);
    }
    let mut out = HashMap::with_capacity(stacks.len());
    for (sid, fr) in stacks {
        let v: Vec<(i64, Arc<Frame>)> = fr
            .iter()
            .filter_map(|fid| {
                let f = frames.get(fid)?.clone();
                Some((keys.get(fid).copied().unwrap_or(*fid), f))
            })
            .collect();
        out.insert(sid, v);
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct FlameGraph {
    #[serde(rename = "type")]
    pub type_name: String,
    pub unit: String,
    pub profiles: usize,
    pub total: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_total: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_profiles: Option<usize>,
    pub stacks: usize,
    pub nodes: usize,
    pub truncated: bool,
    pub provenance: bool,
    pub root: FlameNode,
}

fn count(n: &FlameNode) -> usize {
    1 + n.children.iter().map(count).sum::<usize>()
}

fn empty_graph(t: Option<&SampleType>) -> FlameGraph {
    FlameGraph {
        type_name: t.map(|t| t.name.clone()).unwrap_or_default(),
        unit: t.map(|t| t.unit.clone()).unwrap_or_default(),
        profiles: 0,
        total: 0,
        base_total: None,
        base_profiles: None,
        stacks: 0,
        nodes: 1,
        truncated: false,
        provenance: false,
        root: FlameNode {
            name: "root".into(),
            file: String::new(),
            line: 0,
            self_value: 0,
            total: 0,
            base_self: None,
            base_total: None,
            kind: None,
            lib: None,
            children: Vec::new(),
        },
    }
}

/// Aggregated flame graph of a selection.
pub fn flamegraph(
    store: &Store,
    conn: &Connection,
    sel: &Selection,
    type_name: Option<&str>,
    opts: TreeOptions,
) -> Result<FlameGraph> {
    let Some(t) = resolve_type(conn, type_name, sel)? else {
        return Ok(empty_graph(None));
    };
    let (agg, nprof) = aggregate(conn, sel, t.id)?;
    let expanded = expand(store, conn, agg.keys().copied(), opts.grouping)?;
    let mut tree = Tree::new();
    for (sid, v) in &agg {
        if let Some(frames) = expanded.get(sid) {
            tree.add(frames, 0, *v);
        }
    }
    let ids = sel.profile_ids(conn)?;
    let classifier = classifier_for(conn, &ids)?;
    let (keep, truncated) = tree.keep(opts.max_nodes, opts.min_fraction);
    let root = tree.emit(0, &keep, false, classifier.as_ref());
    Ok(FlameGraph {
        type_name: t.name,
        unit: t.unit,
        profiles: nprof,
        total: root.total,
        base_total: None,
        base_profiles: None,
        stacks: agg.len(),
        nodes: count(&root),
        truncated,
        provenance: classifier.is_some(),
        root,
    })
}

/// Diff of two selections: `total`/`self` are the comparison (b), `base_*` the baseline (a).
pub fn diff(
    store: &Store,
    conn: &Connection,
    a: &Selection,
    b: &Selection,
    type_name: Option<&str>,
    opts: TreeOptions,
) -> Result<FlameGraph> {
    let t = match resolve_type(conn, type_name, b)? {
        Some(t) => t,
        None => match resolve_type(conn, type_name, a)? {
            Some(t) => t,
            None => return Ok(empty_graph(None)),
        },
    };
    let (agg_a, na) = aggregate(conn, a, t.id)?;
    let (agg_b, nb) = aggregate(conn, b, t.id)?;
    let expanded = expand(
        store,
        conn,
        agg_a.keys().chain(agg_b.keys()).copied(),
        opts.grouping,
    )?;
    let mut tree = Tree::new();
    for (sid, v) in &agg_b {
        if let Some(frames) = expanded.get(sid) {
            tree.add(frames, 0, *v);
        }
    }
    for (sid, v) in &agg_a {
        if let Some(frames) = expanded.get(sid) {
            tree.add(frames, 1, *v);
        }
    }
    let mut ids = a.profile_ids(conn)?;
    ids.extend(b.profile_ids(conn)?);
    let classifier = classifier_for(conn, &ids)?;
    let (keep, truncated) = tree.keep(opts.max_nodes, opts.min_fraction);
    let root = tree.emit(0, &keep, true, classifier.as_ref());
    Ok(FlameGraph {
        type_name: t.name,
        unit: t.unit,
        profiles: nb,
        total: root.total,
        base_total: root.base_total,
        base_profiles: Some(na),
        stacks: agg_a.len() + agg_b.len(),
        nodes: count(&root),
        truncated,
        provenance: classifier.is_some(),
        root,
    })
}

#[derive(Debug, Serialize)]
pub struct TopEntry {
    pub name: String,
    pub file: String,
    #[serde(rename = "self")]
    pub self_value: i64,
    pub total: i64,
}

#[derive(Debug, Serialize)]
pub struct TopList {
    #[serde(rename = "type")]
    pub type_name: String,
    pub unit: String,
    pub total: i64,
    pub profiles: usize,
    pub functions: Vec<TopEntry>,
}

/// Functions by self and total value (recursion counted once per stack).
pub fn top(
    store: &Store,
    conn: &Connection,
    sel: &Selection,
    type_name: Option<&str>,
    limit: usize,
) -> Result<TopList> {
    let Some(t) = resolve_type(conn, type_name, sel)? else {
        return Ok(TopList {
            type_name: String::new(),
            unit: String::new(),
            total: 0,
            profiles: 0,
            functions: Vec::new(),
        });
    };
    let (agg, nprof) = aggregate(conn, sel, t.id)?;
    let expanded = expand(store, conn, agg.keys().copied(), Grouping::Function)?;
    let mut funcs: HashMap<i64, (Arc<Frame>, i64, i64)> = HashMap::new();
    let mut total = 0i64;
    let mut seen: Vec<i64> = Vec::new();
    for (sid, v) in &agg {
        total = total.saturating_add(*v);
        let Some(frames) = expanded.get(sid) else {
            continue;
        };
        seen.clear();
        for (i, (key, f)) in frames.iter().enumerate() {
            let e = funcs.entry(*key).or_insert_with(|| (f.clone(), 0, 0));
            if i == 0 {
                e.1 = e.1.saturating_add(*v);
            }
            if !seen.contains(key) {
                seen.push(*key);
                e.2 = e.2.saturating_add(*v);
            }
        }
    }
    let mut functions: Vec<TopEntry> = funcs
        .into_values()
        .map(|(f, s, t)| TopEntry {
            name: f.name.clone(),
            file: f.file.clone(),
            self_value: s,
            total: t,
        })
        .collect();
    functions.sort_by(|a, b| {
        b.self_value
            .cmp(&a.self_value)
            .then(b.total.cmp(&a.total))
            .then_with(|| a.name.cmp(&b.name))
    });
    functions.truncate(limit);
    Ok(TopList {
        type_name: t.name,
        unit: t.unit,
        total,
        profiles: nprof,
        functions,
    })
}

#[derive(Debug, Serialize)]
pub struct Point {
    /// Bucket start, unix seconds.
    pub t: i64,
    pub value: i64,
    pub profiles: u64,
}

#[derive(Debug, Serialize)]
pub struct TimeSeries {
    #[serde(rename = "type")]
    pub type_name: String,
    pub unit: String,
    pub from: i64,
    pub to: i64,
    pub step: i64,
    pub points: Vec<Point>,
}

/// Total of a type over time, bucketed by profile start.
pub fn timeseries(
    conn: &Connection,
    sel: &Selection,
    type_name: Option<&str>,
    step_s: Option<i64>,
) -> Result<TimeSeries> {
    let range_s = ((sel.to - sel.from) / 1_000_000_000).max(1);
    let step = step_s
        .filter(|s| *s > 0)
        .unwrap_or_else(|| (range_s / 120).max(10))
        .max(range_s / 2000)
        .max(1);
    let from_s = sel.from.div_euclid(1_000_000_000).div_euclid(step) * step;
    let to_s = sel.to.div_euclid(1_000_000_000);
    let n = ((to_s - from_s) / step + 1).clamp(1, 5000) as usize;
    let mut points: Vec<Point> = (0..n)
        .map(|i| Point {
            t: from_s + i as i64 * step,
            value: 0,
            profiles: 0,
        })
        .collect();
    let t = resolve_type(conn, type_name, sel)?;
    let (tn, tu) = match &t {
        Some(t) => (t.name.clone(), t.unit.clone()),
        None => (String::new(), String::new()),
    };
    if let Some(t) = t {
        let (w, mut vals) = sel.where_sql();
        vals.push(Value::Integer(t.id));
        let sql = format!(
            "SELECT p.start_ns, t.total FROM profiles p JOIN profile_totals t ON t.profile_id = p.id \
             WHERE {w} AND t.type_id = ?"
        );
        let mut st = conn.prepare_cached(&sql)?;
        let mut rows = st.query(params_from_iter(vals))?;
        while let Some(r) = rows.next()? {
            let start: i64 = r.get(0)?;
            let v: i64 = r.get(1)?;
            let s = start.div_euclid(1_000_000_000).max(from_s);
            let idx = ((s - from_s) / step) as usize;
            if let Some(p) = points.get_mut(idx.min(n - 1)) {
                p.value = p.value.saturating_add(v);
                p.profiles += 1;
            }
        }
    }
    Ok(TimeSeries {
        type_name: tn,
        unit: tu,
        from: sel.from / 1_000_000_000,
        to: sel.to / 1_000_000_000,
        step,
        points,
    })
}

#[derive(Debug, Serialize)]
pub struct ProfileInfo {
    pub id: i64,
    pub service: String,
    pub env: String,
    pub version: String,
    pub host: String,
    pub runtime_id: String,
    pub family: String,
    pub start: String,
    pub end: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub received: String,
    pub sample_count: i64,
    pub bytes: i64,
    pub tags: serde_json::Value,
    pub totals: BTreeMap<String, i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attachments: Option<Vec<serde_json::Value>>,
}

fn totals_of(conn: &Connection, id: i64) -> Result<BTreeMap<String, i64>> {
    let mut st = conn.prepare_cached(
        "SELECT st.name, t.total FROM profile_totals t JOIN sample_types st ON st.id = t.type_id \
         WHERE t.profile_id = ?1",
    )?;
    let rows = st.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

const PROFILE_COLS: &str = "p.id, p.service, p.env, p.version, p.host, p.runtime_id, p.family, \
    p.start_ns, p.end_ns, p.received_ns, p.sample_count, p.bytes, p.tags";

fn profile_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProfileInfo> {
    let start_ns: i64 = r.get(7)?;
    let end_ns: i64 = r.get(8)?;
    let received: i64 = r.get(9)?;
    let tags: String = r.get(12)?;
    Ok(ProfileInfo {
        id: r.get(0)?,
        service: r.get(1)?,
        env: r.get(2)?,
        version: r.get(3)?,
        host: r.get(4)?,
        runtime_id: r.get(5)?,
        family: r.get(6)?,
        start: crate::timeparse::format_rfc3339(start_ns),
        end: crate::timeparse::format_rfc3339(end_ns),
        start_ns,
        end_ns,
        received: crate::timeparse::format_rfc3339(received),
        sample_count: r.get(10)?,
        bytes: r.get(11)?,
        tags: serde_json::from_str(&tags).unwrap_or(serde_json::Value::Null),
        totals: BTreeMap::new(),
        event: None,
        attachments: None,
    })
}

/// Uploads in a selection, newest first, with per-type totals.
pub fn profiles(conn: &Connection, sel: &Selection, limit: usize) -> Result<Vec<ProfileInfo>> {
    let (w, mut vals) = sel.where_sql();
    vals.push(Value::Integer(limit as i64));
    let sql = format!(
        "SELECT {PROFILE_COLS} FROM profiles p WHERE {w} ORDER BY p.start_ns DESC, p.id DESC LIMIT ?"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(vals), profile_row)?;
    let mut out: Vec<ProfileInfo> = rows.collect::<std::result::Result<_, _>>()?;
    for p in &mut out {
        p.totals = totals_of(conn, p.id)?;
    }
    Ok(out)
}

/// One upload with its event and attachment list.
pub fn profile(conn: &Connection, id: i64) -> Result<Option<ProfileInfo>> {
    let sql = format!("SELECT {PROFILE_COLS}, p.event FROM profiles p WHERE p.id = ?1");
    let found = conn
        .query_row(&sql, [id], |r| {
            let mut p = profile_row(r)?;
            let ev: String = r.get(13)?;
            p.event = serde_json::from_str(&ev).ok();
            Ok(p)
        })
        .optional()?;
    let Some(mut p) = found else {
        return Ok(None);
    };
    p.totals = totals_of(conn, id)?;
    let mut st =
        conn.prepare_cached("SELECT name, encoding, size FROM blobs WHERE profile_id = ?1")?;
    let rows = st.query_map([id], |r| {
        Ok(serde_json::json!({
            "name": r.get::<_, String>(0)?,
            "encoding": r.get::<_, String>(1)?,
            "size": r.get::<_, i64>(2)?,
        }))
    })?;
    p.attachments = Some(rows.collect::<std::result::Result<_, _>>()?);
    Ok(Some(p))
}

#[derive(Debug, Serialize)]
pub struct ServiceInfo {
    pub service: String,
    pub envs: Vec<String>,
    pub versions: Vec<String>,
    pub hosts: Vec<String>,
    pub last_seen: String,
    pub last_seen_ns: i64,
    pub profiles: i64,
}

pub fn services(conn: &Connection) -> Result<Vec<ServiceInfo>> {
    let mut st = conn.prepare_cached(
        "SELECT service, env, version, host, MAX(end_ns), COUNT(*) FROM profiles \
         GROUP BY service, env, version, host",
    )?;
    let mut rows = st.query([])?;
    let mut map: BTreeMap<String, ServiceInfo> = BTreeMap::new();
    while let Some(r) = rows.next()? {
        let service: String = r.get(0)?;
        let env: String = r.get(1)?;
        let version: String = r.get(2)?;
        let host: String = r.get(3)?;
        let last: i64 = r.get(4)?;
        let n: i64 = r.get(5)?;
        let e = map.entry(service.clone()).or_insert_with(|| ServiceInfo {
            service,
            envs: Vec::new(),
            versions: Vec::new(),
            hosts: Vec::new(),
            last_seen: String::new(),
            last_seen_ns: i64::MIN,
            profiles: 0,
        });
        for (list, v) in [
            (&mut e.envs, env),
            (&mut e.versions, version),
            (&mut e.hosts, host),
        ] {
            if !v.is_empty() && !list.contains(&v) {
                list.push(v);
            }
        }
        e.last_seen_ns = e.last_seen_ns.max(last);
        e.profiles += n;
    }
    let mut out: Vec<ServiceInfo> = map.into_values().collect();
    for s in &mut out {
        s.envs.sort();
        s.versions.sort();
        s.hosts.sort();
        s.last_seen = crate::timeparse::format_rfc3339(s.last_seen_ns);
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct TagValues {
    pub key: String,
    pub values: Vec<(String, i64)>,
    pub truncated: bool,
}

/// Tag keys and their most common values in a selection.
pub fn tags(conn: &Connection, sel: &Selection, per_key: usize) -> Result<Vec<TagValues>> {
    let (w, vals) = sel.where_sql();
    let sql = format!(
        "SELECT key, value, COUNT(*) AS n FROM profile_tags WHERE profile_id IN \
         (SELECT p.id FROM profiles p WHERE {w}) GROUP BY key, value ORDER BY key, n DESC, value"
    );
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(params_from_iter(vals))?;
    let mut out: Vec<TagValues> = Vec::new();
    while let Some(r) = rows.next()? {
        let k: String = r.get(0)?;
        let v: String = r.get(1)?;
        let n: i64 = r.get(2)?;
        if out.last().map(|t| t.key != k).unwrap_or(true) {
            out.push(TagValues {
                key: k,
                values: Vec::new(),
                truncated: false,
            });
        }
        if let Some(t) = out.last_mut() {
            if t.values.len() < per_key {
                t.values.push((v, n));
            } else {
                t.truncated = true;
            }
        }
    }
    Ok(out)
}

/// Raw attachment bytes of a profile (as uploaded) and the path they live at.
pub fn pprof_blobs(store: &Store, conn: &Connection, id: i64) -> Result<Vec<(String, Vec<u8>)>> {
    let mut st = conn.prepare_cached("SELECT name, path FROM blobs WHERE profile_id = ?1")?;
    let rows = st.query_map([id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, path) = row?;
        if name.ends_with(".pprof") || name.ends_with(".pb.gz") || name.ends_with(".pb") {
            let data = std::fs::read(store.dir().join(&path))?;
            out.push((name, data));
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct Lane {
    pub thread_id: i64,
    pub thread_name: String,
    pub total: i64,
    /// `[end offset from profile start (ns), duration (ns), stack index]`
    pub events: Vec<[i64; 3]>,
}

#[derive(Debug, Serialize)]
pub struct Timeline {
    pub profile: i64,
    #[serde(rename = "type")]
    pub type_name: String,
    pub unit: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub frames: Vec<[serde_json::Value; 3]>,
    /// Frame indices, leaf first.
    pub stacks: Vec<Vec<u32>>,
    pub lanes: Vec<Lane>,
    pub untimed: u64,
    pub truncated: bool,
}

const MAX_TIMELINE_EVENTS: usize = 200_000;

/// Per-thread lanes of one upload, from its raw pprof.
pub fn timeline(
    store: &Store,
    conn: &Connection,
    id: i64,
    type_name: Option<&str>,
    max_decompressed: u64,
) -> Result<Option<Timeline>> {
    let Some((start_ns, end_ns)) = conn
        .query_row(
            "SELECT start_ns, end_ns FROM profiles WHERE id = ?1",
            [id],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let mut tl = Timeline {
        profile: id,
        type_name: String::new(),
        unit: String::new(),
        start_ns,
        end_ns,
        frames: Vec::new(),
        stacks: Vec::new(),
        lanes: Vec::new(),
        untimed: 0,
        truncated: false,
    };
    let mut frame_idx: HashMap<i64, u32> = HashMap::new();
    let mut stack_idx: HashMap<Vec<u64>, u32> = HashMap::new();
    let mut lanes: BTreeMap<(i64, String), Lane> = BTreeMap::new();
    let mut events = 0usize;
    for (_, data) in pprof_blobs(store, conn, id)? {
        let raw = decode::decompress(&data, max_decompressed)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let p = decode::decode_pprof(&raw).map_err(|e| StoreError::Other(e.to_string()))?;
        let resolver = decode::Resolver::new(&p).map_err(|e| StoreError::Other(e.to_string()))?;
        let s = |i: i64| resolver.string(i).unwrap_or("");
        let wanted: Vec<&str> = match type_name.filter(|t| !t.is_empty()) {
            Some(t) => vec![t],
            None => vec!["wall-time", "cpu-time"],
        };
        let mut vidx = None;
        for w in wanted {
            if let Some(i) = p.sample_type.iter().position(|st| s(st.r#type) == w) {
                vidx = Some(i);
                break;
            }
        }
        let Some(vi) = vidx else {
            continue;
        };
        if let Some(st) = p.sample_type.get(vi) {
            tl.type_name = s(st.r#type).to_string();
            tl.unit = s(st.unit).to_string();
        }
        for sample in &p.sample {
            let v = sample.value.get(vi).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let mut tid = 0i64;
            let mut tname = String::new();
            let mut end = None;
            for l in &sample.label {
                match s(l.key) {
                    "thread id" => tid = l.num,
                    "thread name" => tname = s(l.str).to_string(),
                    "end_timestamp_ns" => end = Some(l.num),
                    _ => {}
                }
            }
            let Some(end) = end else {
                tl.untimed += 1;
                continue;
            };
            if events >= MAX_TIMELINE_EVENTS {
                tl.truncated = true;
                break;
            }
            events += 1;
            let si = match stack_idx.get(&sample.location_id) {
                Some(i) => *i,
                None => {
                    let frames = resolver
                        .frames(&sample.location_id)
                        .map_err(|e| StoreError::Other(e.to_string()))?;
                    let mut idxs = Vec::with_capacity(frames.len());
                    for (fid, f) in frames {
                        let next = tl.frames.len() as u32;
                        let fi = *frame_idx.entry(*fid).or_insert_with(|| {
                            tl.frames.push([
                                serde_json::Value::String(f.name.clone()),
                                serde_json::Value::String(f.file.clone()),
                                serde_json::Value::from(f.line),
                            ]);
                            next
                        });
                        idxs.push(fi);
                    }
                    let i = tl.stacks.len() as u32;
                    tl.stacks.push(idxs);
                    stack_idx.insert(sample.location_id.clone(), i);
                    i
                }
            };
            let lane = lanes.entry((tid, tname.clone())).or_insert_with(|| Lane {
                thread_id: tid,
                thread_name: tname,
                total: 0,
                events: Vec::new(),
            });
            lane.total = lane.total.saturating_add(v);
            lane.events
                .push([end.saturating_sub(start_ns), v, i64::from(si)]);
        }
    }
    // Allocation samples carry str(thread id) as name; merge lanes by id.
    let mut merged: BTreeMap<i64, Lane> = BTreeMap::new();
    for ((tid, _), lane) in lanes {
        match merged.get_mut(&tid) {
            Some(m) => {
                if m.thread_name.parse::<i64>().is_ok() && lane.thread_name.parse::<i64>().is_err()
                {
                    m.thread_name = lane.thread_name.clone();
                }
                m.total = m.total.saturating_add(lane.total);
                m.events.extend(lane.events);
            }
            None => {
                merged.insert(tid, lane);
            }
        }
    }
    let mut lanes: Vec<Lane> = merged.into_values().collect();
    for l in &mut lanes {
        l.events.sort_by_key(|e| e[0]);
    }
    lanes.sort_by_key(|l| std::cmp::Reverse(l.total));
    tl.lanes = lanes;
    Ok(Some(tl))
}

/// Merges a selection into one pprof (all types, or the one asked for).
pub fn export_pprof(
    store: &Store,
    conn: &Connection,
    sel: &Selection,
    type_name: Option<&str>,
) -> Result<crate::pprof::Profile> {
    use crate::pprof::{Function, Line, Location, Profile, Sample, ValueType};
    let ids = sel.profile_ids(conn)?;
    let types: Vec<SampleType> = match type_name.filter(|t| !t.is_empty()) {
        Some(_) => resolve_type(conn, type_name, sel)?.into_iter().collect(),
        None => types_in(conn, sel)?.into_iter().map(|(t, _)| t).collect(),
    };
    let col: HashMap<i64, usize> = types.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
    let mut agg: HashMap<i64, Vec<i64>> = HashMap::new();
    {
        let mut st = conn
            .prepare_cached("SELECT type_id, stack_id, value FROM samples WHERE profile_id = ?1")?;
        for id in &ids {
            let mut rows = st.query([id])?;
            while let Some(r) = rows.next()? {
                let tid: i64 = r.get(0)?;
                let Some(c) = col.get(&tid) else {
                    continue;
                };
                let sid: i64 = r.get(1)?;
                let v: i64 = r.get(2)?;
                let e = agg.entry(sid).or_insert_with(|| vec![0; types.len()]);
                if let Some(slot) = e.get_mut(*c) {
                    *slot = slot.saturating_add(v);
                }
            }
        }
    }
    let stacks = store.resolve_stacks(conn, agg.keys().copied())?;
    let frames = store.resolve_frames(conn, stacks.values().flat_map(|s| s.iter().copied()))?;
    let mut strings: Vec<String> = vec![String::new()];
    let mut string_idx: HashMap<String, i64> = HashMap::new();
    let mut intern = |s: &str| -> i64 {
        if s.is_empty() {
            return 0;
        }
        if let Some(i) = string_idx.get(s) {
            return *i;
        }
        let i = strings.len() as i64;
        strings.push(s.to_string());
        string_idx.insert(s.to_string(), i);
        i
    };
    let mut p = Profile {
        sample_type: types
            .iter()
            .map(|t| ValueType {
                r#type: intern(&t.name),
                unit: intern(&t.unit),
            })
            .collect(),
        time_nanos: sel.from,
        duration_nanos: sel.to.saturating_sub(sel.from),
        ..Default::default()
    };
    let mut func_idx: HashMap<(String, String), u64> = HashMap::new();
    let mut loc_idx: HashMap<i64, u64> = HashMap::new();
    for (fid, f) in &frames {
        let key = (f.name.clone(), f.file.clone());
        let func_id = match func_idx.get(&key) {
            Some(i) => *i,
            None => {
                let i = p.function.len() as u64 + 1;
                p.function.push(Function {
                    id: i,
                    name: intern(&f.name),
                    system_name: 0,
                    filename: intern(&f.file),
                    start_line: 0,
                });
                func_idx.insert(key, i);
                i
            }
        };
        let li = p.location.len() as u64 + 1;
        p.location.push(Location {
            id: li,
            mapping_id: 0,
            address: 0,
            line: vec![Line {
                function_id: func_id,
                line: f.line,
                column: 0,
            }],
            is_folded: false,
        });
        loc_idx.insert(*fid, li);
    }
    for (sid, values) in agg {
        let Some(fr) = stacks.get(&sid) else {
            continue;
        };
        p.sample.push(Sample {
            location_id: fr.iter().filter_map(|f| loc_idx.get(f).copied()).collect(),
            value: values,
            label: Vec::new(),
        });
    }
    if let Some(first) = p.sample_type.first().copied() {
        p.period_type = Some(first);
        p.period = 1;
    }
    p.string_table = strings;
    Ok(p)
}
