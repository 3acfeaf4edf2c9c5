//! xenstore, served from the core (Xen runs `xenstored` in dom0; xenolith serves the store itself
//! so the simulator and the bootable image both have it).
//!
//! The behaviour is Xen 4.17's C xenstored (`tools/xenstore/xenstored_core.c`, `_domain.c`,
//! `_watch.c`, `_transaction.c`), cited per function: the xs_wire protocol over each domain's ring
//! page (`ring.rs`: requests may arrive a few bytes at a time and across the ring's wrap; replies
//! wait for room), the operations and their errors (`ops.rs`), permissions as xenstored checks
//! them (`tree.rs`), watches with their initial event, transactions that fail with EAGAIN when a
//! node they saw changed, and xenstored's default quotas. The toolstack (xl/libxl's part: the
//! tree of a new domain, `control/shutdown`) acts as the privileged dom0 connection (`tool.rs`).
//!
//! Every guest request makes one trace line, `d1 xenstore read domid = "1"`; every watch event
//! queued for a guest makes one, `d1 xenstore event control/shutdown token "t"`.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use crate::DomId;

mod ops;
pub mod ring;
pub mod tool;
pub mod tree;

pub use ring::{MemRing, Ring};
pub use tool::{DomInfo, PendingShutdown, SHUTDOWN_GRACE_NS};
use tree::{Perm, Perms, Tree, TxState};

/// xenstored's default quotas (xenstored_core.c, `quota_*`).
pub mod quota {
    /// `quota_nb_entry_per_domain`: nodes a domain may own.
    pub const ENTRIES: i64 = 1000;
    /// `quota_nb_watch_per_domain`.
    pub const WATCHES: usize = 128;
    /// `quota_max_entry_size`: a node's stored record (header, permissions, value, child names).
    pub const ENTRY_SIZE: usize = 2048;
    /// `quota_max_transaction`.
    pub const TRANSACTIONS: usize = 10;
    /// `quota_nb_perms_per_node`.
    pub const PERMS: usize = 5;
    /// `quota_req_outstanding`: replies queued for a domain before its input waits.
    pub const OUTSTANDING: usize = 20;
    /// `quota_memory_per_domain_hard` (2.5 MiB), applied here to output queued for a domain.
    pub const MEMORY_HARD: usize = 2 * 1024 * 1024 + 512 * 1024;
}

/// The errors a reply can carry: xs_wire.h's `xsd_errors` table, by name.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(clippy::upper_case_acronyms)]
pub enum XsErr {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
}

impl XsErr {
    /// The string sent in an XS_ERROR reply (xs_wire.h `xsd_errors`).
    pub fn name(self) -> &'static str {
        match self {
            XsErr::EINVAL => "EINVAL",
            XsErr::EACCES => "EACCES",
            XsErr::EEXIST => "EEXIST",
            XsErr::EISDIR => "EISDIR",
            XsErr::ENOENT => "ENOENT",
            XsErr::ENOMEM => "ENOMEM",
            XsErr::ENOSPC => "ENOSPC",
            XsErr::EIO => "EIO",
            XsErr::ENOTEMPTY => "ENOTEMPTY",
            XsErr::ENOSYS => "ENOSYS",
            XsErr::EROFS => "EROFS",
            XsErr::EBUSY => "EBUSY",
            XsErr::EAGAIN => "EAGAIN",
            XsErr::EISCONN => "EISCONN",
            XsErr::E2BIG => "E2BIG",
            XsErr::EPERM => "EPERM",
        }
    }
}

/// A watch (`struct watch`): the canonical node, the token, and whether the guest gave a
/// relative path (its events then carry relative paths).
#[derive(Clone, Debug)]
pub struct Watch {
    pub node: String,
    pub token: Vec<u8>,
    pub relative: bool,
}

/// A change that fires watches: `fire_watches(name, exact)` with the permissions that decide
/// who may see it (the node's, its parent's, and its old ones when they changed).
#[derive(Clone, Debug)]
pub struct Fire {
    pub path: String,
    pub exact: bool,
    pub perms: Vec<Perms>,
}

