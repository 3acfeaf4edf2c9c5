//! The operations of the xs_wire protocol, as xenstored_core.c's `wire_funcs` table answers an
//! unprivileged domain. The toolstack (`who` = 0) is privileged: it passes every permission
//! check and no quota applies to it, as for dom0 in xenstored (`domain_is_unprivileged`).

use alloc::string::String;
use alloc::vec::Vec;

use super::tree::{self, perm, Node, Perm, Perms, View};
use super::{home_of, message, quota, show, show_path, Fire, Store, Watch, XsErr};
use crate::abi::{xs, XENSTORE_PAYLOAD_MAX, XENSTORE_REL_PATH_MAX};
use crate::DomId;

type R<T> = Result<T, XsErr>;

/// `XS_PERM_IGNORE` (xenstore_lib.h): a permission for a domain that does not exist.
pub const PERM_IGNORE: u8 = 16;

/// `perm_for_conn`: what `who` may do to a node with these permissions.
pub fn perm_for(who: u32, perms: &Perms) -> u8 {
    let all = perm::READ | perm::WRITE | perm::OWNER;
    if who == 0 || perms.first().is_some_and(|p| p.id == who) {
        return all;
    }
    for p in perms.iter().skip(1) {
        if p.bits & PERM_IGNORE == 0 && p.id == who {
            return p.bits & all;
        }
    }
    perms.first().map_or(0, |p| p.bits & all)
}

/// `is_valid_nodename`.
pub fn valid_nodename(node: &str) -> bool {
    if !node.starts_with('/') || (node.ends_with('/') && node != "/") || node.contains("//") {
        return false;
    }
    // sscanf(node, "/local/domain/%5u/%n"): paths below a domain's home may be
    // quota_max_path_len long after that prefix.
    let mut local_off = 0;
    if let Some(rest) = node.strip_prefix("/local/domain/") {
        let digits = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
        if (1..=5).contains(&digits) && rest.as_bytes().get(digits) == Some(&b'/') {
            local_off = "/local/domain/".len() + digits + 1;
        }
    }
    if node.len() > local_off + XENSTORE_REL_PATH_MAX {
        return false;
    }
    node.bytes().all(|c| c.is_ascii_alphanumeric() || b"-/_@".contains(&c))
}

/// `canonicalize`: a relative path is below the requester's home.
fn canonical(who: u32, p: &str) -> String {
    if p.starts_with('/') || p.starts_with('@') || who == 0 {
        p.into()
    } else {
        alloc::format!("{}/{p}", home_of(who))
    }
}

/// `onearg`: the payload is exactly one NUL-terminated string.
fn onearg(p: &[u8]) -> Option<&[u8]> {
    match p.iter().position(|&b| b == 0) {
        Some(i) if i + 1 == p.len() => Some(&p[..i]),
        _ => None,
    }
}

/// `get_strings`: the NUL-terminated strings of the payload (bytes after the last NUL ignored).
fn strings(p: &[u8]) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut rest = p;
    while let Some(i) = rest.iter().position(|&b| b == 0) {
        v.push(&rest[..i]);
        rest = &rest[i + 1..];
    }
    v
}

/// C's `atoi`.
fn atoi(s: &[u8]) -> i32 {
    let s = s.iter().skip_while(|c| c.is_ascii_whitespace()).copied().collect::<Vec<u8>>();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, &s[..]),
    };
    let mut v: i64 = 0;
    for &d in digits.iter().take_while(|c| c.is_ascii_digit()) {
        v = (v * 10 + (d - b'0') as i64).min(1 << 40);
    }
    (if neg { -v } else { v }) as i32
}

fn utf8(b: &[u8]) -> R<&str> {
    core::str::from_utf8(b).map_err(|_| XsErr::EINVAL)
}

/// One request's work on the tree.
pub(crate) struct Op<'a> {
    pub v: View<'a>,
    pub who: u32,
    pub fires: Vec<Fire>,
}

