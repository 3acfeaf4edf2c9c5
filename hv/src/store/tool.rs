//! The toolstack's side of the store (what xl/libxl does in dom0): the tree of a new domain,
//! its removal, and `xl shutdown`/`xl reboot` through `control/shutdown`. Also the glue that
//! serves the rings from the hypervisor's loop and raises the store event channels.

use alloc::string::String;
use alloc::vec::Vec;

use super::tree::{perm, Perm, Perms};
use super::{home_of, Fire, MemRing, Store, XsErr};
use crate::abi::ShutdownReason;
use crate::domain::{DomState, VcpuState};
use crate::evtchn::{self, Backend, PortState};
use crate::mm::MachineMemory;
use crate::platform::Platform;
use crate::{DomId, Hypervisor};

/// How long (virtual ns) a guest has to act on a shutdown request before xenolith shuts it
/// down itself. Xen's `xl shutdown` on a PV guest only writes control/shutdown (libxl
/// `libxl_domain_shutdown` → `libxl__domain_pvcontrol`; `-F`'s ACPI fallback is for HVM guests
/// without PV drivers) and, with `-w`, waits for ever. xenolith's scenarios need an end, so a
/// guest that ignores the request is shut down with the requested reason after this grace
/// time, with a trace line saying so.
pub const SHUTDOWN_GRACE_NS: u64 = 5_000_000;

/// A shutdown request written to `control/shutdown` and not yet acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingShutdown {
    pub reason: ShutdownReason,
    pub deadline: u64,
    /// The domain's build generation at the request (a restarted domain is a new one).
    pub generation: u32,
}

/// What the toolstack writes for a domain (libxl's `libxl__domain_make`, `libxl__build_post`
/// and the console frontend of `libxl__device_console_add`).
#[derive(Clone, Debug)]
pub struct DomInfo {
    pub id: DomId,
    pub name: String,
    pub memory_kib: u64,
    pub vcpus: u32,
    pub store_port: u32,
    pub store_mfn: u64,
    pub console_port: u32,
    pub console_mfn: u64,
}

/// The domain's UUID as xenolith makes it: deterministic (libxl takes a random one), from the
/// domain id.
pub fn uuid_of(id: DomId) -> String {
    alloc::format!("00000000-0000-4000-8000-{:012x}", id)
}

