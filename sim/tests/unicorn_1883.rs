//! Regression test for unicorn issue 1883 (the exception in flight is never cleared, so the
//! second fault is reported as a double fault and the third stops emulation) and for the
//! simulator's work-around in `sim::uc_fix`.

use sim::uc_fix::{offsets, ExceptionState};
use unicorn_engine::{Arch, Mode, Prot, RegisterX86, Unicorn};

/// Code: five faults in a row. Each is followed by the next one; the test skips the faulting
/// instruction after each exit.
/// `div ecx` (ecx = 0) is #DE; `mov edx, 0x1238; mov ss, dx` (a selector past the GDT) is #GP.
const CODE: &[(u8, &[u8])] = &[
    (0, &[0xf7, 0xf1]),
    (13, &[0xba, 0x38, 0x12, 0x00, 0x00, 0x8e, 0xd2]),
    (0, &[0xf7, 0xf1]),
    (13, &[0xba, 0x38, 0x12, 0x00, 0x00, 0x8e, 0xd2]),
    (0, &[0xf7, 0xf1]),
];

fn run(workaround: bool) -> Vec<u32> {
    let mut uc = Unicorn::new_with_data(Arch::X86, Mode::MODE_64, Vec::<u32>::new()).unwrap();
    uc.mem_map(0x1000, 0x2000, Prot::ALL).unwrap();
    let bytes: Vec<u8> = CODE.iter().flat_map(|(_, b)| b.iter().copied()).chain([0xf4]).collect();
    uc.mem_write(0x1000, &bytes).unwrap();
    uc.reg_write(RegisterX86::RCX, 0).unwrap();
    uc.reg_write(RegisterX86::RAX, 0x8000_0000_0000_0000).unwrap();
    uc.reg_write(RegisterX86::RSP, 0x2800).unwrap();
    uc.add_intr_hook(|uc, intno| {
        uc.get_data_mut().push(intno);
        let _ = uc.emu_stop();
    })
    .unwrap();
    let mut exc = ExceptionState::new(&uc).expect("calibration");
    let mut rip = 0x1000u64;
    for (_, insn) in CODE {
        if uc.emu_start(rip, 0x1fff, 0, 0).is_err() {
            break;
        }
        if workaround {
            exc.take(&uc).unwrap();
        }
        rip += insn.len() as u64;
    }
    uc.get_data().clone()
}

#[test]
fn calibration_finds_the_exception_fields() {
    let o = offsets().expect("calibrate against this unicorn build");
    assert_eq!(o.is_int, o.error_code + 4);
    assert_eq!(o.old_exception, o.error_code + 112);
}

#[test]
fn five_faults_in_a_row_with_the_workaround() {
    let want: Vec<u32> = CODE.iter().map(|(v, _)| *v as u32).collect();
    assert_eq!(run(true), want);
}

/// Documents the bug itself. If this fails, unicorn fixed 1883 and the work-around can go.
#[test]
fn without_the_workaround_the_second_fault_is_a_double_fault() {
    let got = run(false);
    assert_eq!(got.first(), Some(&0));
    assert_eq!(got.get(1), Some(&8), "unicorn no longer reports #DF for the second fault: {got:?}");
}