impl Op<'_> {
    fn unpriv(&self) -> bool {
        self.who != 0
    }

    /// `ask_parents`: what the nearest existing ancestor allows.
    fn ask_parents(&mut self, name: &str) -> R<u8> {
        let mut n = name;
        loop {
            n = tree::parent_of(n);
            if let Some(node) = self.v.read(n)? {
                return Ok(perm_for(self.who, &node.perms));
            }
            if n == "/" {
                return Ok(perm::NONE);
            }
        }
    }

    /// `get_node`: the node if `who` has `want` on it; else ENOENT or EACCES, EACCES also when
    /// the nearest ancestor would not tell (`errno_from_parents`).
    pub fn get(&mut self, name: &str, want: u8) -> R<Node> {
        if !valid_nodename(name) {
            return Err(XsErr::EINVAL);
        }
        let err = match self.v.read(name)? {
            Some(n) if perm_for(self.who, &n.perms) & want == want => return Ok(n),
            Some(_) => XsErr::EACCES,
            None => XsErr::ENOENT,
        };
        let pp = self.ask_parents(name)?;
        Err(if pp & want != 0 { err } else { XsErr::EACCES })
    }

    fn check_size(&self, n: &Node) -> R<()> {
        if self.unpriv() && n.record_size() >= quota::ENTRY_SIZE {
            return Err(XsErr::ENOSPC);
        }
        Ok(())
    }

    /// `create_node` (with `construct_node`): make `name` and any missing ancestors; new nodes
    /// inherit their parent's permissions, and an unprivileged creator owns them. All quota
    /// checks happen before anything is written, so a refusal leaves the tree as it was.
    pub fn create(&mut self, name: &str, value: Vec<u8>) -> R<Node> {
        let mut names = alloc::vec![String::from(name)];
        let mut parent = loop {
            let p = tree::parent_of(names.last().map(|s| s.as_str()).unwrap_or("/")).to_string_owned();
            match self.v.read(&p)? {
                Some(n) => break (p, n),
                None if p == "/" => return Err(XsErr::ENOENT),
                None => names.push(p),
            }
        };
        let mut writes: Vec<(String, Node, bool)> = Vec::new();
        for (new_nodes, (i, n)) in names.iter().enumerate().rev().enumerate() {
            if self.unpriv() && self.v.entries_of(self.who) + new_nodes as i64 >= quota::ENTRIES {
                return Err(XsErr::ENOSPC);
            }
            parent.1.children.push(tree::base_of(n).into());
            self.check_size(&parent.1)?;
            writes.push((parent.0.clone(), parent.1.clone(), false));
            let mut perms = parent.1.perms.clone();
            if self.unpriv() {
                if let Some(p) = perms.first_mut() {
                    p.id = self.who;
                }
            }
            let val = if i == 0 { value.clone() } else { Vec::new() };
            let node = Node { value: val, children: Vec::new(), perms, generation: 0 };
            self.check_size(&node)?;
            parent = (n.clone(), node);
        }
        writes.push((parent.0.clone(), parent.1.clone(), true));
        // Later writes of the same parent supersede earlier ones.
        for (p, n, created) in writes {
            self.v.write(&p, n, created)?;
        }
        self.v.read(name)?.ok_or(XsErr::EIO)
    }

    fn fire(&mut self, path: &str, exact: bool, extra: Option<Perms>) -> R<()> {
        let mut perms = Vec::new();
        if let Some(p) = extra {
            perms.push(p);
        }
        if let Some(n) = self.v.read(path)? {
            perms.push(n.perms);
        }
        if let Some(n) = self.v.read(tree::parent_of(path))? {
            perms.push(n.perms);
        }
        self.fires.push(Fire { path: path.into(), exact, perms });
        Ok(())
    }

    /// `do_write`.
    pub fn write(&mut self, name: &str, value: &[u8]) -> R<()> {
        match self.get(name, perm::WRITE) {
            Ok(mut n) => {
                n.value = value.into();
                self.check_size(&n)?;
                self.v.write(name, n, false)?;
            }
            Err(XsErr::ENOENT) => {
                self.create(name, value.into())?;
            }
            Err(e) => return Err(e),
        }
        self.fire(name, false, None)
    }

    /// `do_mkdir`: fine if it exists.
    pub fn mkdir(&mut self, name: &str) -> R<()> {
        match self.get(name, perm::WRITE) {
            Ok(_) => Ok(()),
            Err(XsErr::ENOENT) => {
                self.create(name, Vec::new())?;
                self.fire(name, false, None)
            }
            Err(e) => Err(e),
        }
    }

    /// `do_rm`: fine if it does not exist but its parent does; "/" cannot go.
    pub fn rm(&mut self, name: &str) -> R<()> {
        match self.get(name, perm::WRITE) {
            Ok(_) => {}
            Err(XsErr::ENOENT) => {
                return if self.v.read(tree::parent_of(name))?.is_some() { Ok(()) } else { Err(XsErr::ENOENT) };
            }
            Err(e) => return Err(e),
        }
        if name == "/" {
            return Err(XsErr::EINVAL);
        }
        let parent_name = tree::parent_of(name);
        let Some(mut parent) = self.v.read(parent_name)? else { return Err(XsErr::EINVAL) };
        // walk_node_tree with delnode_sub: children first; each node fires its watches while
        // its permissions can still be seen (exact for all but the removed root).
        let mut order = Vec::new();
        let mut stack = alloc::vec![(String::from(name), false)];
        while let Some((p, expanded)) = stack.pop() {
            if expanded {
                order.push(p);
                continue;
            }
            let children = self.v.read(&p)?.map(|n| n.children).unwrap_or_default();
            stack.push((p.clone(), true));
            for c in children.iter().rev() {
                stack.push((tree::child_path(&p, c), false));
            }
        }
        for p in &order {
            self.fire(p, p != name, None)?;
            self.v.delete(p)?;
        }
        let base = tree::base_of(name);
        parent.children.retain(|c| c != base);
        self.v.write(parent_name, parent, false)
    }

    /// `do_set_perms` on a node.
    pub fn set_perms(&mut self, name: &str, perms: Perms) -> R<()> {
        let mut n = self.get(name, perm::WRITE | perm::OWNER)?;
        if self.unpriv() && perms.first().map(|p| p.id) != n.perms.first().map(|p| p.id) {
            return Err(XsErr::EPERM);
        }
        let old = core::mem::replace(&mut n.perms, perms);
        self.check_size(&n)?;
        self.v.write(name, n, false)?;
        self.fire(name, false, Some(old))
    }
}

