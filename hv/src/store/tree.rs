//! The store's data: nodes with values, children (in creation order, as xenstored keeps them)
//! and permissions, and the view a request sees (the tree itself, or a transaction's overlay on
//! it). Semantics follow Xen 4.17's `tools/xenstore/xenstored_core.c` (cited per function).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use super::XsErr as Errno;

/// `XS_PERM_*` bits (tools/include/xenstore_lib.h: NONE 0, READ 1, WRITE 2, OWNER 8).
pub mod perm {
    pub const NONE: u8 = 0;
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const OWNER: u8 = 8;
}

/// One `struct xs_permissions`: a domain and what it may do.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Perm {
    pub id: u32,
    pub bits: u8,
}

/// A node's permission list: entry 0 is the owner and the default for everyone else.
pub type Perms = Vec<Perm>;

/// `xs_perm_to_string`: 'n', 'r', 'w' or 'b', then the domain id.
pub fn perm_string(p: &Perm) -> String {
    let c = match p.bits & (perm::READ | perm::WRITE) {
        perm::READ => 'r',
        perm::WRITE => 'w',
        x if x == perm::READ | perm::WRITE => 'b',
        _ => 'n',
    };
    alloc::format!("{c}{}", p.id)
}

/// `xs_strings_to_perms` (tools/libs/store/xs_lib.c): each string a letter then a number.
pub fn parse_perm(s: &[u8]) -> Result<Perm, Errno> {
    let (&c, rest) = s.split_first().ok_or(Errno::EINVAL)?;
    let bits = match c {
        b'r' => perm::READ,
        b'w' => perm::WRITE,
        b'b' => perm::READ | perm::WRITE,
        b'n' => perm::NONE,
        _ => return Err(Errno::EINVAL),
    };
    // strtol(p, &end, 0) with *end == 0 and a non-empty number.
    let id = parse_c_long(rest).ok_or(Errno::EINVAL)?;
    Ok(Perm { id: id as u32, bits })
}

/// `strtol(s, &end, 0)` that must consume all of `s`.
fn parse_c_long(s: &[u8]) -> Option<i64> {
    let (neg, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = if s.len() > 2 && (s.starts_with(b"0x") || s.starts_with(b"0X")) {
        (16, &s[2..])
    } else if s.len() > 1 && s[0] == b'0' {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        let x = (d as char).to_digit(radix)? as i64;
        v = v.checked_mul(radix as i64)?.checked_add(x)?;
    }
    Some(if neg { -v } else { v })
}

/// One node.
#[derive(Clone, Debug)]
pub struct Node {
    pub value: Vec<u8>,
    /// Child names in creation order.
    pub children: Vec<String>,
    pub perms: Perms,
    /// The store's generation count when the node last changed (transactions compare it).
    pub generation: u64,
}

impl Node {
    /// Bytes of the child list as xenstored stores it (each name and its NUL).
    pub fn childlen(&self) -> usize {
        self.children.iter().map(|c| c.len() + 1).sum()
    }
    pub fn owner(&self) -> u32 {
        self.perms.first().map_or(0, |p| p.id)
    }
    /// The size xenstored's `write_node_raw` checks against `quota_max_entry_size`:
    /// `struct xs_tdb_record_hdr` (24 bytes), 8 bytes per permission, the data and the children.
    pub fn record_size(&self) -> usize {
        24 + 8 * self.perms.len() + self.value.len() + self.childlen()
    }
}

/// The whole tree: nodes by absolute path, and how many nodes each domain owns.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub nodes: BTreeMap<String, Node>,
    pub owned: BTreeMap<u32, u32>,
}

impl Tree {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }
    pub fn entries_of(&self, dom: u32) -> u32 {
        self.owned.get(&dom).copied().unwrap_or(0)
    }
    /// Replace or insert a node, keeping the ownership counts.
    pub fn put(&mut self, path: &str, node: Node) {
        let owner = node.owner();
        if let Some(old) = self.nodes.insert(path.into(), node) {
            self.uncount(old.owner());
        }
        *self.owned.entry(owner).or_insert(0) += 1;
    }
    pub fn remove(&mut self, path: &str) -> Option<Node> {
        let old = self.nodes.remove(path)?;
        self.uncount(old.owner());
        Some(old)
    }
    fn uncount(&mut self, owner: u32) {
        if let Some(c) = self.owned.get_mut(&owner) {
            *c = c.saturating_sub(1);
            if *c == 0 {
                self.owned.remove(&owner);
            }
        }
    }
}