impl Store {
    fn tool<T>(&mut self, f: impl FnOnce(&mut super::ops::Op<'_>) -> Result<T, XsErr>) -> Result<T, XsErr> {
        self.with_op(0, None, f)
    }

    /// Write a node as the toolstack (privileged; watches fire).
    pub fn tool_write(&mut self, path: &str, value: &[u8]) -> Result<(), XsErr> {
        self.tool(|op| op.write(path, value))
    }

    /// Make a node as the toolstack, with `perms` when given (`libxl__xs_mknod`).
    pub fn tool_mkdir(&mut self, path: &str, perms: Option<Perms>) -> Result<(), XsErr> {
        self.tool(|op| {
            op.mkdir(path)?;
            match perms {
                Some(p) => op.set_perms(path, p),
                None => Ok(()),
            }
        })
    }

    /// Remove a subtree as the toolstack.
    pub fn tool_rm(&mut self, path: &str) -> Result<(), XsErr> {
        self.tool(|op| op.rm(path))
    }

    /// A node's value (the toolstack's view: no permission applies).
    pub fn read(&self, path: &str) -> Option<&[u8]> {
        self.tree.get(path).map(|n| n.value.as_slice())
    }

    /// Introduce a new domain: its tree as libxl writes it for a PV domU, and its connection
    /// (xenstored `do_introduce`; fires `@introduceDomain`).
    pub fn introduce(&mut self, d: &DomInfo) {
        let id = d.id as u32;
        self.conns.insert(d.id, super::Conn { next_tx: 1, ..Default::default() });
        self.pending.remove(&d.id);
        let home = home_of(id);
        let vm = alloc::format!("/vm/{}", uuid_of(d.id));
        // libxl__domain_make: roperm = n0 r<domid>, rwperm = n<domid> (the domain owns it).
        let ro: Perms = alloc::vec![Perm { id: 0, bits: perm::NONE }, Perm { id, bits: perm::READ }];
        let rw: Perms = alloc::vec![Perm { id, bits: perm::NONE }];
        let _ = self.tool_rm(&home);
        let _ = self.tool_mkdir(&home, Some(ro.clone()));
        let _ = self.tool_mkdir(&vm, Some(ro.clone()));
        let _ = self.tool_mkdir(&alloc::format!("/libxl/{id}"), Some(super::dom0_only()));
        for sub in ["device", "control"] {
            let _ = self.tool_mkdir(&alloc::format!("{home}/{sub}"), Some(ro.clone()));
        }
        for sub in [
            "control/shutdown",
            "control/feature-poweroff",
            "control/feature-reboot",
            "control/feature-suspend",
            "control/sysrq",
            "device/suspend/event-channel",
            "data",
            "drivers",
            "feature",
            "attr",
            "error",
        ] {
            let _ = self.tool_mkdir(&alloc::format!("{home}/{sub}"), Some(rw.clone()));
        }
        let mut nodes: Vec<(String, String)> = alloc::vec![
            (alloc::format!("{vm}/uuid"), uuid_of(d.id)),
            (alloc::format!("{vm}/name"), d.name.clone()),
            (alloc::format!("{vm}/start_time"), "0.00".into()),
            (alloc::format!("/libxl/{id}/type"), "pv".into()),
            (alloc::format!("{home}/vm"), vm.clone()),
            (alloc::format!("{home}/name"), d.name.clone()),
            (alloc::format!("{home}/control/platform-feature-multiprocessor-suspend"), "1".into()),
            (alloc::format!("{home}/control/platform-feature-xs_reset_watches"), "1".into()),
            // libxl__build_post
            (alloc::format!("{home}/memory/static-max"), alloc::format!("{}", d.memory_kib)),
            (alloc::format!("{home}/memory/target"), alloc::format!("{}", d.memory_kib)),
            (alloc::format!("{home}/domid"), alloc::format!("{id}")),
            (alloc::format!("{home}/store/port"), alloc::format!("{}", d.store_port)),
            (alloc::format!("{home}/store/ring-ref"), alloc::format!("{}", d.store_mfn)),
        ];
        for c in 0..d.vcpus {
            nodes.push((alloc::format!("{home}/cpu/{c}/availability"), "online".into()));
        }
        for (p, v) in &nodes {
            let _ = self.tool_write(p, v.as_bytes());
        }
        // The console frontend (libxl__device_console_add): the domain owns it, its backend
        // (dom0, xenconsoled) may read it.
        let con = alloc::format!("{home}/console");
        let _ = self.tool_mkdir(&con, Some(alloc::vec![Perm { id, bits: perm::NONE }, Perm { id: 0, bits: perm::READ }]));
        for (k, v) in [
            ("backend", alloc::format!("/local/domain/0/backend/console/{id}/0")),
            ("backend-id", "0".into()),
            ("limit", "1048576".into()),
            ("type", "xenconsoled".into()),
            ("output", "pty".into()),
            ("tty", String::new()),
            ("port", alloc::format!("{}", d.console_port)),
            ("ring-ref", alloc::format!("{}", d.console_mfn)),
        ] {
            let _ = self.tool_write(&alloc::format!("{con}/{k}"), v.as_bytes());
        }
        self.fire(&Fire { path: "@introduceDomain".into(), exact: false, perms: Vec::new() });
    }

    /// A domain is gone: remove its paths (libxl `libxl__destroy_domid`), its connection and its
    /// pending shutdown; fire `@releaseDomain`.
    pub fn release(&mut self, id: DomId) {
        self.conns.remove(&id);
        self.pending.remove(&id);
        let _ = self.tool_rm(&home_of(id as u32));
        let _ = self.tool_rm(&alloc::format!("/vm/{}", uuid_of(id)));
        let _ = self.tool_rm(&alloc::format!("/libxl/{id}"));
        self.fire(&Fire { path: "@releaseDomain".into(), exact: false, perms: Vec::new() });
    }

    /// The earliest deadline of a pending shutdown.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.values().map(|p| p.deadline).min()
    }
}

/// Wake a blocked or polling vCPU (as the loop's `unblock`).
fn wake(d: &mut crate::domain::Domain, v: u32) {
    if let Some(vc) = d.vcpus.get_mut(v as usize) {
        if vc.state == VcpuState::Blocked {
            vc.state = VcpuState::Runnable;
        }
        vc.poll = None;
    }
}