trait OwnedStr {
    fn to_string_owned(&self) -> String;
}
impl OwnedStr for str {
    fn to_string_owned(&self) -> String {
        String::from(self)
    }
}

/// What a request produced: a reply body (its type is the request's) or an error.
type Reply = R<Vec<u8>>;

const OK: &[u8] = b"OK\0";

impl Store {
    /// Run one complete request of `dom` (16-byte header then payload): queue its reply (and any
    /// watch events) and trace it. xenstored_core.c `process_message`.
    pub fn request(&mut self, dom: DomId, msg: &[u8]) {
        let word = |i: usize| u32::from_le_bytes([msg[i], msg[i + 1], msg[i + 2], msg[i + 3]]);
        if msg.len() < 16 {
            return;
        }
        let (ty, req_id, tx_id) = (word(0), word(4), word(8));
        let payload = &msg[16..];
        let mut desc = String::new();
        let r = match self.dispatch(dom, ty, tx_id, payload, &mut desc) {
            // send_reply: a reply longer than a message may carry becomes E2BIG.
            Ok(b) if b.len() > XENSTORE_PAYLOAD_MAX => Err(XsErr::E2BIG),
            r => r,
        };
        let reply = match &r {
            Ok(b) => message(ty, req_id, tx_id, b),
            Err(e) => {
                let mut b = Vec::from(e.name().as_bytes());
                b.push(0);
                message(xs::ERROR, req_id, tx_id, &b)
            }
        };
        if self.tracing {
            let result = match &r {
                Ok(b) => describe_reply(ty, b),
                Err(e) => String::from(e.name()),
            };
            let txs = if tx_id != 0 && !matches!(ty, xs::WATCH | xs::UNWATCH) { alloc::format!(" tx={tx_id}") } else { String::new() };
            self.lines.push(alloc::format!("d{dom} xenstore {desc}{txs} = {result}"));
        }
        // xenstored queues the events a change fires (during the operation) before the reply,
        // and a new watch's first event after it (do_watch: send_ack, then send_event).
        self.queue(dom, reply, false);
        let pending = core::mem::take(&mut self.after_reply);
        for (d, w) in pending {
            self.initial_event(d, &w);
        }
    }

