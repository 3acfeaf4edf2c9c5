//! xenolith's ABI definitions against Xen's own public headers.
//!
//! Where `<repo>/../shared/xen-public` exists (Xen 4.17's `xen/include/public/`; the variable
//! `XEN_PUBLIC` overrides the path), this test
//! - reads the `#define`s (and `XEN_ERRNO(..)` entries) of each header with a small preprocessor
//!   of its own (conditionals, `xen_mk_ulong(..)`, shifts, ORs, earlier defines) and compares every
//!   constant xenolith uses, in the core (`hv::abi`) and in the guests' runtime
//!   (`guests/xenrt/src/abi.rs`, compiled into this test with `#[path]`), with the header's value;
//! - compiles a small C program against the headers with `cc` that prints `sizeof`/`offsetof` of
//!   every structure field xenolith reads or writes (and the C compiler's view of every constant
//!   above, to check the parser too), and compares them with `size_of`/`offset_of!`.
//!
//! Without the headers it prints that it skipped and passes; without `cc` (or off x86_64, where
//! the headers describe another architecture) it skips only the C part.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use hv::abi::{self, hypercall as hc, Errno};

#[path = "../../guests/xenrt/src/abi.rs"]
#[allow(dead_code)]
mod xenrt;

/// The interface version the C side is compiled for (`__XEN_LATEST_INTERFACE_VERSION__` of 4.17).
const XEN_INTERFACE_VERSION: i128 = 0x0004_0e00;

/// Where the headers should be, and whether they are there.
fn xen_public() -> (PathBuf, bool) {
    let p = match std::env::var_os("XEN_PUBLIC") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("xen-public"),
    };
    let there = p.join("xen.h").is_file();
    (p, there)
}

// ---------------------------------------------------------------------------------------------
// A small C preprocessor: enough of one for the `#define`s of Xen's public headers.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(i128),
    Id(String),
    Op(&'static str),
}

fn tokenize(s: &str) -> Option<Vec<Tok>> {
    const OPS: [&str; 22] =
        ["<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", "|", "&", "^", "+", "-", "*", "/", "%", "~", "!", "<", ">"];
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i] as char;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i] as char).is_ascii_alphanumeric() {
                i += 1;
            }
            let lit = s[start..i].trim_end_matches(['u', 'U', 'l', 'L']);
            let v = if let Some(h) = lit.strip_prefix("0x").or_else(|| lit.strip_prefix("0X")) {
                i128::from_str_radix(h, 16).ok()?
            } else if lit.len() > 1 && lit.starts_with('0') {
                i128::from_str_radix(&lit[1..], 8).ok()?
            } else {
                lit.parse().ok()?
            };
            out.push(Tok::Num(v));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && ((b[i] as char).is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Id(s[start..i].to_string()));
        } else {
            let op = OPS.iter().find(|op| s[i..].starts_with(**op))?;
            out.push(Tok::Op(op));
            i += op.len();
        }
    }
    Some(out)
}

/// Object-like macros of one header (and the names of function-like ones, for `#ifdef`).
#[derive(Default)]
struct Defines {
    /// Raw replacement text of each object-like macro.
    text: HashMap<String, String>,
    /// Every defined name (function-like macros included).
    defined: HashSet<String>,
}

struct Eval<'a> {
    d: &'a Defines,
    toks: Vec<Tok>,
    pos: usize,
    depth: u32,
}

impl Eval<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn eat(&mut self, op: &str) -> bool {
        if self.peek() == Some(&Tok::Op(leak(op))) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn primary(&mut self) -> Option<i128> {
        let t = self.peek()?.clone();
        self.pos += 1;
        match t {
            Tok::Num(v) => Some(v),
            Tok::Op("(") => {
                let v = self.expr(0)?;
                self.eat(")").then_some(v)
            }
            Tok::Op("-") => self.primary().map(|v| -v),
            Tok::Op("+") => self.primary(),
            Tok::Op("~") => self.primary().map(|v| !v),
            Tok::Op("!") => self.primary().map(|v| (v == 0) as i128),
            Tok::Id(id) if id == "defined" => {
                let paren = self.eat("(");
                let Some(Tok::Id(name)) = self.peek().cloned() else { return None };
                self.pos += 1;
                if paren && !self.eat(")") {
                    return None;
                }
                Some(self.d.defined.contains(&name) as i128)
            }
            // Xen's integer-constant helpers: `xen_mk_ulong(x)` is `x##UL`, `xen_mk_uint(x)` `x##U`.
            Tok::Id(id) if id == "xen_mk_ulong" || id == "xen_mk_uint" || id == "xen_mk_long" => {
                if !self.eat("(") {
                    return None;
                }
                let v = self.expr(0)?;
                self.eat(")").then_some(v)
            }
            Tok::Id(id) => {
                let text = self.d.text.get(&id)?;
                if self.depth > 32 {
                    return None;
                }
                let mut sub = Eval { d: self.d, toks: tokenize(text)?, pos: 0, depth: self.depth + 1 };
                let v = sub.expr(0)?;
                (sub.pos == sub.toks.len()).then_some(v)
            }
            Tok::Op(_) => None,
        }
    }
    fn expr(&mut self, min_prec: u8) -> Option<i128> {
        let mut lhs = self.primary()?;
        while let Some(Tok::Op(op)) = self.peek().cloned() {
            let prec = match op {
                "*" | "/" | "%" => 10,
                "+" | "-" => 9,
                "<<" | ">>" => 8,
                "<" | ">" | "<=" | ">=" => 7,
                "==" | "!=" => 6,
                "&" => 5,
                "^" => 4,
                "|" => 3,
                "&&" => 2,
                "||" => 1,
                _ => break,
            };
            if prec < min_prec.max(1) {
                break;
            }
            self.pos += 1;
            let rhs = self.expr(prec + 1)?;
            lhs = match op {
                "*" => lhs * rhs,
                "/" => lhs.checked_div(rhs)?,
                "%" => lhs.checked_rem(rhs)?,
                "+" => lhs + rhs,
                "-" => lhs - rhs,
                "<<" => lhs << rhs,
                ">>" => lhs >> rhs,
                "<" => (lhs < rhs) as i128,
                ">" => (lhs > rhs) as i128,
                "<=" => (lhs <= rhs) as i128,
                ">=" => (lhs >= rhs) as i128,
                "==" => (lhs == rhs) as i128,
                "!=" => (lhs != rhs) as i128,
                "&" => lhs & rhs,
                "^" => lhs ^ rhs,
                "|" => lhs | rhs,
                "&&" => (lhs != 0 && rhs != 0) as i128,
                "||" => (lhs != 0 || rhs != 0) as i128,
                _ => unreachable!(),
            };
        }
        Some(lhs)
    }
}

fn leak(op: &str) -> &'static str {
    // Operators are a fixed set: map back to the static spelling.
    ["<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "(", ")", "|", "&", "^", "+", "-", "*", "/", "%", "~", "!", "<", ">"]
        .into_iter()
        .find(|o| *o == op)
        .unwrap_or("?")
}

impl Defines {
    fn eval(&self, expr: &str) -> Option<i128> {
        let mut e = Eval { d: self, toks: tokenize(expr)?, pos: 0, depth: 0 };
        let v = e.expr(0)?;
        (e.pos == e.toks.len()).then_some(v)
    }
    fn value(&self, name: &str) -> Option<i128> {
        self.eval(self.text.get(name)?)
    }
}