impl<P: Platform> Hypervisor<P> {
    /// Serve the store: `kicked`'s ring (its guest sent on the store event channel), then every
    /// ring with output waiting (watch events of other domains). Raises the event channel of
    /// each domain whose ring moved, traces, and returns the vCPUs to wake.
    pub fn store_service(&mut self, kicked: Option<DomId>) -> Vec<(DomId, u32)> {
        self.store.tracing = self.tracing;
        let mut mem = MachineMemory::new(self.platform.memory());
        let mut notify: Vec<DomId> = Vec::new();
        let mut todo: Vec<DomId> = kicked.into_iter().collect();
        // A change in one domain's request can queue events for others, whose own pending
        // input is then served too; a few rounds settle it (each round only serves rings that
        // have output or were kicked).
        for _ in 0..4 {
            for id in core::mem::take(&mut todo) {
                let Some(d) = self.doms.get(&id) else { continue };
                let mut ring = MemRing { mem: &mut mem, base: d.store_ring.maddr() };
                if self.store.pump(id, &mut ring).notify() && !notify.contains(&id) {
                    notify.push(id);
                }
            }
            todo = self.store.with_output().into_iter().filter(|id| self.doms.contains_key(id)).collect();
            if todo.is_empty() {
                break;
            }
        }
        let mut woke = Vec::new();
        for id in notify {
            let Some(d) = self.doms.get(&id) else { continue };
            let port = d.store_port;
            let bound = d.evtchn.get(port).is_some_and(|p| p.state == PortState::Backend(Backend::Store));
            if port != 0 && bound {
                woke.extend(evtchn::raise(&mut mem, d, port).into_iter().map(|v| (id, v)));
            }
        }
        for l in self.store.take_lines() {
            self.trace(&l);
        }
        woke
    }

    /// Give a new (or rebuilt) domain its store tree and connection.
    pub fn store_introduce(&mut self, id: DomId) {
        let Some(d) = self.doms.get(&id) else { return };
        let info = DomInfo {
            id,
            name: d.config.name.clone(),
            memory_kib: d.config.memory_mib * 1024,
            vcpus: d.config.vcpus,
            store_port: d.store_port,
            store_mfn: d.store_ring.0,
            console_port: d.console.port,
            console_mfn: d.console.ring.0,
        };
        self.store.introduce(&info);
        self.store_deliver();
    }

    /// A domain goes away: its store paths and connection with it.
    pub fn store_release(&mut self, id: DomId) {
        if self.store.conns.contains_key(&id) {
            self.store.release(id);
            self.store_deliver();
        }
    }

    /// Deliver queued watch events and wake whoever they woke.
    fn store_deliver(&mut self) {
        for (d, v) in self.store_service(None) {
            if let Some(dom) = self.doms.get_mut(&d) {
                wake(dom, v);
                // A vCPU woken from block gets the credit scheduler's BOOST (csched_unit_wake).
                self.sched.wake((d, v));
            }
        }
    }

    /// `xl shutdown` / `xl reboot` of a PV guest: write "poweroff" or "reboot" to its
    /// control/shutdown (libxl `libxl__domain_pvcontrol`) and wait for it to act; see
    /// [`SHUTDOWN_GRACE_NS`] for a guest that does not.
    pub fn request_shutdown(&mut self, id: DomId, reason: ShutdownReason) {
        let what = match reason {
            ShutdownReason::Reboot => "reboot",
            ShutdownReason::Suspend => "suspend",
            _ => "poweroff",
        };
        let path = alloc::format!("{}/control/shutdown", home_of(id as u32));
        let r = self.store.tool_write(&path, what.as_bytes());
        if self.tracing {
            let res = match r {
                Ok(()) => "OK",
                Err(e) => e.name(),
            };
            let line = alloc::format!("d{id} xenstore toolstack write control/shutdown \"{what}\" = {res}");
            self.trace(&line);
        }
        let generation = self.doms.get(&id).map_or(0, |d| d.generation);
        self.store.pending.insert(id, PendingShutdown { reason, deadline: self.now + SHUTDOWN_GRACE_NS, generation });
        self.store_deliver();
    }

    /// Shut down the domains that let a shutdown request pass its grace time; forget the
    /// requests of domains that acted on theirs.
    pub fn store_deadlines(&mut self) {
        if self.store.pending.is_empty() {
            return;
        }
        let now = self.now;
        let pending: Vec<(DomId, PendingShutdown)> = self.store.pending.iter().map(|(&k, &v)| (k, v)).collect();
        for (id, p) in pending {
            let alive = self.doms.get(&id).is_some_and(|d| d.state == DomState::Running && d.generation == p.generation);
            if !alive {
                self.store.pending.remove(&id);
                continue;
            }
            if p.deadline <= now {
                self.store.pending.remove(&id);
                if self.tracing {
                    let line = alloc::format!(
                        "d{id} shutdown request not acted on within {}ms: forcing {}",
                        SHUTDOWN_GRACE_NS / 1_000_000,
                        p.reason.name()
                    );
                    self.trace(&line);
                }
                self.domain_shutdown(id, p.reason);
            }
        }
    }
}