    fn dispatch(&mut self, dom: DomId, ty: u32, tx_id: u32, p: &[u8], desc: &mut String) -> Reply {
        let who = dom as u32;
        let name = op_name(ty);
        *desc = String::from(name);
        let Some(flags) = op_flags(ty) else { return Err(XsErr::ENOSYS) };
        if flags & PRIV != 0 && who != 0 {
            return Err(XsErr::EACCES);
        }
        // Arguments for the trace line.
        let args = strings(p);
        let path_arg = args.first().map(|a| show_path(a)).unwrap_or_default();
        match ty {
            xs::WRITE => {
                *desc = alloc::format!("write {path_arg} {}", show(p.get(args.first().map_or(0, |a| a.len() + 1)..).unwrap_or(&[])))
            }
            xs::WATCH | xs::UNWATCH => {
                *desc = alloc::format!("{name} {path_arg} token {}", args.get(1).map(|t| show(t)).unwrap_or_default())
            }
            xs::SET_PERMS => {
                let ps: Vec<String> = args.iter().skip(1).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                *desc = alloc::format!("set_perms {path_arg} {}", ps.join(" "))
            }
            xs::DIRECTORY_PART => {
                *desc = alloc::format!("directory_part {path_arg} offset {}", args.get(1).map(|a| show(a)).unwrap_or_default())
            }
            xs::TRANSACTION_START | xs::RESET_WATCHES => {}
            _ if !p.is_empty() => *desc = alloc::format!("{name} {path_arg}"),
            _ => {}
        }
        // transaction_lookup (not for watch and unwatch: XS_FLAG_NOTID).
        let tx = if flags & NOTID != 0 || tx_id == 0 {
            None
        } else if self.conns.get(&dom).is_some_and(|c| c.txs.contains_key(&tx_id)) {
            Some(tx_id)
        } else {
            return Err(XsErr::ENOENT);
        };
        match ty {
            xs::READ => self.with_op(dom, tx, |op| {
                let n = canonical(who, utf8(onearg(p).ok_or(XsErr::EINVAL)?)?);
                Ok(op.get(&n, perm::READ)?.value)
            }),
            xs::DIRECTORY => self.with_op(dom, tx, |op| {
                let n = canonical(who, utf8(onearg(p).ok_or(XsErr::EINVAL)?)?);
                Ok(join(&op.get(&n, perm::READ)?.children))
            }),
            xs::DIRECTORY_PART => self.with_op(dom, tx, |op| {
                // send_directory_part: "generation\0" then as many child names as fit, and an
                // empty string when the list ends.
                if p.iter().filter(|&&b| b == 0).count() != 2 {
                    return Err(XsErr::EINVAL);
                }
                let n = canonical(who, utf8(args[0])?);
                let node = op.get(&n, perm::READ)?;
                let off = atoi(args[1]).max(0) as usize;
                let children = join(&node.children);
                let mut out = alloc::format!("{}", node.generation).into_bytes();
                out.push(0);
                let genlen = out.len();
                if off >= children.len() {
                    out.push(0);
                    return Ok(out);
                }
                let maxlen = XENSTORE_PAYLOAD_MAX - genlen - 1;
                let mut len = 0;
                for c in children[off..].split_inclusive(|&b| b == 0) {
                    if len + c.len() > maxlen {
                        break;
                    }
                    len += c.len();
                }
                out.extend_from_slice(&children[off..off + len]);
                if off + len == children.len() {
                    out.push(0);
                }
                Ok(out)
            }),
            xs::GET_PERMS => self.with_op(dom, tx, |op| {
                let n = canonical(who, utf8(onearg(p).ok_or(XsErr::EINVAL)?)?);
                let node = op.get(&n, perm::READ)?;
                let mut out = Vec::new();
                for pm in &node.perms {
                    out.extend_from_slice(tree::perm_string(pm).as_bytes());
                    out.push(0);
                }
                Ok(out)
            }),
            xs::WRITE => self.with_op(dom, tx, |op| {
                if args.is_empty() {
                    return Err(XsErr::EINVAL);
                }
                let n = canonical(who, utf8(args[0])?);
                op.write(&n, &p[args[0].len() + 1..])?;
                Ok(OK.into())
            }),
            xs::MKDIR => self.with_op(dom, tx, |op| {
                let n = canonical(who, utf8(onearg(p).ok_or(XsErr::EINVAL)?)?);
                op.mkdir(&n)?;
                Ok(OK.into())
            }),
            xs::RM => self.with_op(dom, tx, |op| {
                let n = canonical(who, utf8(onearg(p).ok_or(XsErr::EINVAL)?)?);
                op.rm(&n)?;
                Ok(OK.into())
            }),
            xs::SET_PERMS => {
                let count = p.iter().filter(|&&b| b == 0).count();
                if count < 2 {
                    return Err(XsErr::EINVAL);
                }
                let num = count - 1;
                if who != 0 && num > quota::PERMS {
                    return Err(XsErr::ENOSPC);
                }
                let mut perms: Perms = Vec::new();
                for s in args.iter().skip(1).take(num) {
                    let mut pm: Perm = tree::parse_perm(s)?;
                    // domain_alloc_permrefs: a permission for a domain that does not exist is
                    // kept but ignored.
                    if !self.domain_exists(pm.id) {
                        pm.bits |= PERM_IGNORE;
                    }
                    perms.push(pm);
                }
                if perms[0].bits & PERM_IGNORE != 0 {
                    return Err(XsErr::ENOENT);
                }
                if args[0].starts_with(b"@") {
                    // set_perms_special: the special nodes are dom0's (n0).
                    return if who == 0 { Ok(OK.into()) } else { Err(XsErr::EACCES) };
                }
                self.with_op(dom, tx, |op| {
                    let n = canonical(who, utf8(args[0])?);
                    op.set_perms(&n, perms)?;
                    Ok(OK.into())
                })
            }
            xs::WATCH => {
                if args.len() != 2 {
                    return Err(XsErr::EINVAL);
                }
                let (path, relative) = watch_path_arg(who, args[0])?;
                let conn = self.conns.get_mut(&dom).ok_or(XsErr::EINVAL)?;
                if conn.watches.iter().any(|w| w.node == path && w.token == args[1]) {
                    return Err(XsErr::EEXIST);
                }
                if conn.watches.len() > quota::WATCHES {
                    return Err(XsErr::E2BIG);
                }
                let w = Watch { node: path, token: args[1].into(), relative };
                conn.watches.push(w.clone());
                self.after_reply.push((dom, w));
                Ok(OK.into())
            }
            xs::UNWATCH => {
                if args.len() != 2 {
                    return Err(XsErr::EINVAL);
                }
                let node = canonical(who, &String::from_utf8_lossy(args[0]));
                let conn = self.conns.get_mut(&dom).ok_or(XsErr::EINVAL)?;
                match conn.watches.iter().position(|w| w.node == node && w.token == args[1]) {
                    Some(i) => {
                        conn.watches.remove(i);
                        Ok(OK.into())
                    }
                    None => Err(XsErr::ENOENT),
                }
            }
            xs::TRANSACTION_START => {
                if tx.is_some() {
                    return Err(XsErr::EBUSY);
                }
                let conn = self.conns.get_mut(&dom).ok_or(XsErr::EINVAL)?;
                if who != 0 && conn.txs.len() > quota::TRANSACTIONS {
                    return Err(XsErr::ENOSPC);
                }
                // Pick an unused identifier; 0 means "no transaction".
                let id = loop {
                    let id = conn.next_tx;
                    conn.next_tx = conn.next_tx.wrapping_add(1);
                    if id != 0 && !conn.txs.contains_key(&id) {
                        break id;
                    }
                };
                conn.txs.insert(id, tree::TxState::default());
                let mut out = alloc::format!("{id}").into_bytes();
                out.push(0);
                Ok(out)
            }
            xs::TRANSACTION_END => {
                let arg = onearg(p).ok_or(XsErr::EINVAL)?;
                if arg != b"T" && arg != b"F" {
                    return Err(XsErr::EINVAL);
                }
                let Some(id) = tx else { return Err(XsErr::ENOENT) };
                let t = self.conns.get_mut(&dom).and_then(|c| c.txs.remove(&id)).ok_or(XsErr::ENOENT)?;
                if arg == b"T" {
                    self.commit(who, t)?;
                }
                Ok(OK.into())
            }
            xs::GET_DOMAIN_PATH => {
                let a = onearg(p).ok_or(XsErr::EINVAL)?;
                let mut out = home_of(atoi(a) as u32).into_bytes();
                out.push(0);
                Ok(out)
            }
            xs::RESET_WATCHES => {
                // do_reset_watches: all watches and transactions go.
                if let Some(c) = self.conns.get_mut(&dom) {
                    c.watches.clear();
                    c.txs.clear();
                }
                Ok(OK.into())
            }
            _ => Err(XsErr::ENOSYS),
        }
    }