/// Comments out, continuations joined.
fn clean(src: &str) -> String {
    let src = src.replace("\\\n", " ");
    let mut out = String::with_capacity(src.len());
    let mut rest = src.as_str();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            let end = r.find("*/").map(|e| e + 2).unwrap_or(r.len());
            // Keep line structure for `//`-free text.
            out.extend(r[..end].chars().filter(|c| *c == '\n'));
            out.push(' ');
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix("//") {
            let end = r.find('\n').unwrap_or(r.len());
            rest = &r[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Preprocess one header: its defines (and those of the headers it includes with `"…"`) as a C
/// compiler on x86_64 sees them, for the latest interface version.
fn parse_header(path: &Path) -> Defines {
    let mut d = Defines::default();
    for (k, v) in [("__x86_64__", "1".to_string()), ("__XEN_INTERFACE_VERSION__", format!("{XEN_INTERFACE_VERSION:#x}"))] {
        d.text.insert(k.into(), v);
        d.defined.insert(k.into());
    }
    parse_into(&mut d, path, 0);
    d
}

fn parse_into(d: &mut Defines, path: &Path, depth: u32) {
    let src = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Stack of (this branch active, some branch of this #if taken, parent active).
    let mut stack: Vec<(bool, bool, bool)> = Vec::new();
    let active = |stack: &Vec<(bool, bool, bool)>| stack.last().map(|s| s.0).unwrap_or(true);
    for line in clean(&src).lines() {
        let l = line.trim();
        let Some(dir) = l.strip_prefix('#') else {
            // errno.h: `XEN_ERRNO(EPERM, 1)`.
            if active(&stack) {
                if let Some(args) = l.strip_prefix("XEN_ERRNO(").and_then(|a| a.split(')').next()) {
                    if let Some((n, v)) = args.split_once(',') {
                        d.text.insert(n.trim().into(), v.trim().into());
                        d.defined.insert(n.trim().into());
                    }
                }
            }
            continue;
        };
        let dir = dir.trim_start();
        let (kw, rest) = dir.split_once(|c: char| c.is_whitespace()).unwrap_or((dir, ""));
        let rest = rest.trim();
        let parent = active(&stack);
        match kw {
            "if" => {
                let c = parent && d.eval(rest).unwrap_or(0) != 0;
                stack.push((c, c, parent));
            }
            "ifdef" | "ifndef" => {
                let is = d.defined.contains(rest.split_whitespace().next().unwrap_or(""));
                let c = parent && (is == (kw == "ifdef"));
                stack.push((c, c, parent));
            }
            "elif" => {
                if let Some(top) = stack.last_mut() {
                    let c = top.2 && !top.1 && d.eval(rest).unwrap_or(0) != 0;
                    top.0 = c;
                    top.1 |= c;
                }
            }
            "else" => {
                if let Some(top) = stack.last_mut() {
                    top.0 = top.2 && !top.1;
                    top.1 = true;
                }
            }
            "endif" => {
                stack.pop();
            }
            "define" if parent => {
                let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                let name = &rest[..end];
                d.defined.insert(name.into());
                if !rest[end..].starts_with('(') {
                    d.text.insert(name.into(), rest[end..].trim().into());
                }
            }
            "undef" if parent => {
                d.defined.remove(rest);
                d.text.remove(rest);
            }
            "include" if parent && depth < 16 => {
                if let Some(name) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    let inc = path.parent().unwrap_or(Path::new(".")).join(name);
                    if inc.is_file() {
                        parse_into(d, &inc, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What xenolith relies on.

/// (header, C name, our value).
type Const = (&'static str, &'static str, i128);

macro_rules! consts {
    ($($h:literal { $($c:literal = $v:expr),* $(,)? })*) => {
        vec![$($(($h, $c, ($v) as i128),)*)*]
    };
}

fn core_consts() -> Vec<Const> {
    use hc::{
        callback as cb, console_io, evtchn_op, gnttab, memory_op, mmu, mmuext, sched_op, segbase, uvmf, vcpu_op, vgcf, virq, vm_assist,
        xen_version,
    };
    let errno = |e: Errno| -e.to_ret();
    consts! {
        "xen.h" {
            "__HYPERVISOR_set_trap_table" = hc::SET_TRAP_TABLE, "__HYPERVISOR_mmu_update" = hc::MMU_UPDATE,
            "__HYPERVISOR_set_gdt" = hc::SET_GDT, "__HYPERVISOR_stack_switch" = hc::STACK_SWITCH,
            "__HYPERVISOR_set_callbacks" = hc::SET_CALLBACKS, "__HYPERVISOR_fpu_taskswitch" = hc::FPU_TASKSWITCH,
            "__HYPERVISOR_platform_op" = hc::PLATFORM_OP, "__HYPERVISOR_set_debugreg" = hc::SET_DEBUGREG,
            "__HYPERVISOR_get_debugreg" = hc::GET_DEBUGREG, "__HYPERVISOR_update_descriptor" = hc::UPDATE_DESCRIPTOR,
            "__HYPERVISOR_memory_op" = hc::MEMORY_OP, "__HYPERVISOR_multicall" = hc::MULTICALL,
            "__HYPERVISOR_update_va_mapping" = hc::UPDATE_VA_MAPPING, "__HYPERVISOR_set_timer_op" = hc::SET_TIMER_OP,
            "__HYPERVISOR_xen_version" = hc::XEN_VERSION, "__HYPERVISOR_console_io" = hc::CONSOLE_IO,
            "__HYPERVISOR_grant_table_op" = hc::GRANT_TABLE_OP, "__HYPERVISOR_vm_assist" = hc::VM_ASSIST,
            "__HYPERVISOR_update_va_mapping_otherdomain" = hc::UPDATE_VA_MAPPING_OTHERDOMAIN,
            "__HYPERVISOR_iret" = hc::IRET, "__HYPERVISOR_vcpu_op" = hc::VCPU_OP,
            "__HYPERVISOR_set_segment_base" = hc::SET_SEGMENT_BASE, "__HYPERVISOR_mmuext_op" = hc::MMUEXT_OP,
            "__HYPERVISOR_xsm_op" = hc::XSM_OP, "__HYPERVISOR_nmi_op" = hc::NMI_OP,
            "__HYPERVISOR_sched_op" = hc::SCHED_OP, "__HYPERVISOR_callback_op" = hc::CALLBACK_OP,
            "__HYPERVISOR_sched_op_compat" = hc::SCHED_OP_COMPAT,
            "__HYPERVISOR_event_channel_op" = hc::EVENT_CHANNEL_OP, "__HYPERVISOR_physdev_op" = hc::PHYSDEV_OP,
            "__HYPERVISOR_sysctl" = hc::SYSCTL, "__HYPERVISOR_domctl" = hc::DOMCTL,
            "__HYPERVISOR_event_channel_op_compat" = hc::EVENT_CHANNEL_OP_COMPAT,
            "__HYPERVISOR_physdev_op_compat" = hc::PHYSDEV_OP_COMPAT, "__HYPERVISOR_xenoprof_op" = hc::XENOPROF_OP,
            "__HYPERVISOR_hvm_op" = hc::HVM_OP, "__HYPERVISOR_kexec_op" = hc::KEXEC_OP,
            "__HYPERVISOR_tmem_op" = hc::TMEM_OP, "__HYPERVISOR_argo_op" = hc::ARGO_OP,
            "__HYPERVISOR_xenpmu_op" = hc::XENPMU_OP, "__HYPERVISOR_dm_op" = hc::DM_OP,
            "__HYPERVISOR_hypfs_op" = hc::HYPFS_OP, "__HYPERVISOR_arch_0" = hc::ARCH_0,
            "__HYPERVISOR_arch_1" = hc::ARCH_1,
            "DOMID_IO" = abi::control::DOMID_IO, "DOMID_XEN" = abi::control::DOMID_XEN,
            "DOMID_INVALID" = abi::control::DOMID_INVALID,
            "MMU_NORMAL_PT_UPDATE" = mmu::NORMAL_PT_UPDATE, "MMU_MACHPHYS_UPDATE" = mmu::MACHPHYS_UPDATE,
            "MMU_PT_UPDATE_PRESERVE_AD" = mmu::PT_UPDATE_PRESERVE_AD,
            "MMU_PT_UPDATE_NO_TRANSLATE" = mmu::PT_UPDATE_NO_TRANSLATE,
            "CONSOLEIO_write" = console_io::WRITE, "CONSOLEIO_read" = console_io::READ,
            "MMUEXT_PIN_L1_TABLE" = mmuext::PIN_L1_TABLE, "MMUEXT_PIN_L2_TABLE" = mmuext::PIN_L2_TABLE,
            "MMUEXT_PIN_L3_TABLE" = mmuext::PIN_L3_TABLE, "MMUEXT_PIN_L4_TABLE" = mmuext::PIN_L4_TABLE,
            "MMUEXT_UNPIN_TABLE" = mmuext::UNPIN_TABLE, "MMUEXT_NEW_BASEPTR" = mmuext::NEW_BASEPTR,
            "MMUEXT_TLB_FLUSH_LOCAL" = mmuext::TLB_FLUSH_LOCAL, "MMUEXT_INVLPG_LOCAL" = mmuext::INVLPG_LOCAL,
            "MMUEXT_TLB_FLUSH_MULTI" = mmuext::TLB_FLUSH_MULTI, "MMUEXT_INVLPG_MULTI" = mmuext::INVLPG_MULTI,
            "MMUEXT_TLB_FLUSH_ALL" = mmuext::TLB_FLUSH_ALL, "MMUEXT_INVLPG_ALL" = mmuext::INVLPG_ALL,
            "MMUEXT_FLUSH_CACHE" = mmuext::FLUSH_CACHE, "MMUEXT_SET_LDT" = mmuext::SET_LDT,
            "MMUEXT_NEW_USER_BASEPTR" = mmuext::NEW_USER_BASEPTR, "MMUEXT_CLEAR_PAGE" = mmuext::CLEAR_PAGE,
            "MMUEXT_COPY_PAGE" = mmuext::COPY_PAGE, "MMUEXT_FLUSH_CACHE_GLOBAL" = mmuext::FLUSH_CACHE_GLOBAL,
            "MMUEXT_MARK_SUPER" = mmuext::MARK_SUPER, "MMUEXT_UNMARK_SUPER" = mmuext::UNMARK_SUPER,
            "MMU_NORMAL_PT_UPDATE" = mmu::NORMAL_PT_UPDATE, "MMU_MACHPHYS_UPDATE" = mmu::MACHPHYS_UPDATE,
            "MMU_PT_UPDATE_PRESERVE_AD" = mmu::PT_UPDATE_PRESERVE_AD,
            "MMU_PT_UPDATE_NO_TRANSLATE" = mmu::PT_UPDATE_NO_TRANSLATE,
            "UVMF_NONE" = uvmf::NONE, "UVMF_TLB_FLUSH" = uvmf::TLB_FLUSH, "UVMF_INVLPG" = uvmf::INVLPG,
            "UVMF_FLUSHTYPE_MASK" = uvmf::FLUSHTYPE_MASK, "UVMF_MULTI" = uvmf::MULTI, "UVMF_LOCAL" = uvmf::LOCAL,
            "UVMF_ALL" = uvmf::ALL,
            "VMASST_CMD_enable" = vm_assist::CMD_ENABLE, "VMASST_CMD_disable" = vm_assist::CMD_DISABLE,
            "VMASST_TYPE_4gb_segments" = vm_assist::TYPE_4GB_SEGMENTS,
            "VMASST_TYPE_4gb_segments_notify" = vm_assist::TYPE_4GB_SEGMENTS_NOTIFY,
            "VMASST_TYPE_writable_pagetables" = vm_assist::TYPE_WRITABLE_PAGETABLES,
            "VMASST_TYPE_pae_extended_cr3" = vm_assist::TYPE_PAE_EXTENDED_CR3,
            "VMASST_TYPE_architectural_iopl" = vm_assist::TYPE_ARCHITECTURAL_IOPL,
            "VMASST_TYPE_runstate_update_flag" = vm_assist::TYPE_RUNSTATE_UPDATE_FLAG,
            "VMASST_TYPE_m2p_strict" = vm_assist::TYPE_M2P_STRICT,
            "VIRQ_TIMER" = virq::TIMER, "VIRQ_DEBUG" = virq::DEBUG, "VIRQ_CONSOLE" = virq::CONSOLE,
            "VIRQ_DOM_EXC" = virq::DOM_EXC, "VIRQ_TBUF" = virq::TBUF, "VIRQ_DEBUGGER" = virq::DEBUGGER,
            "VIRQ_XENOPROF" = virq::XENOPROF, "VIRQ_CON_RING" = virq::CON_RING, "VIRQ_PCPU_STATE" = virq::PCPU_STATE,
            "VIRQ_MEM_EVENT" = virq::MEM_EVENT, "VIRQ_ARGO" = virq::ARGO, "VIRQ_ENOMEM" = virq::ENOMEM,
            "VIRQ_XENPMU" = virq::XENPMU, "NR_VIRQS" = virq::NR,
            "DOMID_SELF" = abi::DOMID_SELF, "DOMID_FIRST_RESERVED" = abi::DOMID_FIRST_RESERVED,
            "SIF_PRIVILEGED" = abi::SIF_PRIVILEGED, "SIF_INITDOMAIN" = abi::SIF_INITDOMAIN,
            "SIF_MULTIBOOT_MOD" = abi::SIF_MULTIBOOT_MOD, "SIF_MOD_START_PFN" = abi::SIF_MOD_START_PFN,
            "XEN_PVCLOCK_TSC_STABLE_BIT" = abi::XEN_PVCLOCK_TSC_STABLE_BIT,
            "MAX_GUEST_CMDLINE" = offset_of!(abi::StartInfo, first_p2m_pfn) - offset_of!(abi::StartInfo, cmd_line),
        }
        "sched.h" {
            "SCHEDOP_yield" = sched_op::YIELD, "SCHEDOP_block" = sched_op::BLOCK, "SCHEDOP_shutdown" = sched_op::SHUTDOWN,
            "SCHEDOP_poll" = sched_op::POLL, "SCHEDOP_remote_shutdown" = sched_op::REMOTE_SHUTDOWN,
            "SCHEDOP_shutdown_code" = sched_op::SHUTDOWN_CODE, "SCHEDOP_watchdog" = sched_op::WATCHDOG,
            "SCHEDOP_pin_override" = sched_op::PIN_OVERRIDE,
            "SHUTDOWN_poweroff" = abi::shutdown::POWEROFF, "SHUTDOWN_reboot" = abi::shutdown::REBOOT,
            "SHUTDOWN_suspend" = abi::shutdown::SUSPEND, "SHUTDOWN_crash" = abi::shutdown::CRASH,
            "SHUTDOWN_watchdog" = abi::shutdown::WATCHDOG, "SHUTDOWN_soft_reset" = abi::shutdown::SOFT_RESET,
            "SHUTDOWN_MAX" = abi::shutdown::MAX,
        }
        "version.h" {
            "XENVER_version" = xen_version::VERSION, "XENVER_extraversion" = xen_version::EXTRAVERSION,
            "XENVER_compile_info" = xen_version::COMPILE_INFO, "XENVER_capabilities" = xen_version::CAPABILITIES,
            "XENVER_changeset" = xen_version::CHANGESET, "XENVER_platform_parameters" = xen_version::PLATFORM_PARAMETERS,
            "XENVER_get_features" = xen_version::GET_FEATURES, "XENVER_pagesize" = xen_version::PAGESIZE,
            "XENVER_guest_handle" = xen_version::GUEST_HANDLE, "XENVER_commandline" = xen_version::COMMANDLINE,
            "XENVER_build_id" = xen_version::BUILD_ID,
        }
        "features.h" {
            "XENFEAT_writable_page_tables" = abi::feat::WRITABLE_PAGE_TABLES,
            "XENFEAT_writable_descriptor_tables" = abi::feat::WRITABLE_DESCRIPTOR_TABLES,
            "XENFEAT_auto_translated_physmap" = abi::feat::AUTO_TRANSLATED_PHYSMAP,
            "XENFEAT_supervisor_mode_kernel" = abi::feat::SUPERVISOR_MODE_KERNEL,
            "XENFEAT_pae_pgdir_above_4gb" = abi::feat::PAE_PGDIR_ABOVE_4GB,
            "XENFEAT_mmu_pt_update_preserve_ad" = abi::feat::MMU_PT_UPDATE_PRESERVE_AD,
            "XENFEAT_highmem_assist" = abi::feat::HIGHMEM_ASSIST,
            "XENFEAT_gnttab_map_avail_bits" = abi::feat::GNTTAB_MAP_AVAIL_BITS, "XENFEAT_dom0" = abi::feat::DOM0,
            "XENFEAT_memory_op_vnode_supported" = abi::feat::MEMORY_OP_VNODE_SUPPORTED,
            "XENFEAT_not_direct_mapped" = abi::feat::NOT_DIRECT_MAPPED,
            "XENFEAT_direct_mapped" = abi::feat::DIRECT_MAPPED,
        }
        "grant_table.h" {
            "GNTTABOP_map_grant_ref" = gnttab::MAP_GRANT_REF, "GNTTABOP_unmap_grant_ref" = gnttab::UNMAP_GRANT_REF,
            "GNTTABOP_setup_table" = gnttab::SETUP_TABLE, "GNTTABOP_dump_table" = gnttab::DUMP_TABLE,
            "GNTTABOP_transfer" = gnttab::TRANSFER, "GNTTABOP_copy" = gnttab::COPY,
            "GNTTABOP_query_size" = gnttab::QUERY_SIZE, "GNTTABOP_unmap_and_replace" = gnttab::UNMAP_AND_REPLACE,
            "GNTTABOP_set_version" = gnttab::SET_VERSION, "GNTTABOP_get_status_frames" = gnttab::GET_STATUS_FRAMES,
            "GNTTABOP_get_version" = gnttab::GET_VERSION, "GNTTABOP_swap_grant_ref" = gnttab::SWAP_GRANT_REF,
            "GNTTABOP_cache_flush" = gnttab::CACHE_FLUSH, "GNTTAB_NR_RESERVED_ENTRIES" = gnttab::NR_RESERVED_ENTRIES,
            "GTF_invalid" = gnttab::GTF_INVALID, "GTF_permit_access" = gnttab::GTF_PERMIT_ACCESS,
            "GTF_accept_transfer" = gnttab::GTF_ACCEPT_TRANSFER, "GTF_transitive" = gnttab::GTF_TRANSITIVE,
            "GTF_type_mask" = gnttab::GTF_TYPE_MASK, "GTF_readonly" = gnttab::GTF_READONLY,
            "GTF_reading" = gnttab::GTF_READING, "GTF_writing" = gnttab::GTF_WRITING, "GTF_PWT" = gnttab::GTF_PWT,
            "GTF_PCD" = gnttab::GTF_PCD, "GTF_PAT" = gnttab::GTF_PAT, "GTF_sub_page" = gnttab::GTF_SUB_PAGE,
            "GNTMAP_device_map" = gnttab::GNTMAP_DEVICE_MAP, "GNTMAP_host_map" = gnttab::GNTMAP_HOST_MAP,
            "GNTMAP_readonly" = gnttab::GNTMAP_READONLY, "GNTMAP_application_map" = gnttab::GNTMAP_APPLICATION_MAP,
            "GNTMAP_contains_pte" = gnttab::GNTMAP_CONTAINS_PTE,
            "GNTCOPY_source_gref" = gnttab::GNTCOPY_SOURCE_GREF, "GNTCOPY_dest_gref" = gnttab::GNTCOPY_DEST_GREF,
            "GNTTAB_CACHE_CLEAN" = gnttab::CACHE_CLEAN, "GNTTAB_CACHE_INVAL" = gnttab::CACHE_INVAL,
            "GNTTAB_CACHE_SOURCE_GREF" = gnttab::CACHE_SOURCE_GREF,
            "GNTST_okay" = gnttab::GNTST_OKAY, "GNTST_general_error" = gnttab::GNTST_GENERAL_ERROR,
            "GNTST_bad_domain" = gnttab::GNTST_BAD_DOMAIN, "GNTST_bad_gntref" = gnttab::GNTST_BAD_GNTREF,
            "GNTST_bad_handle" = gnttab::GNTST_BAD_HANDLE, "GNTST_bad_virt_addr" = gnttab::GNTST_BAD_VIRT_ADDR,
            "GNTST_bad_dev_addr" = gnttab::GNTST_BAD_DEV_ADDR, "GNTST_no_device_space" = gnttab::GNTST_NO_DEVICE_SPACE,
            "GNTST_permission_denied" = gnttab::GNTST_PERMISSION_DENIED, "GNTST_bad_page" = gnttab::GNTST_BAD_PAGE,
            "GNTST_bad_copy_arg" = gnttab::GNTST_BAD_COPY_ARG, "GNTST_address_too_big" = gnttab::GNTST_ADDRESS_TOO_BIG,
            "GNTST_eagain" = gnttab::GNTST_EAGAIN, "GNTST_no_space" = gnttab::GNTST_NO_SPACE,
        }
        "event_channel.h" {
            "EVTCHNOP_bind_interdomain" = evtchn_op::BIND_INTERDOMAIN, "EVTCHNOP_bind_virq" = evtchn_op::BIND_VIRQ,
            "EVTCHNOP_bind_pirq" = evtchn_op::BIND_PIRQ, "EVTCHNOP_close" = evtchn_op::CLOSE,
            "EVTCHNOP_send" = evtchn_op::SEND, "EVTCHNOP_status" = evtchn_op::STATUS,
            "EVTCHNOP_alloc_unbound" = evtchn_op::ALLOC_UNBOUND, "EVTCHNOP_bind_ipi" = evtchn_op::BIND_IPI,
            "EVTCHNOP_bind_vcpu" = evtchn_op::BIND_VCPU, "EVTCHNOP_unmask" = evtchn_op::UNMASK,
            "EVTCHNOP_reset" = evtchn_op::RESET, "EVTCHNOP_init_control" = evtchn_op::INIT_CONTROL,
            "EVTCHNOP_expand_array" = evtchn_op::EXPAND_ARRAY, "EVTCHNOP_set_priority" = evtchn_op::SET_PRIORITY,
            "EVTCHNSTAT_closed" = abi::evtchn_stat::CLOSED, "EVTCHNSTAT_unbound" = abi::evtchn_stat::UNBOUND,
            "EVTCHNSTAT_interdomain" = abi::evtchn_stat::INTERDOMAIN, "EVTCHNSTAT_pirq" = abi::evtchn_stat::PIRQ,
            "EVTCHNSTAT_virq" = abi::evtchn_stat::VIRQ, "EVTCHNSTAT_ipi" = abi::evtchn_stat::IPI,
            "EVTCHN_FIFO_PRIORITY_MAX" = abi::evtchn_fifo::PRIORITY_MAX,
            "EVTCHN_FIFO_PRIORITY_DEFAULT" = abi::evtchn_fifo::PRIORITY_DEFAULT,
            "EVTCHN_FIFO_PRIORITY_MIN" = abi::evtchn_fifo::PRIORITY_MIN,
            "EVTCHN_FIFO_MAX_QUEUES" = abi::evtchn_fifo::MAX_QUEUES, "EVTCHN_FIFO_PENDING" = abi::evtchn_fifo::PENDING,
            "EVTCHN_FIFO_MASKED" = abi::evtchn_fifo::MASKED, "EVTCHN_FIFO_LINKED" = abi::evtchn_fifo::LINKED,
            "EVTCHN_FIFO_BUSY" = abi::evtchn_fifo::BUSY, "EVTCHN_FIFO_LINK_BITS" = abi::evtchn_fifo::LINK_BITS,
            "EVTCHN_FIFO_LINK_MASK" = abi::evtchn_fifo::LINK_MASK,
            "EVTCHN_FIFO_NR_CHANNELS" = abi::evtchn_fifo::NR_CHANNELS,
        }
        "vcpu.h" {
            "VCPUOP_initialise" = vcpu_op::INITIALISE, "VCPUOP_up" = vcpu_op::UP, "VCPUOP_down" = vcpu_op::DOWN,
            "VCPUOP_is_up" = vcpu_op::IS_UP, "VCPUOP_get_runstate_info" = vcpu_op::GET_RUNSTATE_INFO,
            "VCPUOP_register_runstate_memory_area" = vcpu_op::REGISTER_RUNSTATE_MEMORY_AREA,
            "VCPUOP_set_periodic_timer" = vcpu_op::SET_PERIODIC_TIMER,
            "VCPUOP_stop_periodic_timer" = vcpu_op::STOP_PERIODIC_TIMER,
            "VCPUOP_set_singleshot_timer" = vcpu_op::SET_SINGLESHOT_TIMER,
            "VCPUOP_stop_singleshot_timer" = vcpu_op::STOP_SINGLESHOT_TIMER,
            "VCPUOP_register_vcpu_info" = vcpu_op::REGISTER_VCPU_INFO, "VCPUOP_send_nmi" = vcpu_op::SEND_NMI,
            "VCPUOP_get_physid" = vcpu_op::GET_PHYSID,
            "VCPUOP_register_vcpu_time_memory_area" = vcpu_op::REGISTER_VCPU_TIME_MEMORY_AREA,
            "VCPU_SSHOTTMR_future" = vcpu_op::SSHOTTMR_FUTURE,
            "RUNSTATE_running" = vcpu_op::RUNSTATE_RUNNING, "RUNSTATE_runnable" = vcpu_op::RUNSTATE_RUNNABLE,
            "RUNSTATE_blocked" = vcpu_op::RUNSTATE_BLOCKED, "RUNSTATE_offline" = vcpu_op::RUNSTATE_OFFLINE,
        }
        "memory.h" {
            "XENMEM_increase_reservation" = memory_op::INCREASE_RESERVATION,
            "XENMEM_decrease_reservation" = memory_op::DECREASE_RESERVATION,
            "XENMEM_maximum_ram_page" = memory_op::MAXIMUM_RAM_PAGE,
            "XENMEM_current_reservation" = memory_op::CURRENT_RESERVATION,
            "XENMEM_maximum_reservation" = memory_op::MAXIMUM_RESERVATION,
            "XENMEM_machphys_mfn_list" = memory_op::MACHPHYS_MFN_LIST,
            "XENMEM_populate_physmap" = memory_op::POPULATE_PHYSMAP, "XENMEM_add_to_physmap" = memory_op::ADD_TO_PHYSMAP,
            "XENMEM_memory_map" = memory_op::MEMORY_MAP, "XENMEM_machine_memory_map" = memory_op::MACHINE_MEMORY_MAP,
            "XENMEM_exchange" = memory_op::EXCHANGE, "XENMEM_machphys_mapping" = memory_op::MACHPHYS_MAPPING,
            "XENMEM_set_memory_map" = memory_op::SET_MEMORY_MAP, "XENMEM_maximum_gpfn" = memory_op::MAXIMUM_GPFN,
            "XENMEM_remove_from_physmap" = memory_op::REMOVE_FROM_PHYSMAP,
            "XENMEM_set_pod_target" = memory_op::SET_POD_TARGET, "XENMEM_get_pod_target" = memory_op::GET_POD_TARGET,
            "XENMEM_add_to_physmap_batch" = memory_op::ADD_TO_PHYSMAP_BATCH,
            "XENMEM_machphys_compat_mfn_list" = memory_op::MACHPHYS_COMPAT_MFN_LIST,
            "XENMEM_get_vnumainfo" = memory_op::GET_VNUMAINFO, "XENMEM_acquire_resource" = memory_op::ACQUIRE_RESOURCE,
            "XENMEMF_populate_on_demand" = abi::memf::POPULATE_ON_DEMAND,
            "XENMEMF_exact_node_request" = abi::memf::EXACT_NODE_REQUEST, "XENMEMF_vnode" = abi::memf::VNODE,
            "XENMAPSPACE_shared_info" = abi::mapspace::SHARED_INFO, "XENMAPSPACE_grant_table" = abi::mapspace::GRANT_TABLE,
            "XENMAPSPACE_gmfn" = abi::mapspace::GMFN, "XENMAPSPACE_gmfn_range" = abi::mapspace::GMFN_RANGE,
            "XENMAPSPACE_gmfn_foreign" = abi::mapspace::GMFN_FOREIGN, "XENMAPSPACE_dev_mmio" = abi::mapspace::DEV_MMIO,
        }
        "nmi.h" {
            "XENNMI_register_callback" = abi::control::XENNMI_REGISTER_CALLBACK,
            "XENNMI_unregister_callback" = abi::control::XENNMI_UNREGISTER_CALLBACK,
        }
        "hvm/hvm_op.h" {
            "HVMOP_set_param" = abi::control::HVMOP_SET_PARAM, "HVMOP_get_param" = abi::control::HVMOP_GET_PARAM,
            "HVMOP_flush_tlbs" = abi::control::HVMOP_FLUSH_TLBS,
        }
        "hvm/params.h" {
            "HVM_NR_PARAMS" = abi::control::HVM_NR_PARAMS,
        }
        "platform.h" {
            "XENPF_INTERFACE_VERSION" = abi::control::XENPF_INTERFACE_VERSION,
        }
        "sysctl.h" {
            "XEN_SYSCTL_INTERFACE_VERSION" = abi::control::SYSCTL_INTERFACE_VERSION,
        }
        "domctl.h" {
            "XEN_DOMCTL_INTERFACE_VERSION" = abi::control::DOMCTL_INTERFACE_VERSION,
            "XEN_DOMCTL_createdomain" = abi::control::domctl::CREATEDOMAIN,
            "XEN_DOMCTL_shadow_op" = abi::control::domctl::SHADOW_OP,
            "XEN_DOMCTL_assign_device" = abi::control::domctl::ASSIGN_DEVICE,
            "XEN_DOMCTL_test_assign_device" = abi::control::domctl::TEST_ASSIGN_DEVICE,
            "XEN_DOMCTL_deassign_device" = abi::control::domctl::DEASSIGN_DEVICE,
            "XEN_DOMCTL_vm_event_op" = abi::control::domctl::VM_EVENT_OP,
        }
        "callback.h" {
            "CALLBACKTYPE_event" = cb::TYPE_EVENT, "CALLBACKTYPE_failsafe" = cb::TYPE_FAILSAFE,
            "CALLBACKTYPE_syscall" = cb::TYPE_SYSCALL, "CALLBACKTYPE_sysenter_deprecated" = cb::TYPE_SYSENTER_DEPRECATED,
            "CALLBACKTYPE_nmi" = cb::TYPE_NMI, "CALLBACKTYPE_sysenter" = cb::TYPE_SYSENTER,
            "CALLBACKTYPE_syscall32" = cb::TYPE_SYSCALL32, "CALLBACKOP_register" = cb::OP_REGISTER,
            "CALLBACKOP_unregister" = cb::OP_UNREGISTER, "CALLBACKF_mask_events" = cb::F_MASK_EVENTS,
        }
        "physdev.h" {
            "PHYSDEVOP_set_iopl" = abi::hypercall::physdev::SET_IOPL,
        }
        "elfnote.h" {
            "XEN_ELFNOTE_ENTRY" = abi::elfnote::ENTRY, "XEN_ELFNOTE_HYPERCALL_PAGE" = abi::elfnote::HYPERCALL_PAGE,
            "XEN_ELFNOTE_VIRT_BASE" = abi::elfnote::VIRT_BASE, "XEN_ELFNOTE_PADDR_OFFSET" = abi::elfnote::PADDR_OFFSET,
            "XEN_ELFNOTE_XEN_VERSION" = abi::elfnote::XEN_VERSION, "XEN_ELFNOTE_GUEST_OS" = abi::elfnote::GUEST_OS,
            "XEN_ELFNOTE_GUEST_VERSION" = abi::elfnote::GUEST_VERSION, "XEN_ELFNOTE_LOADER" = abi::elfnote::LOADER,
            "XEN_ELFNOTE_PAE_MODE" = abi::elfnote::PAE_MODE, "XEN_ELFNOTE_FEATURES" = abi::elfnote::FEATURES,
            "XEN_ELFNOTE_BSD_SYMTAB" = abi::elfnote::BSD_SYMTAB, "XEN_ELFNOTE_HV_START_LOW" = abi::elfnote::HV_START_LOW,
            "XEN_ELFNOTE_L1_MFN_VALID" = abi::elfnote::L1_MFN_VALID,
            "XEN_ELFNOTE_SUSPEND_CANCEL" = abi::elfnote::SUSPEND_CANCEL, "XEN_ELFNOTE_INIT_P2M" = abi::elfnote::INIT_P2M,
            "XEN_ELFNOTE_MOD_START_PFN" = abi::elfnote::MOD_START_PFN,
            "XEN_ELFNOTE_SUPPORTED_FEATURES" = abi::elfnote::SUPPORTED_FEATURES,
            "XEN_ELFNOTE_PHYS32_ENTRY" = abi::elfnote::PHYS32_ENTRY,
        }
        "errno.h" {
            "EPERM" = errno(Errno::EPERM), "ENOENT" = errno(Errno::ENOENT), "ESRCH" = errno(Errno::ESRCH), "ENXIO" = errno(Errno::ENXIO),
            "E2BIG" = errno(Errno::E2BIG), "EAGAIN" = errno(Errno::EAGAIN), "ENOMEM" = errno(Errno::ENOMEM),
            "EFAULT" = errno(Errno::EFAULT), "EBUSY" = errno(Errno::EBUSY), "EEXIST" = errno(Errno::EEXIST),
            "EINVAL" = errno(Errno::EINVAL), "ENOSPC" = errno(Errno::ENOSPC), "ENOSYS" = errno(Errno::ENOSYS),
            "EACCES" = errno(Errno::EACCES), "ERANGE" = errno(Errno::ERANGE), "EILSEQ" = errno(Errno::EILSEQ),
            "EOPNOTSUPP" = errno(Errno::EOPNOTSUPP), "ENXIO" = errno(Errno::ENXIO), "EDOM" = errno(Errno::EDOM),
            "ENOBUFS" = errno(Errno::ENOBUFS),
            "EOPNOTSUPP" = errno(Errno::EOPNOTSUPP), "ENODEV" = errno(Errno::ENODEV),
        }
        "arch-x86/xen-x86_64.h" {
            "FLAT_RING3_CS32" = abi::FLAT_RING3_CS32, "FLAT_RING3_CS64" = abi::FLAT_RING3_CS64,
            "FLAT_RING3_DS32" = abi::FLAT_RING3_DS32, "FLAT_RING3_DS64" = abi::FLAT_RING3_DS64,
            "FLAT_RING3_SS32" = abi::FLAT_RING3_SS32, "FLAT_RING3_SS64" = abi::FLAT_RING3_SS64,
            "FLAT_KERNEL_CS" = abi::FLAT_KERNEL_CS, "FLAT_KERNEL_SS" = abi::FLAT_KERNEL_SS,
            "FLAT_KERNEL_DS" = abi::FLAT_KERNEL_DS,
            "HYPERVISOR_VIRT_START" = abi::HYPERVISOR_VIRT_START, "HYPERVISOR_VIRT_END" = abi::HYPERVISOR_VIRT_END,
            "MACH2PHYS_VIRT_START" = abi::RO_MPT_VIRT_START, "MACH2PHYS_VIRT_END" = abi::RO_MPT_VIRT_END,
            "SEGBASE_FS" = segbase::FS, "SEGBASE_GS_USER" = segbase::GS_USER, "SEGBASE_GS_KERNEL" = segbase::GS_KERNEL,
            "SEGBASE_GS_USER_SEL" = segbase::GS_USER_SEL, "VGCF_in_syscall" = hc::VGCF_IN_SYSCALL,
        }
        "arch-x86/xen.h" {
            "FIRST_RESERVED_GDT_ENTRY" = abi::FIRST_RESERVED_GDT_ENTRY,
            "XEN_LEGACY_MAX_VCPUS" = abi::XEN_LEGACY_MAX_VCPUS,
            "VGCF_i387_valid" = vgcf::I387_VALID, "VGCF_in_kernel" = vgcf::IN_KERNEL,
            "VGCF_failsafe_disables_events" = vgcf::FAILSAFE_DISABLES_EVENTS,
            "VGCF_syscall_disables_events" = vgcf::SYSCALL_DISABLES_EVENTS, "VGCF_online" = vgcf::ONLINE,
        }
        "io/xs_wire.h" {
            "XENSTORE_RING_SIZE" = abi::XENSTORE_RING_SIZE,
            "XENSTORE_PAYLOAD_MAX" = abi::XENSTORE_PAYLOAD_MAX,
            "XENSTORE_ABS_PATH_MAX" = abi::XENSTORE_ABS_PATH_MAX, "XENSTORE_REL_PATH_MAX" = abi::XENSTORE_REL_PATH_MAX,
            "XENSTORE_ERROR_RINGIDX" = abi::XENSTORE_ERROR_RINGIDX, "XENSTORE_ERROR_PROTO" = abi::XENSTORE_ERROR_PROTO,
        }
    }
}

fn xenrt_consts() -> Vec<Const> {
    use xenrt::*;
    consts! {
        "xen.h" {
            "__HYPERVISOR_set_trap_table" = HYPERVISOR_SET_TRAP_TABLE, "__HYPERVISOR_mmu_update" = HYPERVISOR_MMU_UPDATE,
            "__HYPERVISOR_stack_switch" = HYPERVISOR_STACK_SWITCH, "__HYPERVISOR_set_callbacks" = HYPERVISOR_SET_CALLBACKS,
            "__HYPERVISOR_memory_op" = HYPERVISOR_MEMORY_OP, "__HYPERVISOR_multicall" = HYPERVISOR_MULTICALL,
            "__HYPERVISOR_update_va_mapping" = HYPERVISOR_UPDATE_VA_MAPPING,
            "__HYPERVISOR_xen_version" = HYPERVISOR_XEN_VERSION, "__HYPERVISOR_console_io" = HYPERVISOR_CONSOLE_IO,
            "__HYPERVISOR_vm_assist" = HYPERVISOR_VM_ASSIST, "__HYPERVISOR_iret" = HYPERVISOR_IRET,
            "__HYPERVISOR_vcpu_op" = HYPERVISOR_VCPU_OP, "__HYPERVISOR_set_segment_base" = HYPERVISOR_SET_SEGMENT_BASE,
            "__HYPERVISOR_mmuext_op" = HYPERVISOR_MMUEXT_OP, "__HYPERVISOR_sched_op" = HYPERVISOR_SCHED_OP,
            "__HYPERVISOR_callback_op" = HYPERVISOR_CALLBACK_OP,
            "__HYPERVISOR_event_channel_op" = HYPERVISOR_EVENT_CHANNEL_OP,
            "CONSOLEIO_write" = CONSOLEIO_WRITE, "CONSOLEIO_read" = CONSOLEIO_READ,
            "MMUEXT_TLB_FLUSH_LOCAL" = MMUEXT_TLB_FLUSH_LOCAL, "MMUEXT_INVLPG_LOCAL" = MMUEXT_INVLPG_LOCAL,
            "DOMID_SELF" = DOMID_SELF, "UVMF_TLB_FLUSH" = UVMF_TLB_FLUSH, "UVMF_INVLPG" = UVMF_INVLPG,
            "SIF_PRIVILEGED" = SIF_PRIVILEGED, "SIF_INITDOMAIN" = SIF_INITDOMAIN,
        }
        "errno.h" {
            "EPERM" = EPERM, "ENOENT" = ENOENT, "EFAULT" = EFAULT, "EBUSY" = EBUSY, "EINVAL" = EINVAL, "ENOSYS" = ENOSYS,
            "ESRCH" = ESRCH, "EACCES" = EACCES, "EEXIST" = EEXIST,
        }
        "version.h" { "XENVER_version" = XENVER_VERSION, "XENVER_extraversion" = XENVER_EXTRAVERSION }
        "sched.h" {
            "SCHEDOP_yield" = SCHEDOP_YIELD, "SCHEDOP_block" = SCHEDOP_BLOCK, "SCHEDOP_shutdown" = SCHEDOP_SHUTDOWN,
            "SHUTDOWN_poweroff" = SHUTDOWN_POWEROFF, "SHUTDOWN_reboot" = SHUTDOWN_REBOOT, "SHUTDOWN_crash" = SHUTDOWN_CRASH,
            "SCHEDOP_poll" = SCHEDOP_POLL,
        }
        "io/xs_wire.h" { "XENSTORE_RING_SIZE" = XENSTORE_RING_SIZE, "XENSTORE_PAYLOAD_MAX" = XENSTORE_PAYLOAD_MAX }
        "event_channel.h" { "EVTCHNOP_send" = EVTCHNOP_SEND, "EVTCHNOP_bind_ipi" = EVTCHNOP_BIND_IPI }
        "vcpu.h" {
            "VCPUOP_register_vcpu_info" = VCPUOP_REGISTER_VCPU_INFO, "VCPUOP_initialise" = VCPUOP_INITIALISE,
            "VCPUOP_up" = VCPUOP_UP, "VCPUOP_down" = VCPUOP_DOWN, "VCPUOP_is_up" = VCPUOP_IS_UP,
            "VCPUOP_get_runstate_info" = VCPUOP_GET_RUNSTATE_INFO,
            "VCPUOP_register_runstate_memory_area" = VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA,
            "RUNSTATE_running" = RUNSTATE_RUNNING, "RUNSTATE_offline" = RUNSTATE_OFFLINE,
        }
        "arch-x86/xen-x86_64.h" { "FLAT_KERNEL_CS64" = FLAT_KERNEL_CS64, "FLAT_KERNEL_SS64" = FLAT_KERNEL_SS64 }
        "arch-x86/xen.h" { "VGCF_in_kernel" = VGCF_IN_KERNEL }
    }
}

/// (C type, C member designator or "" for sizeof, our value, our name).
type Layout = (&'static str, &'static str, usize, String);

macro_rules! layouts {
    ($($c:literal = $t:ty { $($cf:literal = $f:ident),* $(,)? })*) => {
        vec![$(
            ($c, "", size_of::<$t>(), format!("size_of::<{}>()", stringify!($t))),
            $(($c, $cf, offset_of!($t, $f), format!("offset_of!({}, {})", stringify!($t), stringify!($f))),)*
        )*]
    };
}

fn core_layouts() -> Vec<Layout> {
    use abi::*;
    layouts! {
        "struct start_info" = StartInfo {
            "magic" = magic, "nr_pages" = nr_pages, "shared_info" = shared_info, "flags" = flags,
            "store_mfn" = store_mfn, "store_evtchn" = store_evtchn, "console.domU.mfn" = console_mfn,
            "console.domU.evtchn" = console_evtchn, "pt_base" = pt_base, "nr_pt_frames" = nr_pt_frames,
            "mfn_list" = mfn_list, "mod_start" = mod_start, "mod_len" = mod_len, "cmd_line" = cmd_line,
            "first_p2m_pfn" = first_p2m_pfn, "nr_p2m_frames" = nr_p2m_frames,
        }
        "struct vcpu_time_info" = VcpuTimeInfo {
            "version" = version, "tsc_timestamp" = tsc_timestamp, "system_time" = system_time,
            "tsc_to_system_mul" = tsc_to_system_mul, "tsc_shift" = tsc_shift, "flags" = flags,
        }
        "struct vcpu_info" = VcpuInfo {
            "evtchn_upcall_pending" = evtchn_upcall_pending, "evtchn_upcall_mask" = evtchn_upcall_mask,
            "evtchn_pending_sel" = evtchn_pending_sel, "arch.cr2" = cr2, "arch.pad" = pad, "time" = time,
        }
        "struct shared_info" = SharedInfo {
            "vcpu_info" = vcpu_info, "evtchn_pending" = evtchn_pending, "evtchn_mask" = evtchn_mask,
            "wc_version" = wc_version, "wc_sec" = wc_sec, "wc_nsec" = wc_nsec, "wc_sec_hi" = wc_sec_hi,
            "arch.max_pfn" = max_pfn, "arch.pfn_to_mfn_frame_list_list" = pfn_to_mfn_frame_list_list,
            "arch.nmi_reason" = nmi_reason, "arch.p2m_cr3" = p2m_cr3, "arch.p2m_vaddr" = p2m_vaddr,
            "arch.p2m_generation" = p2m_generation,
        }
        "struct trap_info" = TrapInfo { "vector" = vector, "flags" = flags, "cs" = cs, "address" = address }
        "struct mmu_update" = MmuUpdate { "ptr" = ptr, "val" = val }
        "struct grant_entry_v1" = GrantEntryV1 { "flags" = flags, "domid" = domid, "frame" = frame }
        "union grant_entry_v2" = GrantEntryV2 {
            "hdr.flags" = flags, "hdr.domid" = domid, "sub_page.page_off" = page_off, "sub_page.length" = length,
            "full_page.frame" = frame,
        }
        "struct gnttab_map_grant_ref" = GnttabMapGrantRef {
            "host_addr" = host_addr, "flags" = flags, "ref" = ref_, "dom" = dom, "status" = status,
            "handle" = handle, "dev_bus_addr" = dev_bus_addr,
        }
        "struct gnttab_unmap_grant_ref" = GnttabUnmapGrantRef {
            "host_addr" = host_addr, "dev_bus_addr" = dev_bus_addr, "handle" = handle, "status" = status,
        }
        "struct gnttab_unmap_and_replace" = GnttabUnmapAndReplace {
            "host_addr" = host_addr, "new_addr" = new_addr, "handle" = handle, "status" = status,
        }
        "struct gnttab_setup_table" = GnttabSetupTable {
            "dom" = dom, "nr_frames" = nr_frames, "status" = status, "frame_list" = frame_list,
        }
        "struct gnttab_copy_ptr" = GnttabCopyPtr { "u.ref" = u, "u.gmfn" = u, "domid" = domid, "offset" = offset }
        "struct gnttab_copy" = GnttabCopy {
            "source" = source, "dest" = dest, "len" = len, "flags" = flags, "status" = status,
        }
        "struct gnttab_query_size" = GnttabQuerySize {
            "dom" = dom, "nr_frames" = nr_frames, "max_nr_frames" = max_nr_frames, "status" = status,
        }
        "struct gnttab_get_status_frames" = GnttabGetStatusFrames {
            "nr_frames" = nr_frames, "dom" = dom, "status" = status, "frame_list" = frame_list,
        }
        "struct gnttab_get_version" = GnttabGetVersion { "dom" = dom, "pad" = pad, "version" = version }
        "struct gnttab_cache_flush" = GnttabCacheFlush {
            "a.dev_bus_addr" = a, "a.ref" = a, "offset" = offset, "length" = length, "op" = op,
        }
        "struct mmuext_op" = MmuextOp { "cmd" = cmd, "arg1" = arg1, "arg2" = arg2 }
        "struct multicall_entry" = MulticallEntry { "op" = op, "result" = result, "args" = args }
        "struct iret_context" = IretContext {
            "rax" = rax, "r11" = r11, "rcx" = rcx, "flags" = flags, "rip" = rip, "cs" = cs, "rflags" = rflags,
            "rsp" = rsp, "ss" = ss,
        }
        "struct callback_register" = CallbackRegister { "type" = ty, "flags" = flags, "address" = address }
        "struct callback_unregister" = CallbackUnregister { "type" = ty }
        "struct sched_shutdown" = SchedShutdown { "reason" = reason }
        "struct sched_poll" = SchedPoll { "ports" = ports, "nr_ports" = nr_ports, "timeout" = timeout }
        "struct sched_remote_shutdown" = SchedRemoteShutdown { "domain_id" = domain_id, "reason" = reason }
        "struct evtchn_status" = EvtchnStatus {
            "dom" = dom, "port" = port, "status" = status, "vcpu" = vcpu, "u.interdomain.dom" = u0,
            "u.interdomain.port" = u1,
        }
        "struct evtchn_alloc_unbound" = EvtchnAllocUnbound { "dom" = dom, "remote_dom" = remote_dom, "port" = port }
        "struct evtchn_bind_interdomain" = EvtchnBindInterdomain {
            "remote_dom" = remote_dom, "remote_port" = remote_port, "local_port" = local_port,
        }
        "struct evtchn_bind_virq" = EvtchnBindVirq { "virq" = virq, "vcpu" = vcpu, "port" = port }
        "struct evtchn_bind_ipi" = EvtchnBindIpi { "vcpu" = vcpu, "port" = port }
        "struct evtchn_bind_vcpu" = EvtchnBindVcpu { "port" = port, "vcpu" = vcpu }
        "struct evtchn_send" = EvtchnPort { "port" = port }
        "struct evtchn_close" = EvtchnPort { "port" = port }
        "struct evtchn_unmask" = EvtchnPort { "port" = port }
        "struct evtchn_reset" = EvtchnReset { "dom" = dom }
        "struct evtchn_init_control" = EvtchnInitControl {
            "control_gfn" = control_gfn, "offset" = offset, "vcpu" = vcpu, "link_bits" = link_bits,
        }
        "struct evtchn_expand_array" = EvtchnExpandArray { "array_gfn" = array_gfn }
        "struct evtchn_set_priority" = EvtchnSetPriority { "port" = port, "priority" = priority }
        "struct evtchn_fifo_control_block" = EvtchnFifoControlBlock { "ready" = ready, "head" = head }
        "struct xen_memory_map" = MemoryMap { "nr_entries" = nr_entries, "buffer" = buffer }
        "struct xen_memory_reservation" = MemoryReservation {
            "extent_start" = extent_start, "nr_extents" = nr_extents, "extent_order" = extent_order,
            "mem_flags" = mem_flags, "domid" = domid,
        }
        "struct xen_memory_exchange" = MemoryExchange { "in" = input, "out" = output, "nr_exchanged" = nr_exchanged }
        "struct xen_machphys_mfn_list" = MachphysMfnList {
            "max_extents" = max_extents, "extent_start" = extent_start, "nr_extents" = nr_extents,
        }
        "struct xen_machphys_mapping" = MachphysMapping { "v_start" = v_start, "v_end" = v_end, "max_mfn" = max_mfn }
        "struct xen_add_to_physmap" = AddToPhysmap {
            "domid" = domid, "size" = size, "space" = space, "idx" = idx, "gpfn" = gpfn,
        }
        "struct xen_add_to_physmap_batch" = AddToPhysmapBatch {
            "domid" = domid, "space" = space, "size" = size, "u" = u, "idxs" = idxs, "gpfns" = gpfns, "errs" = errs,
        }
        "struct xen_remove_from_physmap" = RemoveFromPhysmap { "domid" = domid, "gpfn" = gpfn }
        "struct xen_foreign_memory_map" = ForeignMemoryMap { "domid" = domid, "map" = map }
        "struct xen_pod_target" = PodTarget {
            "target_pages" = target_pages, "tot_pages" = tot_pages, "pod_cache_pages" = pod_cache_pages,
            "pod_entries" = pod_entries, "domid" = domid,
        }
        "struct xen_vnuma_topology_info" = VnumaTopologyInfo {
            "domid" = domid, "pad" = pad, "nr_vnodes" = nr_vnodes, "nr_vcpus" = nr_vcpus,
            "nr_vmemranges" = nr_vmemranges, "vdistance" = vdistance, "vcpu_to_vnode" = vcpu_to_vnode,
            "vmemrange" = vmemrange,
        }
        "struct xen_mem_acquire_resource" = MemAcquireResource {
            "domid" = domid, "type" = ty, "id" = id, "nr_frames" = nr_frames, "pad" = pad, "frame" = frame,
            "frame_list" = frame_list,
        }
        "struct xen_platform_op" = PlatformOpHead { "cmd" = cmd, "interface_version" = interface_version, "u" = u }
        "struct evtchn_op" = EvtchnOpCompat { "cmd" = cmd, "u" = u }
        "struct physdev_op" = PhysdevOpCompat { "cmd" = cmd, "u" = u }
        "struct xennmi_callback" = NmiCallback { "handler_address" = handler_address, "pad" = pad }
        "struct xen_hvm_param" = HvmParam { "domid" = domid, "pad" = pad, "index" = index, "value" = value }
        "struct vcpu_register_vcpu_info" = RegisterVcpuInfo { "mfn" = mfn, "offset" = offset, "rsvd" = rsvd }
        "struct vcpu_set_singleshot_timer" = VcpuSetSingleshotTimer { "timeout_abs_ns" = timeout_abs_ns, "flags" = flags }
        "struct vcpu_set_periodic_timer" = VcpuSetPeriodicTimer { "period_ns" = period_ns }
        "struct vcpu_runstate_info" = VcpuRunstateInfo {
            "state" = state, "state_entry_time" = state_entry_time, "time" = time,
        }
        "struct cpu_user_regs" = CpuUserRegs {
            "r15" = r15, "rbx" = rbx, "rax" = rax, "rdi" = rdi, "error_code" = error_code, "rip" = rip,
            "cs" = cs, "saved_upcall_mask" = saved_upcall_mask, "rflags" = rflags, "rsp" = rsp,
            "ss" = ss, "es" = es, "ds" = ds, "fs" = fs, "gs" = gs,
        }
        "struct vcpu_guest_context" = VcpuGuestContext {
            "flags" = flags, "user_regs" = user_regs, "trap_ctxt" = trap_ctxt, "ldt_base" = ldt_base,
            "gdt_frames" = gdt_frames, "gdt_ents" = gdt_ents, "kernel_ss" = kernel_ss,
            "kernel_sp" = kernel_sp, "ctrlreg" = ctrlreg, "debugreg" = debugreg,
            "event_callback_eip" = event_callback_eip, "failsafe_callback_eip" = failsafe_callback_eip,
            "syscall_callback_eip" = syscall_callback_eip, "vm_assist" = vm_assist, "fs_base" = fs_base,
            "gs_base_kernel" = gs_base_kernel, "gs_base_user" = gs_base_user,
        }
        "struct xen_feature_info" = FeatureInfo { "submap_idx" = submap_idx, "submap" = submap }
        "struct xencons_interface" = XenconsInterface {
            "in" = input, "out" = out, "in_cons" = in_cons, "in_prod" = in_prod, "out_cons" = out_cons,
            "out_prod" = out_prod,
        }
        "struct xenstore_domain_interface" = XenstoreDomainInterface {
            "req" = req, "rsp" = rsp, "req_cons" = req_cons, "req_prod" = req_prod, "rsp_cons" = rsp_cons,
            "rsp_prod" = rsp_prod, "server_features" = server_features, "connection" = connection, "error" = error,
        }
        "struct xsd_sockmsg" = XsdSockmsg { "type" = ty, "req_id" = req_id, "tx_id" = tx_id, "len" = len }
    }
}

fn xenrt_layouts() -> Vec<Layout> {
    use xenrt::*;
    layouts! {
        "struct start_info" = StartInfo {
            "magic" = magic, "nr_pages" = nr_pages, "shared_info" = shared_info, "flags" = flags,
            "store_mfn" = store_mfn, "store_evtchn" = store_evtchn, "console.domU.mfn" = console_mfn,
            "console.domU.evtchn" = console_evtchn, "pt_base" = pt_base, "nr_pt_frames" = nr_pt_frames,
            "mfn_list" = mfn_list, "mod_start" = mod_start, "mod_len" = mod_len, "cmd_line" = cmd_line,
            "first_p2m_pfn" = first_p2m_pfn, "nr_p2m_frames" = nr_p2m_frames,
        }
        "struct vcpu_time_info" = VcpuTimeInfo {
            "version" = version, "tsc_timestamp" = tsc_timestamp, "system_time" = system_time,
            "tsc_to_system_mul" = tsc_to_system_mul, "tsc_shift" = tsc_shift, "flags" = flags,
        }
        "struct vcpu_info" = VcpuInfo {
            "evtchn_upcall_pending" = evtchn_upcall_pending, "evtchn_upcall_mask" = evtchn_upcall_mask,
            "evtchn_pending_sel" = evtchn_pending_sel, "arch.cr2" = cr2, "arch.pad" = arch_pad, "time" = time,
        }
        "struct shared_info" = SharedInfo {
            "vcpu_info" = vcpu_info, "evtchn_pending" = evtchn_pending, "evtchn_mask" = evtchn_mask,
            "wc_version" = wc_version, "wc_sec" = wc_sec, "wc_nsec" = wc_nsec, "wc_sec_hi" = wc_sec_hi,
            "arch.max_pfn" = max_pfn, "arch.pfn_to_mfn_frame_list_list" = pfn_to_mfn_frame_list_list,
            "arch.nmi_reason" = nmi_reason, "arch.p2m_cr3" = p2m_cr3, "arch.p2m_vaddr" = p2m_vaddr,
            "arch.p2m_generation" = p2m_generation,
        }
        "struct trap_info" = TrapInfo { "vector" = vector, "flags" = flags, "cs" = cs, "address" = address }
        "struct mmu_update" = MmuUpdate { "ptr" = ptr, "val" = val }
        "struct mmuext_op" = MmuextOp { "cmd" = cmd, "arg1" = arg1, "arg2" = arg2 }
        "struct multicall_entry" = MulticallEntry { "op" = op, "result" = result, "args" = args }
        "struct sched_shutdown" = SchedShutdown { "reason" = reason }
        "struct sched_poll" = SchedPoll { "ports" = ports, "nr_ports" = nr_ports, "timeout" = timeout }
        "struct xenstore_domain_interface" = XenstoreDomainInterface {
            "req" = req, "rsp" = rsp, "req_cons" = req_cons, "req_prod" = req_prod, "rsp_cons" = rsp_cons,
            "rsp_prod" = rsp_prod, "server_features" = server_features, "connection" = connection, "error" = error,
        }
        "struct evtchn_send" = EvtchnSend { "port" = port }
        "struct vcpu_register_vcpu_info" = VcpuRegisterVcpuInfo { "mfn" = mfn, "offset" = offset, "rsvd" = rsvd }
        "struct vcpu_runstate_info" = VcpuRunstateInfo {
            "state" = state, "state_entry_time" = state_entry_time, "time" = time,
        }
        "struct cpu_user_regs" = CpuUserRegs {
            "r15" = r15, "r14" = r14, "r13" = r13, "r12" = r12, "rbp" = rbp, "rbx" = rbx, "r11" = r11,
            "r10" = r10, "r9" = r9, "r8" = r8, "rax" = rax, "rcx" = rcx, "rdx" = rdx, "rsi" = rsi, "rdi" = rdi,
            "error_code" = error_code, "entry_vector" = entry_vector, "rip" = rip, "cs" = cs,
            "saved_upcall_mask" = saved_upcall_mask, "rflags" = rflags, "rsp" = rsp, "ss" = ss, "es" = es,
            "ds" = ds, "fs" = fs, "gs" = gs,
        }
        "struct vcpu_guest_context" = VcpuGuestContext {
            "fpu_ctxt" = fpu_ctxt, "flags" = flags, "user_regs" = user_regs, "trap_ctxt" = trap_ctxt,
            "ldt_base" = ldt_base, "ldt_ents" = ldt_ents, "gdt_frames" = gdt_frames, "gdt_ents" = gdt_ents,
            "kernel_ss" = kernel_ss, "kernel_sp" = kernel_sp, "ctrlreg" = ctrlreg, "debugreg" = debugreg,
            "event_callback_eip" = event_callback_eip, "failsafe_callback_eip" = failsafe_callback_eip,
            "syscall_callback_eip" = syscall_callback_eip, "vm_assist" = vm_assist, "fs_base" = fs_base,
            "gs_base_kernel" = gs_base_kernel, "gs_base_user" = gs_base_user,
        }
        "struct xencons_interface" = XenconsInterface {
            "in" = input, "out" = out, "in_cons" = in_cons, "in_prod" = in_prod, "out_cons" = out_cons,
            "out_prod" = out_prod,
        }
    }
}

/// `enum xsd_sockmsg_type` (values only the C compiler can give).
fn enum_consts() -> Vec<(&'static str, i128)> {
    use abi::xs;
    [
        ("XS_CONTROL", xs::CONTROL),
        ("XS_DIRECTORY", xs::DIRECTORY),
        ("XS_READ", xs::READ),
        ("XS_GET_PERMS", xs::GET_PERMS),
        ("XS_WATCH", xs::WATCH),
        ("XS_UNWATCH", xs::UNWATCH),
        ("XS_TRANSACTION_START", xs::TRANSACTION_START),
        ("XS_TRANSACTION_END", xs::TRANSACTION_END),
        ("XS_INTRODUCE", xs::INTRODUCE),
        ("XS_RELEASE", xs::RELEASE),
        ("XS_GET_DOMAIN_PATH", xs::GET_DOMAIN_PATH),
        ("XS_WRITE", xs::WRITE),
        ("XS_MKDIR", xs::MKDIR),
        ("XS_RM", xs::RM),
        ("XS_SET_PERMS", xs::SET_PERMS),
        ("XS_WATCH_EVENT", xs::WATCH_EVENT),
        ("XS_ERROR", xs::ERROR),
        ("XS_IS_DOMAIN_INTRODUCED", xs::IS_DOMAIN_INTRODUCED),
        ("XS_RESUME", xs::RESUME),
        ("XS_SET_TARGET", xs::SET_TARGET),
        ("XS_RESET_WATCHES", xs::RESET_WATCHES),
        ("XS_DIRECTORY_PART", xs::DIRECTORY_PART),
    ]
    .into_iter()
    .map(|(n, v)| (n, v as i128))
    .collect()
}

// ---------------------------------------------------------------------------------------------

fn check_consts(dir: &Path, who: &str, table: &[Const], failures: &mut Vec<String>) -> usize {
    let mut cache: HashMap<&str, Defines> = HashMap::new();
    for &(h, name, ours) in table {
        let d = cache.entry(h).or_insert_with(|| parse_header(&dir.join(h)));
        match d.value(name) {
            Some(v) if v == ours => {}
            Some(v) => failures.push(format!("{who}: {name} is {v:#x} in xen-public/{h}, ours is {ours:#x}")),
            None => failures.push(format!("{who}: {name} not found (or not evaluable) in xen-public/{h}")),
        }
    }
    table.len()
}

/// Headers for the toolstack only (they `#error` unless built as part of Xen or its tools, and
/// then need GNU C and the tools' handle macros): their constants are checked by the parser
/// alone. (The structures xenolith reads from them, `xen_domctl` and `xen_sysctl`, keep their
/// layout assertions in `hv::abi::control`.)
const PARSER_ONLY: [&str; 2] = ["domctl.h", "sysctl.h"];

/// Compile and run the C probe; returns its output lines (`kind|name|value`), or why it skipped.
fn c_probe(dir: &Path, consts: &[Const], layouts: &[Layout], enums: &[(&str, i128)]) -> Result<String, String> {
    if !cfg!(target_arch = "x86_64") {
        return Err("the host is not x86_64 (the headers would describe another architecture)".into());
    }
    if Command::new("cc").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        return Err("no C compiler (`cc`) on this machine".into());
    }
    let mut c = String::from("#include <stdint.h>\n#include <stddef.h>\n#include <stdio.h>\n");
    for h in [
        "xen.h",
        "callback.h",
        "sched.h",
        "event_channel.h",
        "vcpu.h",
        "memory.h",
        "version.h",
        "features.h",
        "elfnote.h",
        "errno.h",
        "grant_table.h",
        "io/console.h",
        "io/xs_wire.h",
        "physdev.h",
        "nmi.h",
        "hvm/hvm_op.h",
        "hvm/params.h",
        "platform.h",
    ] {
        writeln!(c, "#include \"{h}\"").unwrap();
    }

    c.push_str("int main(void) {\n");
    let mut seen: HashSet<String> = HashSet::new();
    for &(h, name, _) in consts {
        if PARSER_ONLY.contains(&h) {
            continue;
        }
        if seen.insert(name.to_string()) {
            // errno.h's values are the enumerators XEN_<name>.
            let expr = if h == "errno.h" { format!("XEN_{name}") } else { name.into() };
            writeln!(c, "  printf(\"const|{name}|%lld\\n\", (long long)({expr}));").unwrap();
        }
    }
    for (ty, field, _, _) in layouts {
        if seen.insert(format!("{ty}.{field}")) {
            let expr = if field.is_empty() { format!("sizeof({ty})") } else { format!("offsetof({ty}, {field})") };
            writeln!(c, "  printf(\"layout|{ty}.{field}|%zu\\n\", (size_t)({expr}));").unwrap();
        }
    }
    for (name, _) in enums {
        writeln!(c, "  printf(\"const|{name}|%lld\\n\", (long long)({name}));").unwrap();
    }
    c.push_str("  return 0;\n}\n");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("xen_abi_probe_{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let (src, exe) = (tmp.join("probe.c"), tmp.join("probe"));
    std::fs::write(&src, c).map_err(|e| e.to_string())?;
    // -iquote, not -I: xen-public/features.h must not shadow the C library's <features.h>.
    let out = Command::new("cc")
        .args(["-std=c11", &format!("-D__XEN_INTERFACE_VERSION__={XEN_INTERFACE_VERSION:#x}"), "-iquote"])
        .arg(dir)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| e.to_string())?;
    assert!(out.status.success(), "the C probe ({}) does not compile:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
    let run = Command::new(&exe).output().map_err(|e| e.to_string())?;
    assert!(run.status.success(), "the C probe failed");
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(String::from_utf8_lossy(&run.stdout).into_owned())
}

#[test]
fn xenolith_abi_matches_xen_public_headers() {
    let (dir, there) = xen_public();
    if !there {
        println!("xen_abi: SKIPPED: no Xen public headers at {} (<repo>/../shared/xen-public, or set XEN_PUBLIC)", dir.display());
        return;
    }
    let mut failures = Vec::new();
    let (core, rt) = (core_consts(), xenrt_consts());
    let n_consts = check_consts(&dir, "hv::abi", &core, &mut failures) + check_consts(&dir, "xenrt::abi", &rt, &mut failures);

    let (core_l, rt_l, enums) = (core_layouts(), xenrt_layouts(), enum_consts());
    let all_consts: Vec<Const> = core.iter().chain(&rt).copied().collect();
    let all_layouts: Vec<(&str, &Layout)> = core_l.iter().map(|l| ("hv::abi", l)).chain(rt_l.iter().map(|l| ("xenrt::abi", l))).collect();
    let c_note = match c_probe(&dir, &all_consts, &core_l.iter().chain(&rt_l).cloned().collect::<Vec<_>>(), &enums) {
        Ok(out) => {
            let c: HashMap<String, i128> = out
                .lines()
                .filter_map(|l| {
                    let mut p = l.splitn(3, '|');
                    let (_, k, v) = (p.next()?, p.next()?, p.next()?);
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect();
            // The compiler's values check the parser (and so every constant a second time).
            for &(h, name, ours) in &all_consts {
                if PARSER_ONLY.contains(&h) {
                    continue;
                }
                match c.get(name) {
                    Some(&v) if v == ours || v == ours - (1 << 64) => {}
                    Some(&v) => failures.push(format!("cc: {name} is {v:#x} (xen-public/{h}), ours is {ours:#x}")),
                    None => failures.push(format!("cc: no value for {name}")),
                }
            }
            for (name, ours) in &enums {
                match c.get(*name) {
                    Some(v) if v == ours => {}
                    v => failures.push(format!("hv::abi: {name} is {v:?} in xen-public/io/xs_wire.h, ours is {ours}")),
                }
            }
            for (who, (ty, field, ours, rust)) in &all_layouts {
                let key = format!("{ty}.{field}");
                let what = if field.is_empty() { format!("sizeof({ty})") } else { format!("offsetof({ty}, {field})") };
                match c.get(&key) {
                    Some(&v) if v == *ours as i128 => {}
                    Some(&v) => failures.push(format!("{who}: {what} is {v}, our {rust} is {ours}")),
                    None => failures.push(format!("{who}: no value for {what}")),
                }
            }
            format!("{} struct sizes/offsets and {} enum values checked with cc", all_layouts.len(), enums.len())
        }
        Err(why) => format!("struct layouts NOT checked: {why}"),
    };
    println!("xen_abi: {n_consts} constants checked against {}; {c_note}", dir.display());
    assert!(failures.is_empty(), "xenolith's ABI differs from Xen's public headers:\n  {}", failures.join("\n  "));
}

/// The guests' `vcpu_guest_context` (what `xenrt::vcpu` passes to VCPUOP_initialise) and its
/// `cpu_user_regs` and `vcpu_runstate_info` have the hypervisor's layout (`hv::abi`, what it
/// reads and writes): every field at the same offset, the same sizes. Runs with or without the
/// headers (which the test above checks both against).
#[test]
fn xenrt_vcpu_context_matches_the_hypervisors() {
    macro_rules! same {
        ($t:ident { $($f:ident),* $(,)? }) => {{
            assert_eq!(size_of::<xenrt::$t>(), size_of::<abi::$t>(), "size_of::<{}>()", stringify!($t));
            $(assert_eq!(
                offset_of!(xenrt::$t, $f),
                offset_of!(abi::$t, $f),
                "offset_of!({}, {})", stringify!($t), stringify!($f)
            );)*
        }};
    }
    same!(VcpuGuestContext {
        fpu_ctxt,
        flags,
        user_regs,
        trap_ctxt,
        ldt_base,
        ldt_ents,
        gdt_frames,
        gdt_ents,
        kernel_ss,
        kernel_sp,
        ctrlreg,
        debugreg,
        event_callback_eip,
        failsafe_callback_eip,
        syscall_callback_eip,
        vm_assist,
        fs_base,
        gs_base_kernel,
        gs_base_user,
    });
    same!(CpuUserRegs {
        r15,
        r14,
        r13,
        r12,
        rbp,
        rbx,
        r11,
        r10,
        r9,
        r8,
        rax,
        rcx,
        rdx,
        rsi,
        rdi,
        error_code,
        entry_vector,
        rip,
        cs,
        saved_upcall_mask,
        rflags,
        rsp,
        ss,
        es,
        ds,
        fs,
        gs,
    });
    same!(VcpuRunstateInfo { state, state_entry_time, time });
    assert_eq!(size_of::<xenrt::TrapInfo>(), size_of::<abi::TrapInfo>());
}

/// The parser itself, on text shaped like Xen's headers (runs with or without the headers).
#[test]
fn define_parser() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("xen_abi_parser_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = dir.join("t.h");
    std::fs::write(
        &h,
        "#define A 3 /* comment */\n#define _B 8\n#define B (1U<<_B)\n#define C xen_mk_ulong(0xFFFF800000000000)\n\
         #define D (A | B)\n#define E \\\n  (D << 1)\n#if __XEN_INTERFACE_VERSION__ < 0x00030202\n#undef A\n#define A 9\n#endif\n\
         #ifdef __i386__\n#define F 1\n#elif defined(__x86_64__)\n#define F 2\n#else\n#define F 3\n#endif\n\
         #define G(x) x\n#ifdef G\n#define H 0x10UL\n#endif\nXEN_ERRNO(EPERM,\t 1)\t/* x */\n#define P 14\n#define Q (P * 4096 / 8)\n",
    )
    .unwrap();
    let d = parse_header(&h);
    let _ = std::fs::remove_dir_all(&dir);
    for (n, v) in
        [("A", 3), ("B", 256), ("C", 0xFFFF_8000_0000_0000), ("D", 259), ("E", 518), ("F", 2), ("H", 16), ("EPERM", 1), ("Q", 7168)]
    {
        assert_eq!(d.value(n), Some(v), "{n}");
    }
    assert_eq!(d.value("G"), None);
}