/// One domain's connection: its partial request, queued output, watches and transactions.
#[derive(Debug, Default)]
pub struct Conn {
    /// Bytes of the message being received (header, then payload).
    pub inbuf: Vec<u8>,
    /// Messages waiting for room in the response ring; `out_off` bytes of the first are sent.
    pub out: VecDeque<(Vec<u8>, bool)>,
    pub out_off: usize,
    pub watches: Vec<Watch>,
    pub txs: BTreeMap<u32, TxState>,
    pub next_tx: u32,
    /// A protocol error stopped the connection (xenstored's `ignore_connection`).
    pub ignored: bool,
}

impl Conn {
    /// Replies (not watch events) still queued: `domain_outstanding`.
    pub fn outstanding(&self) -> usize {
        self.out.iter().filter(|(_, event)| !event).count()
    }
}

/// The store: the tree, one connection per domain, and the toolstack's pending shutdowns.
pub struct Store {
    pub tree: Tree,
    /// xenstored's global generation count.
    pub generation: u64,
    pub conns: BTreeMap<DomId, Conn>,
    /// Shutdown requests written to control/shutdown and not yet acted on.
    pub pending: BTreeMap<DomId, PendingShutdown>,
    /// Trace lines made since the caller last took them.
    pub lines: Vec<String>,
    pub tracing: bool,
    /// Watches added by the request being handled: their first event follows the reply.
    after_reply: Vec<(DomId, Watch)>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// The perms of a node dom0 made and nobody else may see: `n0`.
pub fn dom0_only() -> Perms {
    alloc::vec![Perm { id: 0, bits: tree::perm::NONE }]
}

impl Store {
    /// An empty store: "/" plus "/local/domain" and "/tool/xenstored", as xenstored sets up
    /// (`setup_structure`, perms `n0`).
    pub fn new() -> Self {
        let mut s = Self {
            tree: Tree::default(),
            generation: 0,
            conns: BTreeMap::new(),
            pending: BTreeMap::new(),
            lines: Vec::new(),
            tracing: true,
            after_reply: Vec::new(),
        };
        s.tree.put("/", tree::Node { value: Vec::new(), children: Vec::new(), perms: dom0_only(), generation: 0 });
        for p in ["/local/domain", "/tool/xenstored"] {
            let _ = s.tool_mkdir(p, None);
        }
        let _ = s.tool_write("/tool/xenstored/domid", b"0");
        s
    }

    /// Take the trace lines made so far.
    pub fn take_lines(&mut self) -> Vec<String> {
        core::mem::take(&mut self.lines)
    }

    /// Queue a message for `dom`. Watch events identical to one already queued are dropped
    /// (xenstored `send_event`), as are over-long ones.
    fn queue(&mut self, dom: DomId, msg: Vec<u8>, event: bool) {
        let Some(c) = self.conns.get_mut(&dom) else { return };
        if c.ignored {
            return;
        }
        if event {
            if msg.len() - 16 > crate::abi::XENSTORE_PAYLOAD_MAX {
                return;
            }
            let special = msg.get(16) == Some(&b'@');
            // The first message may be partly sent already: it still counts as queued.
            if !special && c.out.iter().any(|(m, e)| *e && *m == msg) {
                return;
            }
            // domain_memory_add_chk: a domain that does not read its ring cannot make the store
            // hold more than quota_memory_per_domain_hard of its output; the event is dropped.
            let held: usize = c.out.iter().map(|(m, _)| m.len()).sum();
            if held + msg.len() > quota::MEMORY_HARD {
                return;
            }
        }
        c.out.push_back((msg, event));
    }