/// A transaction's private state: the nodes it changed (None = deleted), what it saw of the
/// tree (path -> generation, None = absent) for the commit-time conflict check, and the watch
/// events its changes will fire at commit.
#[derive(Clone, Debug, Default)]
pub struct TxState {
    pub changed: BTreeMap<String, Option<Node>>,
    pub accessed: BTreeMap<String, Option<u64>>,
    pub events: Vec<super::Fire>,
    /// Net change of entries per owner (for the entries quota).
    pub delta: BTreeMap<u32, i64>,
    /// A node was created (xenstored checks the quota again at commit then).
    pub created: bool,
}

/// `quota_trans_nodes`: nodes one transaction may touch (xenstored_core.c).
pub const QUOTA_TRANS_NODES: usize = 1024;

/// What a request reads and writes: the tree, through a transaction's overlay when it has one.
pub struct View<'a> {
    pub tree: &'a mut Tree,
    pub tx: Option<&'a mut TxState>,
    pub generation: &'a mut u64,
    /// The requester is unprivileged (quota on transaction size applies).
    pub unpriv: bool,
}

impl View<'_> {
    /// Record that the transaction saw `path` (xenstored's `access_node`).
    fn access(&mut self, path: &str) -> Result<(), Errno> {
        if let Some(tx) = self.tx.as_deref_mut() {
            if !tx.accessed.contains_key(path) && !tx.changed.contains_key(path) {
                if self.unpriv && tx.accessed.len() >= QUOTA_TRANS_NODES {
                    return Err(Errno::ENOSPC);
                }
                tx.accessed.insert(path.into(), self.tree.get(path).map(|n| n.generation));
            }
        }
        Ok(())
    }

    pub fn read(&mut self, path: &str) -> Result<Option<Node>, Errno> {
        if let Some(tx) = self.tx.as_deref() {
            if let Some(n) = tx.changed.get(path) {
                return Ok(n.clone());
            }
        }
        self.access(path)?;
        Ok(self.tree.get(path).cloned())
    }

    /// Node count of `dom` as this view sees it.
    pub fn entries_of(&self, dom: u32) -> i64 {
        let base = self.tree.entries_of(dom) as i64;
        base + self.tx.as_deref().and_then(|t| t.delta.get(&dom).copied()).unwrap_or(0)
    }

    pub fn write(&mut self, path: &str, mut node: Node, created: bool) -> Result<(), Errno> {
        self.access(path)?;
        match self.tx.as_deref_mut() {
            Some(tx) => {
                let old_owner = match tx.changed.get(path) {
                    Some(n) => n.as_ref().map(|n| n.owner()),
                    None => self.tree.get(path).map(|n| n.owner()),
                };
                if let Some(o) = old_owner {
                    *tx.delta.entry(o).or_insert(0) -= 1;
                }
                *tx.delta.entry(node.owner()).or_insert(0) += 1;
                tx.created |= created;
                tx.changed.insert(path.into(), Some(node));
            }
            None => {
                *self.generation += 1;
                node.generation = *self.generation;
                self.tree.put(path, node);
            }
        }
        Ok(())
    }

    pub fn delete(&mut self, path: &str) -> Result<(), Errno> {
        self.access(path)?;
        match self.tx.as_deref_mut() {
            Some(tx) => {
                let old_owner = match tx.changed.get(path) {
                    Some(n) => n.as_ref().map(|n| n.owner()),
                    None => self.tree.get(path).map(|n| n.owner()),
                };
                if let Some(o) = old_owner {
                    *tx.delta.entry(o).or_insert(0) -= 1;
                }
                tx.changed.insert(path.into(), None);
            }
            None => {
                *self.generation += 1;
                self.tree.remove(path);
            }
        }
        Ok(())
    }
}

/// `get_parent`: "/" for a top-level node.
pub fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component (`basename`; not for "/").
pub fn base_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}

/// `child_name`.
pub fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        alloc::format!("/{child}")
    } else {
        alloc::format!("{parent}/{child}")
    }
}

/// `is_child` (xenstored_watch.c): `child` is `parent` or below it; everything is below "/".
pub fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return true;
    }
    child.strip_prefix(parent).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}