    /// Run `f` over the tree (through transaction `tx`'s overlay when given); fire or queue the
    /// watches of what it changed.
    pub(crate) fn with_op<T>(&mut self, dom: DomId, tx: Option<u32>, f: impl FnOnce(&mut Op<'_>) -> R<T>) -> R<T> {
        let who = dom as u32;
        let txs = match tx {
            Some(id) => self.conns.get_mut(&dom).and_then(|c| c.txs.get_mut(&id)),
            None => None,
        };
        let (r, fires) = {
            let v = View { tree: &mut self.tree, tx: txs, generation: &mut self.generation, unpriv: who != 0 };
            let mut op = Op { v, who, fires: Vec::new() };
            let r = f(&mut op);
            let fires = core::mem::take(&mut op.fires);
            if r.is_ok() {
                if let Some(t) = op.v.tx.as_deref_mut() {
                    // queue_watches (xenstored_transaction.c): one entry per changed path.
                    for f in fires {
                        if !t.events.iter().any(|e| e.path == f.path && e.exact == f.exact) {
                            t.events.push(f);
                        }
                    }
                    (r, Vec::new())
                } else {
                    (r, fires)
                }
            } else {
                (r, Vec::new())
            }
        };
        for f in &fires {
            self.fire(f);
        }
        r
    }

    /// `do_transaction_end` with "T": EAGAIN when a node the transaction saw has changed since
    /// (`finalize_transaction` compares generations), ENOSPC over the entries quota
    /// (`transaction_fix_domains`); else apply its changes and fire its watches.
    fn commit(&mut self, who: u32, t: tree::TxState) -> R<()> {
        for (path, gen) in &t.accessed {
            if self.tree.get(path).map(|n| n.generation) != *gen {
                return Err(XsErr::EAGAIN);
            }
        }
        if t.created && who != 0 {
            for (&d, &delta) in &t.delta {
                if self.tree.entries_of(d) as i64 + delta >= quota::ENTRIES && delta > 0 {
                    return Err(XsErr::ENOSPC);
                }
            }
        }
        for (path, n) in t.changed {
            match n {
                Some(mut n) => {
                    self.generation += 1;
                    n.generation = self.generation;
                    self.tree.put(&path, n);
                }
                None => {
                    self.generation += 1;
                    self.tree.remove(&path);
                }
            }
        }
        for f in &t.events {
            self.fire(f);
        }
        Ok(())
    }
}

/// `check_watch_path`: a special "@..." name, or a path made canonical and checked.
fn watch_path_arg(who: u32, p: &[u8]) -> R<(String, bool)> {
    if p.starts_with(b"@") {
        if p.len() > XENSTORE_REL_PATH_MAX {
            return Err(XsErr::EINVAL);
        }
        return Ok((utf8(p)?.into(), false));
    }
    let s = utf8(p)?;
    let relative = !s.starts_with('/');
    let c = canonical(who, s);
    if !valid_nodename(&c) {
        return Err(XsErr::EINVAL);
    }
    Ok((c, relative))
}

fn join(children: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in children {
        out.extend_from_slice(c.as_bytes());
        out.push(0);
    }
    out
}

const PRIV: u8 = 1;
const NOTID: u8 = 2;

/// `wire_funcs`: the flags of each operation, None for a type with no handler (ENOSYS).
fn op_flags(ty: u32) -> Option<u8> {
    Some(match ty {
        xs::CONTROL | xs::INTRODUCE | xs::RELEASE | xs::IS_DOMAIN_INTRODUCED | xs::RESUME | xs::SET_TARGET => PRIV,
        xs::WATCH | xs::UNWATCH => NOTID,
        xs::DIRECTORY
        | xs::READ
        | xs::GET_PERMS
        | xs::TRANSACTION_START
        | xs::TRANSACTION_END
        | xs::GET_DOMAIN_PATH
        | xs::WRITE
        | xs::MKDIR
        | xs::RM
        | xs::SET_PERMS
        | xs::RESET_WATCHES
        | xs::DIRECTORY_PART => 0,
        _ => return None,
    })
}

/// The operation's name in trace lines.
pub fn op_name(ty: u32) -> &'static str {
    match ty {
        xs::CONTROL => "control",
        xs::DIRECTORY => "directory",
        xs::READ => "read",
        xs::GET_PERMS => "get_perms",
        xs::WATCH => "watch",
        xs::UNWATCH => "unwatch",
        xs::TRANSACTION_START => "transaction_start",
        xs::TRANSACTION_END => "transaction_end",
        xs::INTRODUCE => "introduce",
        xs::RELEASE => "release",
        xs::GET_DOMAIN_PATH => "get_domain_path",
        xs::WRITE => "write",
        xs::MKDIR => "mkdir",
        xs::RM => "rm",
        xs::SET_PERMS => "set_perms",
        xs::WATCH_EVENT => "watch_event",
        xs::ERROR => "error",
        xs::IS_DOMAIN_INTRODUCED => "is_domain_introduced",
        xs::RESUME => "resume",
        xs::SET_TARGET => "set_target",
        xs::RESET_WATCHES => "reset_watches",
        xs::DIRECTORY_PART => "directory_part",
        _ => "unknown",
    }
}

/// A successful reply for the trace line.
fn describe_reply(ty: u32, b: &[u8]) -> String {
    match ty {
        xs::READ => show(b),
        xs::DIRECTORY | xs::GET_PERMS | xs::DIRECTORY_PART => {
            let parts: Vec<String> = strings(b).iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect();
            let mut s = alloc::format!("[{}]", parts.join(" "));
            if s.len() > 96 {
                s.truncate(90);
                s.push_str(&alloc::format!("… ({} entries)", parts.len()));
            }
            s
        }
        _ => {
            let s = b.strip_suffix(&[0]).unwrap_or(b);
            String::from_utf8_lossy(&s[..s.len().min(64)]).into_owned()
        }
    }
}