    /// Deliver watch events for a change (xenstored_watch.c `fire_watches`).
    pub(crate) fn fire(&mut self, f: &Fire) {
        let mut events: Vec<(DomId, Vec<u8>, String)> = Vec::new();
        for (&dom, c) in &self.conns {
            if c.ignored {
                continue;
            }
            // check_perms_special: the special nodes are dom0's (n0), a domU gets no events.
            if f.path.starts_with('@') {
                continue;
            }
            // watch_permitted: the node (old or new perms) or its parent readable.
            let who = dom as u32;
            if !f.perms.iter().any(|p| ops::perm_for(who, p) & tree::perm::READ != 0) {
                continue;
            }
            for w in &c.watches {
                let hit = if f.exact { f.path == w.node } else { tree::is_child(&f.path, &w.node) };
                if hit {
                    let path = watch_path(dom, w, &f.path);
                    events.push((dom, event_msg(&path, &w.token), self.event_line(dom, &path, &w.token)));
                }
            }
        }
        for (dom, msg, line) in events {
            let before = self.conns.get(&dom).map_or(0, |c| c.out.len());
            self.queue(dom, msg, true);
            if self.conns.get(&dom).map_or(0, |c| c.out.len()) > before && self.tracing {
                self.lines.push(line);
            }
        }
    }

    fn event_line(&self, dom: DomId, path: &str, token: &[u8]) -> String {
        if !self.tracing {
            return String::new();
        }
        alloc::format!("d{dom} xenstore event {} token {}", show_path(path.as_bytes()), show(token))
    }

    /// Queue the initial event of a new watch (xenstored_watch.c `do_watch`: "We fire once up
    /// front").
    fn initial_event(&mut self, dom: DomId, w: &Watch) {
        let path = watch_path(dom, w, &w.node);
        let line = self.event_line(dom, &path, &w.token);
        let before = self.conns.get(&dom).map_or(0, |c| c.out.len());
        self.queue(dom, event_msg(&path, &w.token), true);
        if self.conns.get(&dom).map_or(0, |c| c.out.len()) > before && self.tracing {
            self.lines.push(line);
        }
    }

    /// Does a domain exist for the purpose of permissions (`domain_alloc_permrefs`)? dom0 (the
    /// toolstack) always does.
    pub fn domain_exists(&self, id: u32) -> bool {
        id == 0 || u16::try_from(id).is_ok_and(|d| self.conns.contains_key(&d))
    }
}

/// `get_watch_path`: a relative watch sees paths relative to its domain's home.
fn watch_path(dom: DomId, w: &Watch, name: &str) -> String {
    if w.relative {
        let home = home_of(dom as u32);
        if let Some(rest) = name.strip_prefix(home.as_str()) {
            return String::from(rest.strip_prefix('/').unwrap_or(rest));
        }
    }
    name.into()
}

/// `/local/domain/N` (`get_implicit_path`, `talloc_domain_path`).
pub fn home_of(dom: u32) -> String {
    alloc::format!("/local/domain/{dom}")
}

/// An XS_WATCH_EVENT message: "path\0token\0", req_id and tx_id 0.
fn event_msg(path: &str, token: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(path.len() + token.len() + 2);
    body.extend_from_slice(path.as_bytes());
    body.push(0);
    body.extend_from_slice(token);
    body.push(0);
    message(crate::abi::xs::WATCH_EVENT, 0, 0, &body)
}

/// A message: the 16-byte `xsd_sockmsg` header, then the body.
pub fn message(ty: u32, req_id: u32, tx_id: u32, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + body.len());
    for w in [ty, req_id, tx_id, body.len() as u32] {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m.extend_from_slice(body);
    m
}

/// A guest string for a trace line: quoted, cut at 64 bytes.
pub fn show(b: &[u8]) -> String {
    let cut = b.len() > 64;
    let s = String::from_utf8_lossy(&b[..b.len().min(64)]);
    if cut {
        alloc::format!("{s:?}… ({} bytes)", b.len())
    } else {
        alloc::format!("{s:?}")
    }
}

/// A path for a trace line: bare when it is a plain path, else quoted.
pub fn show_path(b: &[u8]) -> String {
    let plain = !b.is_empty() && b.len() <= 128 && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"-/_@.".contains(&c));
    if plain {
        String::from_utf8_lossy(b).into_owned()
    } else {
        show(b)
    }
}
