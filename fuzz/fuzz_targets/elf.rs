//! `hv::elf::parse` on arbitrary bytes; when an image parses, the domain builder
//! (`hv::builder::build`, through `Hypervisor::create_domain`) over a small mock machine, and
//! then two exits that depend on what the image declared (a hypercall through the int3 gate at
//! its hypercall page, and a syscall-gate hypercall). Nothing may panic; a failed build must give
//! back every frame it took.
#![no_main]

use hv::hv::SLICE_NS;
use hv::platform::{Exit, Gate};
use hv::testing::mock::{Step, StepFn};
use libfuzzer_sys::fuzz_target;
use xenolith_fuzz::{check_frames, config, hypervisor};

/// xen_version(XENVER_version): harmless, and goes through the whole dispatch path.
const XEN_VERSION: u64 = 17;

fuzz_target!(|data: &[u8]| {
    let Ok(img) = hv::elf::parse(data) else { return };
    let mut hv = hypervisor(Gate::Int3);
    let free = hv.frames.free_frames();
    let d = match hv.create_domain(config(data)) {
        Ok(d) => d,
        Err(_) => {
            assert_eq!(hv.frames.free_frames(), free, "a failed build leaked frames");
            check_frames(&mut hv);
            return;
        }
    };
    check_frames(&mut hv);
    let at = img.hypercall_page.unwrap_or(img.entry).wrapping_add(1);
    let steps: [StepFn; 2] = [
        Box::new(move |c, _| {
            (c.rax, c.rdi, c.rip) = (XEN_VERSION, 0, at);
            Exit::SoftInt { vector: 3, len: 1 }
        }),
        Box::new(|c, _| {
            (c.rax, c.rdi) = (XEN_VERSION, 0);
            Exit::Gate
        }),
    ];
    hv.platform.scripts.entry(d).or_default().extend(steps.into_iter().map(|f| Step { f, ns: 1_000 }));
    let end = hv.now + SLICE_NS;
    hv.run_until(end);
    check_frames(&mut hv);
});
